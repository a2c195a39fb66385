// The CloudFront Function of the default behaviour (runtime cloudfront-js-2.0), which sends
// the API and the pages to API Gateway. API Gateway must see its own host name, so the origin
// request policy forwards every viewer header but Host; the host the viewer asked for goes
// along as X-Forwarded-Host, and the functions build the links they answer with from it
// (IMGHOST_TRUST_PROXY), so that links name this distribution's domain. It is always set
// here, replacing whatever the viewer sent.
function handler(event) {
  const request = event.request;
  const host = request.headers.host ? request.headers.host.value : '';
  if (host) {
    request.headers['x-forwarded-host'] = { value: host };
  } else {
    delete request.headers['x-forwarded-host'];
  }
  return request;
}
