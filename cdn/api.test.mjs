// The default behaviour's CloudFront Function: the API sees the viewer's host as
// X-Forwarded-Host, whatever the viewer sent under that name. Run with `node --test cdn/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { load, viewerRequest } from './harness.mjs';

const fn = load('api.js');

test('the host the viewer asked for is forwarded, replacing a forged one', () => {
  // Given requests to the distribution, one with its own X-Forwarded-Host,
  for (const headers of [{}, { 'x-forwarded-host': 'evil.example' }]) {
    // when the function runs,
    const out = fn.handler(viewerRequest('/v1/images/AbCdEf12', headers));
    // then X-Forwarded-Host is the distribution's host, and nothing else changes.
    assert.equal(out.headers['x-forwarded-host'].value, 'd111111abcdef8.cloudfront.net');
    assert.equal(out.uri, '/v1/images/AbCdEf12');
    assert.deepEqual(fn.calls, []);
  }
});

test('a request without a host forwards none', () => {
  const event = viewerRequest('/', { 'x-forwarded-host': 'evil.example' });
  delete event.request.headers.host;
  const out = fn.handler(event);
  assert.equal(out.headers['x-forwarded-host'], undefined);
});
