// The engine's dedicated Web Worker: its own Pyodide runs app/web_api.py (the engine, loading,
// tokenization, generation and every GPU call), so prefill and generation never block the page.
// The page's window.pywebgpt (web/api.js, connected by web/engine-client.js) posts each `_py*`
// hook call here; this worker runs the same hook on its own api.js object, as the Node runner
// does, and posts back the result, the callbacks' pieces (progress, tokens, chat chunks) and the
// model's info. The protocol (every message is structured-cloned; picked File objects included):
//   page -> worker  {type: 'start', pageUrl}
//                   {type: 'call', id, name, args, callbacks: [argument index, ...]}
//   worker -> page  {type: 'placement', reason}: reason null, the engine starts here; else why it
//                   cannot (no WebGPU in workers), and the worker does nothing more
//                   {type: 'ok', info} | {type: 'fail', message}
//                   {type: 'callback', id, index, value}
//                   {type: 'result', id, value, model} | {type: 'result', id, thrown, model}
//                   {type: 'deviceLost', message} | {type: 'csp', violation}
// The page starts it from a blob: URL (web/engine-client.js), so that it runs under the page's own
// Content-Security-Policy (a blob: worker inherits its creator's policy; a worker loaded from a URL
// would take its policy from response headers, which a static host does not send): the engine's
// downloads are refused outside connect-src exactly as the page's were. That prelude imports this
// module. A violation here is passed to the page, which dispatches it on its document (where the
// page and its tests watch for them). A module worker: Pyodide probes for a classic worker with
// importScripts('data:...'), which this policy would refuse (and report) in a classic one.
// The same classic scripts the page and the Node runner load define their globals when imported.
import './fetch.js';
import './api.js';
import './replay.js';

const SCRIPT_BASE = import.meta.url;
addEventListener('securitypolicyviolation', (e) => postMessage({ type: 'csp', violation: {
  violatedDirective: e.violatedDirective, effectiveDirective: e.effectiveDirective, blockedURI: e.blockedURI,
  documentURI: e.documentURI, originalPolicy: e.originalPolicy, disposition: e.disposition, sample: e.sample,
  sourceFile: e.sourceFile, lineNumber: e.lineNumber, columnNumber: e.columnNumber, statusCode: e.statusCode,
  referrer: e.referrer } }));

const PACKAGE = '/home/pyodide/pywebgpt';
const api = createPyWebGPTApi(null);
globalThis.pywebgpt = api;
api._ok = (info) => postMessage({ type: 'ok', info: String(info) });
api._fail = (message) => postMessage({ type: 'fail', message: String(message) });
api._deviceLost = (message) => postMessage({ type: 'deviceLost', message: String(message) });

const modelInfo = () => (api._pyModelInfo ? String(api._pyModelInfo()) : 'null');
const describe = (e) => ({ name: (e && e.name) || 'Error', message: String((e && e.message) || e) });

// pyscript.toml's [files] is the one list of what ships into Python's file system, for the page's
// PyScript and for this worker alike: "./app/x.py" = "./pywebgpt/x.py".
async function shipPackage(py, base) {
  const config = await (await fetch(new URL('pyscript.toml', base))).text();
  const entries = [...config.matchAll(/^"\.\/([^"]+)"\s*=\s*"\.\/pywebgpt\/([^"]+)"/gm)];
  if (!entries.length) throw new Error('pyscript.toml lists no [files] for the package pywebgpt');
  py.FS.mkdirTree(PACKAGE + '/shaders');
  await Promise.all(entries.map(async ([, from, to]) => {
    const response = await fetch(new URL(from, base));
    if (!response.ok) throw new Error(`Could not load ${from} (HTTP ${response.status})`);
    py.FS.writeFile(`${PACKAGE}/${to}`, new Uint8Array(await response.arrayBuffer()));
  }));
}

async function start(pageUrl) {
  // The engine resolves model references and web/wheels/ against the page's address, not this script's.
  globalThis.pywebgptPageUrl = pageUrl;
  const runtime = new URL('../vendor/pyodide/', SCRIPT_BASE).href;
  const { loadPyodide } = await import(runtime + 'pyodide.mjs');
  const py = await loadPyodide({ indexURL: runtime });
  await shipPackage(py, pageUrl);
  await py.runPythonAsync(`
import sys
sys.path.insert(0, "/home/pyodide")
import js
try:
    from pywebgpt import web_api
    await web_api.start(js.pywebgpt)
except Exception as exc:
    message = str(exc) if getattr(exc, "args", None) else exc.__class__.__name__
    js.pywebgpt._fail(message)
    print(f"PyWebGPT failed to start: {message}", file=sys.stderr)
`);
}

async function call({ id, name, args, callbacks }) {
  const hook = api[name];
  for (const index of callbacks || []) {
    args[index] = (value) => postMessage({ type: 'callback', id, index, value: String(value) });
  }
  try {
    if (typeof hook !== 'function') throw new Error(`the engine has no ${name}`);
    let value = await hook(...args);
    if (value !== undefined && value !== null && typeof value !== 'string' && typeof value !== 'boolean') {
      value = String(value);
    }
    postMessage({ type: 'result', id, value: value === undefined ? null : value, model: modelInfo() });
  } catch (e) {
    postMessage({ type: 'result', id, thrown: describe(e), model: modelInfo() });
  }
}

// Whether the engine can run here at all, asked before Pyodide starts: null, or why not (a browser
// may offer WebGPU to pages only). The page then runs the engine on its own thread instead.
async function unavailable() {
  if (!('gpu' in navigator)) return 'this browser has no WebGPU in workers';
  try {
    if (!(await navigator.gpu.requestAdapter())) return 'WebGPU in a worker found no GPU adapter';
  } catch (e) {
    return `WebGPU in a worker failed: ${describe(e).message}`;
  }
  return null;
}

addEventListener('message', async (event) => {
  const message = event.data || {};
  if (message.type === 'start') {
    const reason = await unavailable();
    postMessage({ type: 'placement', reason });
    if (reason) return;
    start(message.pageUrl).catch((e) => api._fail(`Python failed to start in the engine worker: ${describe(e).message}`));
  } else if (message.type === 'call') {
    call(message);
  }
});
