// The JS API of PyWebGPT, shared by the page (web/boot.js) and the Node runner (tools/node_runner.mjs):
//   await pywebgpt.ready                       -> runtime info, once Python and the GPU are up
//   pywebgpt.info()                            -> {python_version, pyodide_version, adapter, features, limits, model}
//   await pywebgpt.load(ref, {onProgress})     -> model info (ref: 'weights/x/', a URL, a Hub id, or {files})
//   pywebgpt.cancelLoad(), await pywebgpt.cachedModels(), await pywebgpt.clearCache(ref?)
//   await pywebgpt.generate(prompt, opts, onToken) -> {tokens, text, finish_reason, timings, ...}
//   await pywebgpt.chat.completions.create({messages, stream, signal, ...}) -> OpenAI-style (see below)
//   pywebgpt.stop(), await pywebgpt.unload()
//   await pywebgpt.selfTest()                  -> {verdict, max_abs_delta, ids_agree, ...} (app/selftest.py)
//   pywebgpt.onDeviceLost(listener)            -> unsubscribe(); listener(message) on a loss while idle
// The methods are thin: Python (app/web_api.py) does the work and installs `_py*` hooks here. On the
// page, Python runs in a dedicated worker by default (web/engine-worker.js runs this file too) and
// the page's hooks are messages to it (web/engine-client.js); with `?engine=main` it runs on the
// page (web/boot.js). `_pyPage` runs code in the page UI's Python.
// A classic script (not a module) so that the page defines it before anything else loads.
globalThis.createPyWebGPTApi = function createPyWebGPTApi(onStatus) {
  let resolveReady, rejectReady;
  const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
  ready.catch(() => {}); // the rejection is reported through onStatus; avoid a console-only duplicate
  let runtime = null;
  let settled = false;
  const notReady = () => new Error('PyWebGPT is not ready yet: await pywebgpt.ready first');
  // Python's errors arrive as {name, code, message, ...fields} (app/errors.py): the Error thrown
  // carries the code and the structured fields (e.g. an UnknownCharactersError's `chars`), so
  // callers never parse messages. Every load failure is named 'LoadError'.
  const engineError = (e) => Object.assign(new Error(e.message), e, { name: e.name || 'Error' });
  const loadError = (e) => Object.assign(engineError(e), { name: 'LoadError' });
  let stops = 0;  // stop() calls so far: lets generate() honour a stop issued before Python started
  const lostListeners = [];

  const api = {
    ready,
    info() {
      if (!runtime) throw notReady();
      const info = JSON.parse(JSON.stringify(runtime));
      info.model = api._pyModelInfo ? JSON.parse(api._pyModelInfo()) : null;
      return info;
    },
    // ref: 'weights/x/', a URL, a Hub id, or picked files: {files: FileList | File[] | [{path, file}]}
    // (or the FileList itself). opts: {onProgress(p), context, cache: true|false|'refresh', hub, maxGpuBytes,
    // quantize: 'q8_0'|'q4_0'}.
    // A model that cannot be loaded rejects with an Error named 'LoadError' with a .code.
    async load(ref, opts = {}) {
      await ready;
      opts = opts || {};
      let files = null;
      if (ref && typeof ref === 'object') {
        const list = ref.files !== undefined ? ref.files : ref;
        files = Array.from(list || [], (f) => (f && typeof f.slice === 'function' && typeof f.size === 'number')
          ? { path: f.webkitRelativePath || f.name, file: f }
          : { path: String(f.path || (f.file && f.file.name) || ''), file: f.file });
        ref = '';
      }
      const onProgress = typeof opts.onProgress === 'function' ? (s) => opts.onProgress(JSON.parse(s)) : null;
      const out = JSON.parse(await api._pyLoad(String(ref ?? ''), JSON.stringify({ ...opts, onProgress: undefined }),
        onProgress, files));
      if (out && out.error) throw loadError(out.error);
      return out;
    },
    // Aborts the load in progress (its load() rejects with code 'cancelled'); true if there was one.
    cancelLoad() { return api._pyCancelLoad ? !!api._pyCancelLoad() : false; },
    // {models: [{source, hub_id, files: [{name, bytes, stored}], bytes, complete, stored}], total_bytes, usage, quota}
    async cachedModels(opts = {}) { await ready; return JSON.parse(await api._pyCachedModels(JSON.stringify(opts || {}))); },
    // Deletes one model's cached files (ref as for load) or, with no ref, all of them: {deleted_files, freed_bytes}.
    async clearCache(ref = null, opts = {}) {
      await ready;
      const out = JSON.parse(await api._pyClearCache(ref == null ? '' : String(ref), JSON.stringify(opts || {})));
      if (out && out.error) throw loadError(out.error);
      return out;
    },
    // Rejects with an Error whose .name is the engine's error class and .code one of app/errors.py's
    // ERROR_CODES ('input', 'busy', 'no_model', 'device_lost', 'gpu', 'engine', ...), with its fields.
    // A stop() issued any time after this call stops this generation.
    async generate(prompt, opts = {}, onToken = null) {
      const stopsBefore = stops;
      await ready;
      const cb = typeof onToken === 'function' ? (s) => onToken(JSON.parse(s)) : null;
      // Python registers the generation synchronously and returns a promise of its result.
      const pending = api._pyGenerate(prompt == null ? '' : String(prompt), JSON.stringify(opts || {}), cb);
      if (stops !== stopsBefore && api._pyStop) api._pyStop();  // stop() came while we awaited ready
      const out = JSON.parse(await pending);
      if (out && out.error) throw engineError(out.error);
      return out;
    },
    stop() { stops++; if (api._pyStop) api._pyStop(); },
    // Runs the current model's golden record (golden.json beside its config.json, tools/golden.py)
    // on this GPU: {verdict: 'pass' | 'drift' | 'fail' | 'no golden record', max_abs_delta, ids_agree,
    // first_mismatch, tolerance, reload, message, cases, ...}. opts: {url} (another record) or
    // {record} (the record itself). Rejects as generate() does: no model, busy, device lost.
    async selfTest(opts = {}) {
      await ready;
      const out = JSON.parse(await api._pySelfTest(JSON.stringify(opts || {})));
      if (out && out.error) throw engineError(out.error);
      return out;
    },
    // OpenAI-style chat, as WebLLM offers it: chat.completions.create({messages, max_tokens,
    // temperature, top_p, top_k, repetition_penalty, stop, seed, stream, signal}). Without
    // `stream`: a Promise of {id, object: 'chat.completion', choices: [{message, finish_reason}],
    // usage, pywebgpt: {reused_tokens, prefilled_tokens, dropped_messages, notices, timings}}.
    // With `stream: true`: an async iterator of 'chat.completion.chunk's ({choices: [{delta}]}),
    // the last one carrying finish_reason, usage and pywebgpt. `signal` (an AbortSignal) stops the
    // reply: finish_reason 'abort'. Errors as generate()'s.
    chat: {
      completions: {
        create(request = {}) { return chatCreate(request || {}); },
      },
    },
    // listener(message) is called when the GPU device is lost while no load() or generate() runs
    // (a driver reset, the GPU process gone), so a page can say so at once instead of at the next
    // action. That next load() or generate() still rejects once with code 'device_lost'; the one
    // after it re-creates the device. Returns a function that removes the listener.
    onDeviceLost(listener) {
      if (typeof listener !== 'function') throw new TypeError('onDeviceLost needs a function');
      lostListeners.push(listener);
      return () => { const i = lostListeners.indexOf(listener); if (i >= 0) lostListeners.splice(i, 1); };
    },
    _deviceLost(message) {
      for (const listener of lostListeners.slice()) {
        try { listener(String(message)); } catch (e) { console.error('onDeviceLost listener failed:', e); }
      }
    },
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
  // The chat request runs in Python (app/web_api.py _chat); pieces arrive through a callback.
  function chatRun(request, onChunk) {
    const { signal, ...body } = request;
    const stopIt = () => api.stop();
    if (signal) signal.addEventListener('abort', stopIt, { once: true });
    const done = (async () => {
      await ready;
      // Python registers the generation synchronously: an abort that came before reaches it now.
      const pending = api._pyChat(JSON.stringify(body), onChunk ? (s) => onChunk(JSON.parse(s)) : null);
      if (signal && signal.aborted && api._pyStop) api._pyStop();
      const out = JSON.parse(await pending);
      if (out && out.error) throw engineError(out.error);
      return out;
    })();
    return done.finally(() => { if (signal) signal.removeEventListener('abort', stopIt); });
  }

  function chatCreate(request) {
    if (request.stream !== true) return chatRun(request, null);  // Python refuses a stream that is not a boolean
    const queue = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const push = (item) => { queue.push(item); if (wake) { wake(); wake = null; } };
    const done = chatRun(request, (chunk) => push(chunk));
    done.then((completion) => {
      const choice = completion.choices[0];
      push({ id: completion.id, object: 'chat.completion.chunk', created: completion.created, model: completion.model,
        choices: [{ index: 0, delta: {}, finish_reason: choice.finish_reason, logprobs: null }],
        usage: completion.usage, pywebgpt: completion.pywebgpt });
      finished = true;
      if (wake) { wake(); wake = null; }
    }, (error) => { failure = error; finished = true; if (wake) { wake(); wake = null; } });
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (!queue.length && !finished) await new Promise((resolve) => { wake = resolve; });
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) { const error = failure; failure = null; throw error; }
        return { value: undefined, done: true };
      },
      async return() { api.stop(); await done.catch(() => {}); return { value: undefined, done: true }; },
    };
  }

  return api;
};
