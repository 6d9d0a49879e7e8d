// Boot glue, loaded before PyScript: defines window.pywebgpt at once so that pages and tests can
// `await window.pywebgpt.ready`, and reports start-up failures (no WebGPU, runtime files missing,
// Python errors) on the page itself instead of only in the console.
(() => {
  let resolveReady, rejectReady;
  const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
  ready.catch(() => {}); // the rejection is shown on the page; avoid a second, console-only report
  let info = null;
  let settled = false;

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

  const api = {
    ready,
    info() {
      if (!info) throw new Error('PyWebGPT is not ready yet: await window.pywebgpt.ready first');
      return JSON.parse(JSON.stringify(info));
    },
    // Called by Python (app/main.py) once the interpreter and the GPU are up.
    _ok(infoJson) {
      if (settled) return;
      settled = true;
      info = JSON.parse(infoJson);
      const a = info.adapter || {};
      show(`Ready: Python ${info.python_version} (Pyodide ${info.pyodide_version}) on ` +
           `${[a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'a WebGPU adapter'}`, 'ready');
      resolveReady(api.info());
    },
    // Called on any start-up failure, by Python or by the checks below.
    _fail(message) {
      if (settled) return;
      settled = true;
      show(message, 'error');
      rejectReady(new Error(message));
    },
  };
  window.pywebgpt = api;

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
