// Prints where the `/i/*` function sends each URL given as an argument, as JSON lines: the
// origins it selects (the failover origin second) and the path it sends, or the status it
// answers at the edge. The Rust template test reads this to match it with the template.
//
//   node cdn/route.mjs '/i/AbCdEf12?size=small' ...
import { load, viewerRequest } from './harness.mjs';

const fn = load('images.js');
for (const url of process.argv.slice(2)) {
  fn.reset();
  const out = fn.handler(viewerRequest(url));
  const group = fn.calls.map((c) => c.createRequestOriginGroup).filter(Boolean).pop();
  const line = out.statusCode
    ? { url, status: out.statusCode }
    : { url, origins: group ? group.originIds : null, uri: out.uri, query: out.querystring };
  console.log(JSON.stringify(line));
}
