// The `/i/*` CloudFront Function against a table of URLs and Accept headers: which object keys
// each reaches (variant first, then the original it falls back to), or which error the edge
// answers without asking the bucket. Run with `node --test cdn/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { keysOf, load, viewerRequest } from './harness.mjs';

const origins = JSON.parse(readFileSync(new URL('origins.json', import.meta.url), 'utf8'));
delete origins._comment;
const fn = load('images.js');

const ID = 'AbCd-f_2';
const CHROME = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
const SAFARI = 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
const OLD = 'image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';

// [url, accept, keys reached (primary first) | error status and code]
const CASES = [
  [`/i/${ID}.jpg`, CHROME, [`originals/${ID}`]],
  [`/i/${ID}`, '', [`originals/${ID}`]],
  [`/i/${ID}.JPG`, OLD, [`originals/${ID}`]],
  [`/i/${ID}.jpeg`, SAFARI, [`originals/${ID}`]],
  [`/i/${ID}.png`, '', [`originals/${ID}`]],
  [`/i/${ID}.webp`, '', [`originals/${ID}`]],
  [`/i/${ID}.gif`, '', [`originals/${ID}`]],
  [`/i/${ID}.jpg?size=original`, '', [`originals/${ID}`]],
  [`/i/${ID}.jpg?size=`, '', [`originals/${ID}`]],
  [`/i/${ID}.avif`, '', [`originals/${ID}`]],
  [`/i/${ID}?size=small`, CHROME, [`variants/small-avif/${ID}`, `originals/${ID}`]],
  [`/i/${ID}?size=medium`, SAFARI, [`variants/medium-avif/${ID}`, `originals/${ID}`]],
  [`/i/${ID}?size=medium`, 'image/webp,*/*', [`variants/medium-webp/${ID}`, `originals/${ID}`]],
  [`/i/${ID}?size=medium`, OLD, [`variants/medium/${ID}`, `originals/${ID}`]],
  [`/i/${ID}.jpg?size=large`, OLD, [`variants/large/${ID}`, `originals/${ID}`]],
  // An explicit extension wins over Accept, both ways.
  [`/i/${ID}.jpg?size=large`, CHROME, [`variants/large/${ID}`, `originals/${ID}`]],
  [`/i/${ID}.WEBP?size=large`, OLD, [`variants/large-webp/${ID}`, `originals/${ID}`]],
  [`/i/${ID}.webp?size=large`, CHROME, [`variants/large-webp/${ID}`, `originals/${ID}`]],
  [`/i/${ID}.avif?size=small`, OLD, [`variants/small-avif/${ID}`, `originals/${ID}`]],
  // Parameters that do not change the answer are dropped, so they cannot split the cache.
  [`/i/${ID}?size=small&utm_source=chat&v=2`, '', [`variants/small/${ID}`, `originals/${ID}`]],
  // A repeated size counts once, the first, as the Rust server reads it.
  [`/i/${ID}?size=small&size=large`, '', [`variants/small/${ID}`, `originals/${ID}`]],
  [`/i/${ID}?size=huge`, '', { status: 422, code: 'bad_size' }],
  [`/i/${ID}?size=SMALL`, '', { status: 422, code: 'bad_size' }],
  [`/i/${ID}.svg`, '', { status: 404, code: 'not_found' }],
  [`/i/${ID}.jpg.png`, '', { status: 404, code: 'not_found' }],
  [`/i/${ID}.`, '', { status: 404, code: 'not_found' }],
  [`/i/short.jpg`, '', { status: 404, code: 'not_found' }],
  [`/i/AbCdEf123.jpg`, '', { status: 404, code: 'not_found' }],
  [`/i/../../secret`, '', { status: 404, code: 'not_found' }],
  [`/i/AbCd%2Ff_2.jpg`, '', { status: 404, code: 'not_found' }],
  [`/i/${ID}/more`, '', { status: 404, code: 'not_found' }],
  [`/i/`, '', { status: 404, code: 'not_found' }],
];

for (const [url, accept, want] of CASES) {
  test(`${url} with Accept ${JSON.stringify(accept.slice(0, 24))}`, () => {
    // Given a viewer request,
    fn.reset();
    const event = viewerRequest(url, accept ? { accept } : {});
    // when the function runs on it,
    const out = fn.handler(event);
    if (Array.isArray(want)) {
      // then the request goes on to the keys expected, failing over on 403 and 404 only,
      assert.equal(out.statusCode, undefined, JSON.stringify(out));
      assert.deepEqual(keysOf(out, fn.calls, origins, 'originals'), want);
      for (const call of fn.calls) {
        assert.deepEqual(call.createRequestOriginGroup.failoverCriteria, { statusCodes: [403, 404] });
      }
      // and the query keeps only what the cache key needs.
      const names = Object.keys(out.querystring);
      assert.deepEqual(names, want.length > 1 ? ['size'] : []);
    } else {
      // or the edge answers the API's error shape without asking the bucket.
      assert.equal(out.statusCode, want.status);
      assert.equal(out.headers['content-type'].value, 'application/json');
      assert.equal(JSON.parse(out.body.data).error.code, want.code);
      assert.deepEqual(fn.calls, []);
    }
  });
}

test('the same variant URL reaches one cache key per format, whatever else Accept says', () => {
  // Given the same variant URL from browsers with different Accept headers,
  const seen = new Map();
  for (const accept of [CHROME, SAFARI, OLD, '', 'image/webp', 'image/webp;q=0.9, image/png']) {
    fn.reset();
    const out = fn.handler(viewerRequest(`/i/${ID}?size=small`, { accept }));
    seen.set(JSON.stringify([out.uri, out.querystring]), fn.calls[0].createRequestOriginGroup.originIds);
  }
  // then there are three requests, AVIF's, WebP's and the classic one, each to its own origin.
  assert.deepEqual([...seen.entries()].sort(), [
    [JSON.stringify([`/${ID}`, { size: { value: 'small' } }]), ['variants-small', 'originals']],
    [JSON.stringify([`/${ID}`, { size: { value: 'small-avif' } }]), ['variants-small-avif', 'originals']],
    [JSON.stringify([`/${ID}`, { size: { value: 'small-webp' } }]), ['variants-small-webp', 'originals']],
  ]);
});

// The table the Rust server's `media::variants::negotiate` is also checked on.
const NEGOTIATION = JSON.parse(readFileSync(new URL('negotiation.json', import.meta.url), 'utf8')).cases;

for (const [ext, accept, want] of NEGOTIATION) {
  test(`a variant with extension ${ext} and Accept ${JSON.stringify((accept || '').slice(0, 40))} is ${want}`, () => {
    fn.reset();
    const url = `/i/${ID}${ext ? '.' + ext : ''}?size=medium`;
    const out = fn.handler(viewerRequest(url, accept === null ? {} : { accept }));
    assert.equal(out.querystring.size.value, want ? `medium-${want}` : 'medium');
  });
}

// [Accept, formats offered best first, format chosen]
const FORMAT_CASES = [
  [CHROME, ['avif', 'webp'], 'avif'],
  [SAFARI, ['avif', 'webp'], 'avif'],
  [CHROME, ['webp'], 'webp'],
  [OLD, ['avif', 'webp'], null],
  ['*/*', ['avif', 'webp'], null],
  ['image/*', ['avif', 'webp'], null],
  ['', ['avif', 'webp'], null],
  ['image/webp', ['avif', 'webp'], 'webp'],
  ['image/avif;q=0, image/webp;q=0.5', ['avif', 'webp'], 'webp'],
  ['IMAGE/AVIF', ['avif', 'webp'], 'avif'],
  ['image/avif;q=0.0', ['avif'], null],
  ['image/avif;q=abc', ['avif'], null],
  ['image/avif; Q=1', ['avif'], 'avif'],
  ['image/avifx, image/webpx', ['avif', 'webp'], null],
  [CHROME, [], null],
  // Beyond the first 1,024 characters nothing is read.
  ['x/y,'.repeat(300) + 'image/avif', ['avif'], null],
];

for (const [accept, offered, want] of FORMAT_CASES) {
  test(`format for ${JSON.stringify(accept.slice(0, 40))} among ${offered}`, () => {
    assert.equal(fn.context.preferredFormat(accept, offered), want);
  });
}

test('browsers keep a variant for an hour, by Accept, and an original for as long as the bucket says', () => {
  // Given responses from the bucket, marked immutable,
  const immutable = () => ({ statusCode: 200, headers: { 'cache-control': { value: 'public, max-age=31536000, immutable' } } });
  const respond = (url, response) => {
    const event = viewerRequest(url);
    event.context.eventType = 'viewer-response';
    event.response = response;
    const headers = fn.handler(event).headers;
    return [headers['cache-control'].value, headers.vary ? headers.vary.value : null];
  };
  // then a variant's answer, which may be the original standing in, is kept an hour and
  // varies by Accept,
  const variant = ['public, max-age=3600', 'accept'];
  assert.deepEqual(respond(`/i/${ID}?size=small`, immutable()), variant);
  assert.deepEqual(respond(`/i/${ID}?size=medium-webp`, immutable()), variant);
  assert.deepEqual(respond(`/i/${ID}?size=medium`, { ...immutable(), statusCode: 304 }), variant);
  // and the original's is kept as the bucket says, the same for every browser.
  const original = ['public, max-age=31536000, immutable', null];
  assert.deepEqual(respond(`/i/${ID}.jpg`, immutable()), original);
  assert.deepEqual(respond(`/i/${ID}.jpg?size=original`, immutable()), original);
});

test('the function fits CloudFront Functions\' 10 KB code limit', () => {
  assert.ok(Buffer.byteLength(fn.source) <= 10 * 1024, `${Buffer.byteLength(fn.source)} bytes`);
});
