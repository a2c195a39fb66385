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
  [`/i/${ID}?size=small`, CHROME, [`variants/small/${ID}`, `originals/${ID}`]],
  [`/i/${ID}?size=medium`, SAFARI, [`variants/medium/${ID}`, `originals/${ID}`]],
  [`/i/${ID}.jpg?size=large`, OLD, [`variants/large/${ID}`, `originals/${ID}`]],
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

test('Accept does not split the cache while no modern variants are made', () => {
  // Given the same variant URL from browsers that accept different formats,
  const seen = new Set();
  for (const accept of [CHROME, SAFARI, OLD, '', 'image/webp', 'image/avif;q=0.9']) {
    fn.reset();
    const out = fn.handler(viewerRequest(`/i/${ID}?size=small`, { accept }));
    // then every one is the same request to the same origins.
    seen.add(JSON.stringify([out.uri, out.querystring, fn.calls]));
  }
  assert.equal(seen.size, 1, [...seen].join('\n'));
});

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

test('a modern variant, once offered, is its own origin and its own cache key', () => {
  // Given the function with WebP variants offered,
  const offerWebp = (source) => source.replace('const MODERN_FORMATS = [];', "const MODERN_FORMATS = ['webp'];");
  const withWebp = load('images.js', offerWebp);
  assert.notEqual(withWebp.source, fn.source, 'the MODERN_FORMATS line moved; update this test');
  const run = (accept) => {
    withWebp.reset();
    const request = withWebp.handler(viewerRequest(`/i/${ID}?size=small`, { accept }));
    return { query: request.querystring, originIds: withWebp.calls[0].createRequestOriginGroup.originIds };
  };
  // when a browser that takes WebP and one that does not ask for the same variant,
  const webp = run(CHROME);
  const plain = run(OLD);
  // then they reach different origins under different cache keys, both falling back to the original.
  assert.deepEqual(webp, { query: { size: { value: 'small-webp' } }, originIds: ['variants-small-webp', 'originals'] });
  assert.deepEqual(plain, { query: { size: { value: 'small' } }, originIds: ['variants-small', 'originals'] });
});

test('browsers keep a variant for an hour and an original for as long as the bucket says', () => {
  // Given responses from the bucket, marked immutable,
  const immutable = () => ({ statusCode: 200, headers: { 'cache-control': { value: 'public, max-age=31536000, immutable' } } });
  const respond = (url, response) => {
    const event = viewerRequest(url);
    event.context.eventType = 'viewer-response';
    event.response = response;
    return fn.handler(event).headers['cache-control'].value;
  };
  // then a variant's answer, which may be the original standing in, is kept an hour,
  assert.equal(respond(`/i/${ID}?size=small`, immutable()), 'public, max-age=3600');
  assert.equal(respond(`/i/${ID}?size=medium`, { ...immutable(), statusCode: 304 }), 'public, max-age=3600');
  // and the original's as the bucket says.
  assert.equal(respond(`/i/${ID}.jpg`, immutable()), 'public, max-age=31536000, immutable');
  assert.equal(respond(`/i/${ID}.jpg?size=original`, immutable()), 'public, max-age=31536000, immutable');
});

test('the function fits CloudFront Functions\' 10 KB code limit', () => {
  assert.ok(Buffer.byteLength(fn.source) <= 10 * 1024, `${Buffer.byteLength(fn.source)} bytes`);
});
