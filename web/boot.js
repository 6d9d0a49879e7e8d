// Page boot glue, loaded before PyScript: defines window.pywebgpt at once (web/api.js) so pages
// and tests can `await window.pywebgpt.ready`, and reports start-up failures (no WebGPU, runtime
// files missing, Python errors) on the page itself, not only in the console.
(() => {
  function show(message, kind) {
    const render = () => {
      const el = document.getElementById('status');
      if (!el) return;
      el.textContent = message;  // text only: messages may quote model-provided strings
      el.dataset.state = kind;
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', render, { once: true });
    else render();
  }

  const api = createPyWebGPTApi((state, detail) => {
    if (state === 'ready') {
      const a = detail.adapter || {};
      const gpu = [a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'a WebGPU adapter';
      const notice = detail.engine_notice ? `. ${detail.engine_notice}` : '';
      show(`Ready: Python ${detail.python_version} (Pyodide ${detail.pyodide_version}) on ${gpu}${notice}`, 'ready');
    } else {
      show(detail, 'error');
    }
    document.dispatchEvent(new CustomEvent('pywebgpt:' + state));
  });
  window.pywebgpt = api;

  // Where the engine (Python, the GPU, generation) runs: by default in a dedicated worker
  // (web/engine-worker.js, connected by web/engine-client.js), so that this thread keeps only the
  // DOM and the page UI (tests/test_longtasks.py measures both); with `?engine=main` in the page's
  // address, or when the worker cannot run it (no WebGPU in workers, no module workers), on this
  // thread, started by app/main.py, which awaits `_engineOnPage()`. A fallback is said in the
  // ready status line and the console, and `info().engine` is 'worker' or 'page' either way.
  // `ready` also waits for the page UI to bind (app/main.py calls api._uiBound()), so a script that
  // awaits it finds the page's controls bound, wherever the engine runs.
  const wanted = new URLSearchParams(location.search).get('engine') !== 'main';
  const fallback = (wanted && 'gpu' in navigator)
    ? connectPyWebGPTWorker(api, 'web/engine-worker.js') : Promise.resolve(wanted ? 'no WebGPU' : null);
  let engineNotice = null;
  const onPage = fallback.then((reason) => {
    if (wanted && reason && 'gpu' in navigator) {
      engineNotice = `The engine runs on this page's main thread because ${reason}: the page may pause ` +
        'while a model loads.';
      console.warn(`PyWebGPT: ${engineNotice}`);
    }
    return !wanted || !!reason;
  });
  api._engineOnPage = () => onPage;
  let uiBound;
  const bound = new Promise((resolve) => { uiBound = resolve; });
  api._uiBound = () => uiBound();
  const engineOk = api._ok;
  api._ok = (infoJson) => {
    Promise.all([bound, onPage]).then(([, here]) => {
      const info = JSON.parse(infoJson);
      info.engine = here ? 'page' : 'worker';
      if (engineNotice) info.engine_notice = engineNotice;
      engineOk(JSON.stringify(info));
    });
  };

  // The page UI (app/ui.py) loads the default model when the page opens, through `_autoLoad`. Any
  // explicit load (the user's choice, a script, a test) takes precedence: it cancels that automatic
  // load first instead of failing as busy. Every load or unload that settles is announced with a
  // `pywebgpt:model` event on document, so the UI also shows models that a script loaded.
  const rawLoad = api.load;
  const rawUnload = api.unload;
  let autoLoading = null;
  const announce = () => document.dispatchEvent(new CustomEvent('pywebgpt:model'));
  const track = (promise) => { promise.then(announce, announce); return promise; };
  api.load = async function load(ref, opts) {
    if (autoLoading) {
      api.cancelLoad();
      await autoLoading.then(() => {}, () => {});
    }
    return track(rawLoad.call(api, ref, opts));
  };
  api.unload = function unload() { return track(rawUnload.call(api)); };
  api._autoLoad = function autoLoad(ref, opts) {
    const promise = track(rawLoad.call(api, ref, opts));
    const done = () => { if (autoLoading === promise) autoLoading = null; };
    autoLoading = promise;
    promise.then(done, done);
    return promise;
  };

  if (!('gpu' in navigator)) {
    api._fail('This browser does not expose WebGPU (navigator.gpu is missing), so PyWebGPT cannot run here. ' +
      'Use Chrome or Edge 113+ (on Linux start it with --enable-unsafe-webgpu --enable-features=Vulkan, ' +
      'or enable chrome://flags/#enable-unsafe-webgpu), Firefox 141+ on Windows, or Safari 26+, ' +
      'and open the page from http://localhost or https.');
  }
  // A runtime file that fails to load (vendor/ missing, wrong path) never reaches Python.
  window.addEventListener('error', (event) => {
    const target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      api._fail(`Could not load ${target.src || target.href}. If you serve the site yourself, run ` +
        '`python tools/serve.py` (it copies the Pyodide runtime into vendor/ first).');
    }
  }, true);
  // PyScript reports Python exceptions raised while the main script starts.
  window.addEventListener('py:error', (event) => api._fail(`Python failed to start: ${event.detail || 'see the console'}`));
})();
