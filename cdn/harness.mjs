// Runs a CloudFront Function's source the way CloudFront does, for tests: as a script whose
// `handler(event)` is called with a CloudFront event, and whose `import cf from 'cloudfront'`
// resolves to a recorder of the origin changes the function asks for.
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const IMPORT = "import cf from 'cloudfront';\n";

// Loads `file` (relative to this folder), changed by `patch` if given. Returns its top-level
// functions (on `context`) and the calls it made to the `cloudfront` module since the last
// `reset()`.
export function load(file, patch = (source) => source) {
  const source = patch(readFileSync(new URL(file, import.meta.url), 'utf8'));
  const code = source.startsWith(IMPORT) ? source.slice(IMPORT.length) : source;
  const calls = [];
  const cf = {
    createRequestOriginGroup: (params) => calls.push({ createRequestOriginGroup: plain(params) }),
    selectRequestOriginById: (id) => calls.push({ selectRequestOriginById: id }),
    updateRequestOrigin: (params) => calls.push({ updateRequestOrigin: plain(params) }),
  };
  const context = vm.createContext({ cf });
  vm.runInContext(code, context, { filename: file });
  // Objects made inside the function's context have that context's prototypes; tests compare
  // plain copies.
  const handler = (event) => plain(context.handler(event));
  return { context, handler, calls, source, reset: () => calls.splice(0) };
}

function plain(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

// A viewer-request event for `url` (a path and query, as a viewer sends it) with `headers`,
// shaped like CloudFront's: query parameters and headers keyed by lowercase name, repeated
// query parameters also under `multiValue`.
export function viewerRequest(url, headers = {}) {
  const parsed = new URL(url, 'https://d111111abcdef8.cloudfront.net');
  const querystring = {};
  for (const [name, value] of parsed.searchParams) {
    if (querystring[name]) {
      querystring[name].multiValue = querystring[name].multiValue || [{ value: querystring[name].value }];
      querystring[name].multiValue.push({ value });
    } else {
      querystring[name] = { value };
    }
  }
  const h = { host: { value: 'd111111abcdef8.cloudfront.net' } };
  for (const [name, value] of Object.entries(headers)) {
    h[name.toLowerCase()] = { value };
  }
  return {
    version: '1.0',
    context: { eventType: 'viewer-request', distributionId: 'EDFDVBD6EXAMPLE' },
    viewer: { ip: '198.51.100.11' },
    request: { method: 'GET', uri: parsed.pathname, querystring, headers: h, cookies: {} },
  };
}

// Where a request the function let through goes: the object key on the primary origin, and
// on the failover origin when there is one. `origins` maps origin ids to origin paths.
export function keysOf(request, calls, origins, defaultOrigin) {
  const group = calls.map((c) => c.createRequestOriginGroup).filter(Boolean);
  const ids = group.length > 0 ? group[group.length - 1].originIds : [defaultOrigin];
  return ids.map((id) => {
    if (!(id in origins)) {
      throw new Error(`the function selected origin ${id}, which origins.json does not define`);
    }
    return (origins[id] + request.uri).replace(/^\//, '');
  });
}
