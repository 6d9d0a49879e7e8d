// Byte plumbing for the model loader (app/loader.py). Python decides; this file only moves bytes:
//   - probe(url, n): the first n bytes of a file with a Range request (works with or without
//     Range support: without it, the 200 response is read for n bytes and then cancelled),
//   - download(url, size, groups, onGroup): a weights file streamed chunk by chunk, each tensor (or
//     group of neighbouring tensors) handed to Python whole as soon as its bytes are in, then let go:
//     JS holds a few tensors at a time, never the file (nor does the wasm heap); progress callbacks
//     and an AbortSignal; written to Cache Storage as it streams,
//   - Cache Storage ('pywebgpt-models-v1'): read (streamed the same way), write (only complete,
//     size-checked files), list, delete,
//   - File objects (a folder the user picked or dropped): prefix, text, a file streamed the same way.
// Functions never throw for expected failures: they return {error: kind, message, ...} with kind
// one of 'abort', 'network', 'memory', 'size', 'quota', 'cache', 'read', so that Python can word
// the message. A classic script, so the page, a worker and the Node runner share it.
globalThis.pywebgptFetch = (() => {
  const CACHE_NAME = 'pywebgpt-models-v1';
  const SIZE_HEADER = 'X-PyWebGPT-Size';
  const STORED_HEADER = 'X-PyWebGPT-Stored';
  const ETAG_HEADER = 'X-PyWebGPT-ETag';
  const CHUNK = 4 << 20;
  const TAP_QUEUE = 1 << 20;  // bytes a streamed cache write may have waiting for the disk
  const stats = { allocated: 0, peak: 0 };

  function failure(err, extra = {}) {
    const name = err && err.name;
    let kind = 'network';
    if (name === 'AbortError') kind = 'abort';
    else if (err instanceof RangeError) kind = 'memory';
    else if (name === 'QuotaExceededError') kind = 'quota';
    return { error: kind, name: String(name || 'Error'), message: String((err && err.message) || err), ...extra };
  }

  function headersOf(response) {
    const h = response.headers;
    return {
      ok: response.ok,
      status: response.status,
      statusText: response.statusText || '',
      url: response.url || '',
      redirected: !!response.redirected,
      contentType: h.get('Content-Type'),
      contentLength: h.get('Content-Length'),
      contentRange: h.get('Content-Range'),
      contentEncoding: h.get('Content-Encoding'),
      etag: h.get('ETag'),
      errorMessage: h.get('X-Error-Message'),
      errorCode: h.get('X-Error-Code'),
    };
  }

  function allocate(n) {
    const bytes = new Uint8Array(n);
    stats.allocated += n;
    stats.peak = Math.max(stats.peak, stats.allocated);
    return bytes;
  }

  // The body of a file streamed to its tensors: `groups` is a flat [start0, end0, start1, end1, ...]
  // of byte ranges in file order (each a tensor or a few neighbouring ones). Each range is gathered
  // into its own Uint8Array and handed over whole, `onGroup(i, bytes)`, as soon as its last byte is
  // in; the answer says what became of it: 0 done with (released here), 1 kept by the caller (who
  // calls released() later), -1 stop (the caller failed: it keeps its own error). So JS holds the
  // ranges being gathered and the chunk in hand, never the file. `tap` (cacheTap) gets every chunk.
  // Stops with {error: 'size'} when the stream carries more than `size` bytes.
  async function streamGroups(stream, size, groups, signal, onProgress, everyMs, onGroup, tap) {
    const reader = stream.getReader();
    const count = groups.length / 2;
    let g = 0;
    let target = null;
    let loaded = 0;
    let last = 0;
    const stop = (out) => {
      reader.cancel().catch(() => {});
      if (tap) tap.abort(new Error(out.message || out.error));
      if (target) { stats.allocated -= target.length; target = null; }
      return { ...out, loaded: out.loaded ?? loaded, groups_done: g };
    };
    const onAbort = () => { reader.cancel().catch(() => {}); };
    if (signal) {
      if (signal.aborted) return stop({ error: 'abort', message: 'aborted' });
      signal.addEventListener('abort', onAbort, { once: true });
    }
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (signal && signal.aborted) return stop({ error: 'abort', message: 'aborted' });
        if (done) break;
        const end = loaded + value.length;
        if (size != null && end > size) return stop({ error: 'size', message: `more than ${size} bytes`, loaded: end });
        if (tap) await tap.push(value);
        // the chunk in hand and what waits for the cache are held too, beside the gathered ranges
        const held = value.length + (tap ? tap.queued() : 0);
        stats.peak = Math.max(stats.peak, stats.allocated + held);
        let pos = loaded;
        while (g < count && pos < end) {
          const first = groups[2 * g];
          const stopAt = groups[2 * g + 1];
          if (first >= end) break;
          if (target === null) {
            target = allocate(stopAt - first);
            stats.peak = Math.max(stats.peak, stats.allocated + held);
          }
          const from = Math.max(first, pos);
          const to = Math.min(stopAt, end);
          target.set(value.subarray(from - loaded, to - loaded), from - first);
          pos = to;
          if (to < stopAt) break;
          const answer = onGroup(g, target);
          if (answer === -1) return stop({ error: 'stopped', message: 'stopped by the caller', loaded: end });
          if (answer !== 1) stats.allocated -= target.length;
          target = null;
          g++;
        }
        loaded = end;
        if (onProgress) {
          const now = performance.now();
          if (now - last >= everyMs) { last = now; onProgress(loaded); }
        }
      }
    } catch (err) {
      if (signal && signal.aborted) return stop({ error: 'abort', message: 'aborted' });
      return stop(failure(err, { error: err instanceof RangeError ? 'memory' : 'network' }));
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
    }
    if (target) { stats.allocated -= target.length; target = null; }
    if (onProgress) onProgress(loaded);
    let cache = null;
    if (tap) cache = await tap.close(size == null || loaded === size ? loaded : null);
    return { loaded, groups_done: g, cache };
  }

  // Writes a download into Cache Storage while it streams, never holding it whole: the chunks go
  // into the body of the Response that cache.put stores, with backpressure (push waits while
  // more than TAP_QUEUE bytes wait for the disk). An error or a wrong size errors the body, so
  // cache.put rejects and no partial entry is left. A put that fails (a full quota) only stops
  // the tap; its outcome is close()'s answer: {ok} or {error: 'quota' | 'cache', ...}.
  function cacheTap(url, size, etag) {
    let controller = null;
    let dead = null;
    let wake = null;
    const rouse = () => { if (wake) { const w = wake; wake = null; w(); } };
    const body = new ReadableStream({
      start(c) { controller = c; },
      pull() { rouse(); },
      cancel(reason) { dead = dead || reason || new Error('cancelled'); rouse(); },
    }, new ByteLengthQueuingStrategy({ highWaterMark: TAP_QUEUE }));
    const headers = {
      'Content-Type': 'application/octet-stream',
      [SIZE_HEADER]: String(size),
      [STORED_HEADER]: new Date().toISOString(),
    };
    if (etag) headers[ETAG_HEADER] = String(etag);
    const put = caches.open(CACHE_NAME)
      .then((cache) => cache.put(url, new Response(body, { headers })))
      .then(() => ({ ok: true }), (err) => { dead = dead || err; rouse(); return cacheFailure(err); });
    return {
      async push(chunk) {
        if (dead) return;
        controller.enqueue(chunk);
        while (!dead && controller.desiredSize <= 0) await new Promise((resolve) => { wake = resolve; });
      },
      queued() { return dead ? 0 : Math.max(0, TAP_QUEUE - controller.desiredSize); },
      abort(reason) {
        if (!dead) { dead = reason; try { controller.error(reason); } catch (err) { /* already closed */ } }
        put.catch(() => {});
      },
      // `loaded`: the bytes streamed when they are the file's size, else null (nothing is stored)
      async close(loaded) {
        if (loaded == null || loaded !== size) {
          this.abort(new Error(`the download has ${loaded} bytes, not ${size}`));
          await put;
          return { error: 'cache', name: 'SizeError', message: 'the download was not the size the file has' };
        }
        if (!dead) controller.close();
        return put;
      },
    };
  }

  function cacheFailure(err) {
    const out = failure(err);
    if (out.error !== 'quota') out.error = 'cache';
    if (/quota/i.test(out.message)) out.error = 'quota';
    return out;
  }

  // The first n bytes of the stream, then cancel the rest (a server that ignored Range).
  async function readPrefix(stream, n) {
    const reader = stream.getReader();
    const out = new Uint8Array(n);
    let loaded = 0;
    try {
      while (loaded < n) {
        const { done, value } = await reader.read();
        if (done) break;
        const take = Math.min(value.length, n - loaded);
        out.set(value.subarray(0, take), loaded);
        loaded += take;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return out.slice(0, loaded);
  }

  async function errorText(response) {
    try {
      const text = await response.text();
      return text.slice(0, 300);
    } catch (err) {
      return '';
    }
  }

  const api = {
    CACHE_NAME,
    TAP_QUEUE,
    stats() { return { allocated: stats.allocated, peak: stats.peak }; },
    resetStats() { stats.allocated = 0; stats.peak = 0; },
    released(n) { stats.allocated = Math.max(0, stats.allocated - n); },

    // GET url (text or bytes) without progress: config.json, tokenizer files, the shard index.
    async get(url, signal, asText) {
      let response;
      try {
        response = await fetch(url, { signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (!response.ok) { info.body = await errorText(response); return info; }
      try {
        if (asText) info.text = await response.text();
        else info.bytes = new Uint8Array(await response.arrayBuffer());
      } catch (err) {
        return failure(err, info);
      }
      return info;
    },

    // The first n bytes of url: Range request; a 200 answer (Range ignored) is cut after n bytes.
    async probe(url, n, signal) {
      let response;
      try {
        response = await fetch(url, { headers: { Range: `bytes=0-${n - 1}` }, signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (!response.ok) { info.body = await errorText(response); return info; }
      try {
        info.bytes = response.body ? await readPrefix(response.body, n) : new Uint8Array(0);
      } catch (err) {
        return failure(err, info);
      }
      return info;
    },

    // Is the cached copy still the server's? One byte asked for: the answer's ETag tells. (No
    // If-None-Match: it is not a CORS-safelisted header, so every check would cost a preflight,
    // and a host that does not allow it in preflights would look offline.)
    async revalidate(url, signal) {
      let response;
      try {
        response = await fetch(url, { headers: { Range: 'bytes=0-0' }, signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (response.body) response.body.cancel().catch(() => {});
      return info;
    },

    // Bytes [start, end] of url (a second header read when the header is longer than the probe).
    async range(url, start, end, signal) {
      let response;
      try {
        response = await fetch(url, { headers: { Range: `bytes=${start}-${end}` }, signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (!response.ok) { info.body = await errorText(response); return info; }
      try {
        if (response.status === 206) {
          info.bytes = new Uint8Array(await response.arrayBuffer());
        } else {  // whole file: keep only the wanted part
          const all = await readPrefix(response.body, end + 1);
          info.bytes = all.slice(start);
        }
      } catch (err) {
        return failure(err, info);
      }
      return info;
    },

    // The whole file streamed to its tensors (streamGroups), `size` bytes (null: unknown). With
    // `cacheSize` (the size to store it under), it is written to Cache Storage as it streams; the
    // answer's `cache` says how that went. The answer's `etag` is the download's own.
    async download(url, size, groups, onGroup, signal, onProgress, everyMs = 100, cacheSize = null, etag = null) {
      let response;
      try {
        response = await fetch(url, { signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (!response.ok) { info.body = await errorText(response); return info; }
      if (!response.body) return { ...info, error: 'read', message: 'the response has no body' };
      const tap = cacheSize != null && api.cacheAvailable() ? cacheTap(url, cacheSize, info.etag || etag) : null;
      let result;
      try {
        result = await streamGroups(response.body, size, groups, signal, onProgress, everyMs, onGroup, tap);
      } catch (err) {
        if (tap) tap.abort(err);
        return failure(err, info);
      }
      return { ...info, ...result };
    },

    // ---------------------------------------------------------------- Cache Storage
    cacheAvailable() { return typeof caches !== 'undefined' && !!caches; },

    // {size, stored, etag} of a cached file, or null.
    async cacheInfo(url) {
      try {
        const cache = await caches.open(CACHE_NAME);
        const response = await cache.match(url);
        if (!response) return null;
        const size = Number(response.headers.get(SIZE_HEADER));
        if (response.body) response.body.cancel().catch(() => {});
        return { size, stored: response.headers.get(STORED_HEADER), etag: response.headers.get(ETAG_HEADER) };
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
    },

    // A cached file streamed to its tensors (streamGroups). {missing: true} when there is no entry
    // or it is not `size` bytes (then nothing is read); the answer's `loaded` tells a short body.
    async cacheRead(url, size, groups, onGroup, signal, onProgress, everyMs = 100) {
      let response;
      try {
        const cache = await caches.open(CACHE_NAME);
        response = await cache.match(url);
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
      if (!response) return { missing: true };
      const stored = Number(response.headers.get(SIZE_HEADER));
      if (!Number.isSafeInteger(stored) || stored < 0 || !response.body || (size != null && stored !== size)) {
        if (response.body) response.body.cancel().catch(() => {});
        return { missing: true, stale: true };
      }
      const result = await streamGroups(response.body, stored, groups, signal, onProgress, everyMs, onGroup, null);
      return { ...result, size: stored };
    },

    async cachePrefix(url, n) {
      try {
        const cache = await caches.open(CACHE_NAME);
        const response = await cache.match(url);
        if (!response || !response.body) return { missing: true };
        const size = Number(response.headers.get(SIZE_HEADER));
        return { bytes: await readPrefix(response.body, n), size };
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
    },

    async cacheText(url) {
      try {
        const cache = await caches.open(CACHE_NAME);
        const response = await cache.match(url);
        if (!response) return { missing: true };
        return { text: await response.text() };
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
    },

    // Store a complete file. The caller has checked its size; `bytes` may be a Uint8Array or text.
    async cachePut(url, bytes, size, etag) {
      try {
        const cache = await caches.open(CACHE_NAME);
        const headers = {
          'Content-Type': typeof bytes === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream',
          [SIZE_HEADER]: String(size),
          [STORED_HEADER]: new Date().toISOString(),
        };
        if (etag) headers[ETAG_HEADER] = String(etag);
        // A large file goes in as a stream of views of the same buffer: no second copy in memory.
        let body = bytes;
        if (typeof bytes !== 'string' && bytes.length > CHUNK) {
          let offset = 0;
          body = new ReadableStream({
            pull(controller) {
              if (offset >= bytes.length) { controller.close(); return; }
              const end = Math.min(bytes.length, offset + CHUNK);
              controller.enqueue(bytes.subarray(offset, end));
              offset = end;
            },
          });
        }
        await cache.put(url, new Response(body, { headers }));
        return { ok: true };
      } catch (err) {
        return cacheFailure(err);
      }
    },

    // Every cached file: [{url, size, stored, etag}] (headers only; bodies are not read).
    async cacheEntries() {
      const out = [];
      try {
        if (!(await caches.has(CACHE_NAME))) return out;
        const cache = await caches.open(CACHE_NAME);
        for (const request of await cache.keys()) {
          const response = await cache.match(request);
          if (!response) continue;
          if (response.body) response.body.cancel().catch(() => {});
          out.push({
            url: request.url,
            size: Number(response.headers.get(SIZE_HEADER)) || 0,
            stored: response.headers.get(STORED_HEADER),
            etag: response.headers.get(ETAG_HEADER),
          });
        }
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
      return out;
    },

    async cacheDelete(urls) {
      let n = 0;
      try {
        const cache = await caches.open(CACHE_NAME);
        for (const url of urls) if (await cache.delete(url)) n++;
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
      return { deleted: n };
    },

    async cacheDrop() {
      try {
        return { deleted: await caches.delete(CACHE_NAME) };
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
    },

    async storageEstimate() {
      try {
        if (typeof navigator === 'undefined' || !navigator.storage || !navigator.storage.estimate) return null;
        const e = await navigator.storage.estimate();
        return { usage: e.usage ?? null, quota: e.quota ?? null };
      } catch (err) {
        return null;
      }
    },

    // ---------------------------------------------------------------- picked files
    async filePrefix(file, n) {
      try {
        return { bytes: new Uint8Array(await file.slice(0, n).arrayBuffer()), size: file.size };
      } catch (err) {
        return failure(err, { error: 'read' });
      }
    },

    async fileText(file) {
      try {
        return { text: await file.text() };
      } catch (err) {
        return failure(err, { error: 'read' });
      }
    },

    // A picked file streamed to its tensors (streamGroups).
    async fileRead(file, groups, onGroup, signal, onProgress, everyMs = 100) {
      try {
        return await streamGroups(file.stream(), file.size, groups, signal, onProgress, everyMs, onGroup, null);
      } catch (err) {
        return failure(err, { error: err instanceof RangeError ? 'memory' : 'read' });
      }
    },

    deviceMemoryGiB() {
      return typeof navigator !== 'undefined' && navigator.deviceMemory ? Number(navigator.deviceMemory) : null;
    },
  };
  return api;
})();
