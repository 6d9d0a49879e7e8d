// Offline support: registers the service worker (sw.js at the site root; what it keeps and how a
// new deploy takes over are in its header). On a first visit the registration waits until Python
// is up and the first model load has settled, so that the worker's download of the shell (the
// runtime and the bundled model, ~35 MB) does not compete with the page's own start; a page the
// worker already controls registers at once, which also checks for a new deploy.
// window.pywebgptOffline.registration is a promise of the registration (null where service
// workers are not available: an insecure context, a browser that has them off).
(() => {
  const state = { registration: Promise.resolve(null), error: null };
  window.pywebgptOffline = state;
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;

  // 'pywebgpt:offline' on document when a version of the shell becomes active (the page's storage
  // panel says the site works offline from then on).
  const announce = () => document.dispatchEvent(new CustomEvent('pywebgpt:offline'));
  const watch = (worker) => {
    if (worker) worker.addEventListener('statechange', () => { if (worker.state === 'activated') announce(); });
  };
  const register = () => navigator.serviceWorker.register('sw.js', { scope: './', updateViaCache: 'none' })
    .then((registration) => {
      watch(registration.installing);
      watch(registration.waiting);
      registration.addEventListener('updatefound', () => watch(registration.installing));
      if (registration.active) announce();
      registration.update().catch(() => {});  // offline: nothing to check
      return registration;
    }, (err) => {
      state.error = String((err && err.message) || err);
      console.warn(`PyWebGPT works without offline support here: the service worker did not register (${state.error})`);
      return null;
    });

  let settle;
  state.registration = new Promise((resolve) => { settle = resolve; });
  if (navigator.serviceWorker.controller) {
    settle(register());
    return;
  }
  let started = false;
  const start = () => { if (!started) { started = true; settle(register()); } };
  const afterReady = () => {
    document.addEventListener('pywebgpt:model', start, { once: true });
    setTimeout(start, 20000);  // no model load came (a script took over the page, a load hangs)
  };
  const api = window.pywebgpt;
  if (api && api.ready) api.ready.then(afterReady, start);
  else window.addEventListener('load', start, { once: true });
})();
