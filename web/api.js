// The JS API of PyWebGPT, shared by the page (web/boot.js) and the Node runner (tools/node_runner.mjs):
//   await pywebgpt.ready                       -> runtime info, once Python and the GPU are up
//   pywebgpt.info()                            -> {python_version, pyodide_version, adapter, features, limits, model}
//   await pywebgpt.load(ref, {onProgress})     -> model info (ref: 'weights/x/', a URL, or a Hub id)
//   await pywebgpt.generate(prompt, opts, onToken) -> {tokens, text, finish_reason, timings, ...}
//   pywebgpt.stop(), await pywebgpt.unload()
// The methods are thin: Python (app/web_api.py) does the work and installs `_py*` hooks here.
// A classic script (not a module) so that the page defines it before anything else loads.
globalThis.createPyWebGPTApi = function createPyWebGPTApi(onStatus) {
  let resolveReady, rejectReady;
  const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
  ready.catch(() => {}); // the rejection is reported through onStatus; avoid a console-only duplicate
  let runtime = null;
  let settled = false;
  const notReady = () => new Error('PyWebGPT is not ready yet: await pywebgpt.ready first');

  const api = {
    ready,
    info() {
      if (!runtime) throw notReady();
      const info = JSON.parse(JSON.stringify(runtime));
      info.model = api._pyModelInfo ? JSON.parse(api._pyModelInfo()) : null;
      return info;
    },
    async load(ref, opts = {}) {
      await ready;
      const onProgress = typeof opts.onProgress === 'function' ? (s) => opts.onProgress(JSON.parse(s)) : null;
      return JSON.parse(await api._pyLoad(String(ref), JSON.stringify({ ...opts, onProgress: undefined }), onProgress));
    },
    async generate(prompt, opts = {}, onToken = null) {
      await ready;
      const cb = typeof onToken === 'function' ? (s) => onToken(JSON.parse(s)) : null;
      return JSON.parse(await api._pyGenerate(prompt == null ? '' : String(prompt), JSON.stringify(opts || {}), cb));
    },
    stop() { if (api._pyStop) api._pyStop(); },
    async unload() { await ready; api._pyUnload(); },
    // Called by Python once the interpreter and the GPU are up, or on any start-up failure.
    _ok(infoJson) {
      if (settled) return;
      settled = true;
      runtime = JSON.parse(infoJson);
      if (onStatus) onStatus('ready', runtime);
      resolveReady(JSON.parse(infoJson));
    },
    _fail(message) {
      if (settled) return;
      settled = true;
      if (onStatus) onStatus('error', message);
      rejectReady(new Error(message));
    },
  };
  return api;
};
