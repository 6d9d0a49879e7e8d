// Connects the page's window.pywebgpt (web/api.js) to the engine running in a dedicated Web Worker
// (web/engine-worker.js): every `_py*` hook that api.js calls becomes a message to the worker, so
// the page's main thread keeps only the DOM and the page UI while Python loads, tokenizes,
// prefills and generates in the worker. api.js itself is unchanged: its methods, promises,
// streams, stop() / AbortSignal / cancelLoad(), typed errors and `ready` behave as when Python ran
// in the page. What stays synchronous in api.js is answered here without a round trip:
//   _pyModelInfo()   the model's info as of the last message from the worker (every call's result
//                    carries it; unload() clears it at once)
//   _pyCancelLoad()  whether a load() is in flight; the cancel itself goes to the worker
//   _pyStop()        posted; the worker handles messages in order, so a stop() sent after a
//                    generate() reaches the generation that call registered
// Returns a promise of where the engine runs: null once the worker has WebGPU and starts the
// engine, or why it cannot (no module workers, no WebGPU in workers, the worker failed to load);
// then the worker is gone, the hooks are removed, and the page runs the engine itself (web/boot.js).
// A classic script, loaded before web/boot.js.
globalThis.connectPyWebGPTWorker = function connectPyWebGPTWorker(api, workerUrl) {
  // A blob: worker runs under this page's Content-Security-Policy (web/engine-worker.js says why).
  // It is controlled by the page's service worker as the page is (sw.js answers its runtime and
  // app files offline), as the spec has blob: workers inherit their creator's controller.
  const script = new URL(workerUrl, location.href).href;
  const prelude = `import ${JSON.stringify(script)};`;
  const blobUrl = URL.createObjectURL(new Blob([prelude], { type: 'text/javascript' }));
  let worker;
  try {
    worker = new Worker(blobUrl, { name: 'pywebgpt-engine', type: 'module' });
  } catch (e) {
    URL.revokeObjectURL(blobUrl);
    return Promise.resolve(`this browser cannot start the engine worker: ${(e && e.message) || e}`);
  }
  let placed = null;  // resolves the placement promise once
  const placement = new Promise((resolve) => { placed = resolve; });
  const pending = new Map();  // call id -> {resolve, reject, callbacks}
  let nextId = 1;
  let model = 'null';
  let loads = 0;

  const post = (name, args, callbacks) => new Promise((resolve, reject) => {
    const id = nextId++;
    const indices = [];
    const sent = args.map((arg, index) => {
      if (typeof arg !== 'function') return arg === undefined ? null : arg;
      indices.push(index);
      return null;
    });
    pending.set(id, { resolve, reject, args });
    worker.postMessage({ type: 'call', id, name, args: sent, callbacks: indices });
  });
  const hook = (name) => (...args) => post(name, args);

  worker.addEventListener('message', (event) => {
    const message = event.data || {};
    if (message.type === 'placement') {
      URL.revokeObjectURL(blobUrl);
      if (message.reason) detach(message.reason);
      else placed(null);
    } else if (message.type === 'ok') api._ok(message.info);
    else if (message.type === 'fail') api._fail(message.message);
    else if (message.type === 'deviceLost') api._deviceLost(message.message);
    else if (message.type === 'csp') {
      document.dispatchEvent(new SecurityPolicyViolationEvent('securitypolicyviolation', message.violation));
    }
    else if (message.type === 'callback') {
      const call = pending.get(message.id);
      const callback = call && call.args[message.index];
      // A callback that throws ends its call with that error, as when Python called it directly.
      if (typeof callback === 'function' && !call.failed) {
        try { callback(message.value); } catch (e) { call.failed = e; api._pyStop(); }
      }
    } else if (message.type === 'result') {
      const call = pending.get(message.id);
      if (!call) return;
      pending.delete(message.id);
      model = message.model || 'null';
      if (call.failed) call.reject(call.failed);
      else if (message.thrown) call.reject(Object.assign(new Error(message.thrown.message), { name: message.thrown.name }));
      else call.resolve(message.value);
    }
  });
  // The worker's script or the runtime it imports failed to load: before the worker said where the
  // engine runs, the page runs it; after, say so as the page did.
  worker.addEventListener('error', (event) => {
    event.preventDefault();
    if (placed) {
      detach(`the engine worker failed to start (${event.message || workerUrl})`);
      return;
    }
    api._fail(`The engine worker failed to start (${event.message || workerUrl}). If you serve the site yourself, ` +
      'run `python tools/serve.py` (it copies the Pyodide runtime into vendor/ first).');
  });

  const hooks = ['_py', '_pyGenerate', '_pyChat', '_pyCachedModels', '_pyClearCache', '_pySelfTest',
    '_pyLoad', '_pyStop', '_pyUnload', '_pyCancelLoad', '_pyModelInfo'];
  function detach(reason) {
    worker.terminate();
    URL.revokeObjectURL(blobUrl);
    for (const name of hooks) delete api[name];
    for (const call of pending.values()) call.reject(new Error(`the engine moved to the page: ${reason}`));
    pending.clear();
    placed(reason);
  }
  const settle = placed;
  placed = (where) => { settle(where); placed = null; };

  for (const name of ['_py', '_pyGenerate', '_pyChat', '_pyCachedModels', '_pyClearCache', '_pySelfTest']) {
    api[name] = hook(name);
  }
  api._pyLoad = (...args) => {
    loads++;
    const done = post('_pyLoad', args);
    done.then(() => { loads--; }, () => { loads--; });
    return done;
  };
  // Fire and forget: before the engine is up there is nothing to stop, cancel or unload.
  const send = (name) => { post(name, []).catch(() => {}); };
  api._pyStop = () => send('_pyStop');
  api._pyUnload = () => { model = 'null'; send('_pyUnload'); };
  api._pyCancelLoad = () => { send('_pyCancelLoad'); return loads > 0; };
  api._pyModelInfo = () => model;
  worker.postMessage({ type: 'start', pageUrl: location.href });
  return placement;
};
