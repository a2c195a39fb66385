import cf from 'cloudfront';

// The CloudFront Function of the `/i/*` behaviour (runtime cloudfront-js-2.0). It turns an
// image URL into the object it names, without a Lambda or a table read, so that a view costs
// one CloudFront request:
//
//   /i/{id}[.{ext}]               -> origin `originals`         (the bucket under originals/)
//   /i/{id}[.{ext}]?size={size}   -> origin group `variants-{size}[-{format}]`, failing over
//                                    to `originals`
//
// A variant's format is the extension's when it names one (`.avif` and `.webp` a modern one,
// `.jpg`, `.png` and `.gif` the classic one), else the best modern format the `Accept` header
// names (AVIF, then WebP), else the classic one: `media::variants::negotiate` in the Rust code,
// checked on one table of cases (negotiation.json). AVIF variants are made by a later pass than
// the others, and never for animations; until then their keys hold the WebP variant, which
// every browser that takes AVIF shows (`images::store_variants`), so the fallback of an AVIF
// request is still the original, as for the other formats.
//
// In both cases the path sent to the origin is `/{id}`: the bucket's keys are
// `originals/{id}` and `variants/{size}/{id}` (see `images::Layout` in the Rust code), so an
// origin whose path is the other prefix answers the same request. That is how a variant that
// is not made yet falls back to the original: the origin group retries on 403 or 404.
//
// Only what changes the answer reaches the cache key: the path and a normalised `size` (the
// behaviour's cache policy keys on that query parameter alone). The same function runs on the
// viewer response, where it shortens how long browsers keep a variant: the edge may have
// stored the original in its place (see `VARIANT_BROWSER_CACHE`), and says it varies by
// `Accept`.

// An image id: 8 characters of URL-safe base64 (`secret::is_image_id`).
const ID = /^[A-Za-z0-9_-]{8}$/;
// The extensions `/i/` accepts (`media::Format::from_ext`, compared without case).
const EXTENSIONS = ['jpg', 'jpeg', 'png', 'gif', 'webp', 'avif'];
const SIZES = ['small', 'medium', 'large'];
// Variant formats chosen by the extension or `Accept`, best first, each with an origin of its
// own (`variants-{size}-{format}`): `media::variants::MODERN_FORMATS` in the Rust code.
const MODERN_FORMATS = ['avif', 'webp'];
// Browsers keep a variant this long, not a year: until the resize worker has made it, the
// edge stores the original in its place, for at most the cache policy's maximum TTL (also an
// hour), and neither copy should outlive that.
const VARIANT_BROWSER_CACHE = 'public, max-age=3600';
// The failover of the origin group: S3 answers 403 for a missing key when the reader may not
// list the bucket, 404 when it may.
const FALLBACK_STATUSES = [403, 404];

function handler(event) {
  if (event.context && event.context.eventType === 'viewer-response') {
    return viewerResponse(event);
  }
  return viewerRequest(event);
}

function viewerRequest(event) {
  const request = event.request;
  const target = route(request.uri, request.querystring, header(request, 'accept'));
  if (target.error) {
    return errorResponse(target.status, target.error, target.message);
  }
  request.uri = target.uri;
  request.querystring = target.querystring;
  if (target.originGroup) {
    cf.createRequestOriginGroup({
      originIds: target.originGroup,
      failoverCriteria: { statusCodes: FALLBACK_STATUSES },
    });
  }
  return request;
}

function viewerResponse(event) {
  const response = event.response;
  const size = first(event.request.querystring, 'size') || '';
  const served = response.statusCode < 300 || response.statusCode === 304;
  if (served && SIZES.indexOf(size.split('-')[0]) >= 0) {
    response.headers['cache-control'] = { value: VARIANT_BROWSER_CACHE };
    response.headers['vary'] = { value: 'accept' };
  }
  return response;
}

// What an `/i/` URL names: the origin path and query to send, and the origin group when a
// variant is asked for; or the error to answer at the edge, without asking the bucket.
function route(uri, querystring, accept) {
  const file = uri.startsWith('/i/') ? uri.slice(3) : '';
  const dot = file.indexOf('.');
  const id = dot < 0 ? file : file.slice(0, dot);
  const ext = dot < 0 ? null : file.slice(dot + 1).toLowerCase();
  if (!ID.test(id) || (ext !== null && EXTENSIONS.indexOf(ext) < 0)) {
    return { status: 404, error: 'not_found', message: 'no such image' };
  }
  const size = first(querystring, 'size');
  if (size === null || size === '' || size === 'original') {
    return { uri: '/' + id, querystring: {} };
  }
  if (SIZES.indexOf(size) < 0) {
    return { status: 422, error: 'bad_size', message: 'size must be small, medium or large' };
  }
  const format = variantFormat(ext, accept);
  const variants = format ? 'variants-' + size + '-' + format : 'variants-' + size;
  const query = { size: { value: format ? size + '-' + format : size } };
  return { uri: '/' + id, querystring: query, originGroup: [variants, 'originals'] };
}

// The modern format of a variant, or null for the classic one.
function variantFormat(ext, accept) {
  if (ext !== null) {
    return MODERN_FORMATS.indexOf(ext) >= 0 ? ext : null;
  }
  return preferredFormat(accept, MODERN_FORMATS);
}

// The first of `offered` that `accept` names with a quality above zero, or null. Only explicit
// media types count: `*/*` and `image/*` are sent by browsers that decode neither WebP nor AVIF.
// The header is read up to 1,024 characters, which holds every browser's.
function preferredFormat(accept, offered) {
  if (!accept || offered.length === 0) {
    return null;
  }
  const admitted = {};
  const items = accept.slice(0, 1024).toLowerCase().split(',');
  for (let i = 0; i < items.length; i++) {
    const params = items[i].split(';');
    const type = params[0].trim();
    let quality = 1;
    for (let j = 1; j < params.length; j++) {
      const param = params[j].trim();
      if (param.startsWith('q=')) {
        const q = parseFloat(param.slice(2));
        quality = isNaN(q) ? 0 : q;
      }
    }
    if (type.startsWith('image/')) {
      admitted[type.slice(6)] = quality > 0;
    }
  }
  for (let i = 0; i < offered.length; i++) {
    if (admitted[offered[i]] === true) {
      return offered[i];
    }
  }
  return null;
}

// The value of a query parameter; the first when it is repeated.
function first(querystring, name) {
  const entry = querystring[name];
  if (!entry) {
    return null;
  }
  if (entry.multiValue && entry.multiValue.length > 0) {
    return entry.multiValue[0].value;
  }
  return entry.value;
}

function header(request, name) {
  const entry = request.headers[name];
  return entry ? entry.value : '';
}

// The API's error shape, `{"error": {"code", "message"}}`, answered by the edge.
function errorResponse(status, code, message) {
  return {
    statusCode: status,
    statusDescription: status === 404 ? 'Not Found' : 'Unprocessable Content',
    headers: {
      'content-type': { value: 'application/json' },
      'cache-control': { value: 'public, max-age=60' },
      'x-content-type-options': { value: 'nosniff' },
    },
    body: { encoding: 'text', data: JSON.stringify({ error: { code: code, message: message } }) },
  };
}
