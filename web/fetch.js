// Byte plumbing for the model loader (app/loader.py). Python decides; this file only moves bytes:
//   - probe(url, n): the first n bytes of a file with a Range request (works with or without
//     Range support: without it, the 200 response is read for n bytes and then cancelled),
//   - download(url, size): a whole file streamed into one preallocated Uint8Array, with progress
//     callbacks and an AbortSignal; the bytes stay in JS memory (never copied into the wasm heap),
//   - Cache Storage ('pywebgpt-models-v1'): read, write (only complete, size-checked files),
//     list, delete,
//   - File objects (a folder the user picked or dropped): prefix, text, whole file with progress.
// Functions never throw for expected failures: they return {error: kind, message, ...} with kind
// one of 'abort', 'network', 'memory', 'size', 'quota', 'cache', 'read', so that Python can word
// the message. A classic script, so the page, a worker and the Node runner share it.
globalThis.pywebgptFetch = (() => {
  const CACHE_NAME = 'pywebgpt-models-v1';
  const SIZE_HEADER = 'X-PyWebGPT-Size';
  const STORED_HEADER = 'X-PyWebGPT-Stored';
  const ETAG_HEADER = 'X-PyWebGPT-ETag';
  const CHUNK = 4 << 20;
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

  // Reads a stream into `target` (preallocated, `size` bytes) or, when size is null, into a growing
  // buffer. Stops with {error: 'size'} when the stream carries more bytes than expected.
  async function readStream(stream, size, signal, onProgress, everyMs) {
    const reader = stream.getReader();
    let target = size == null ? allocate(1 << 20) : allocate(size);
    let loaded = 0;
    let last = 0;
    const onAbort = () => { reader.cancel().catch(() => {}); };
    if (signal) {
      if (signal.aborted) { onAbort(); return { error: 'abort', message: 'aborted', loaded }; }
      signal.addEventListener('abort', onAbort, { once: true });
    }
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (signal && signal.aborted) return { error: 'abort', message: 'aborted', loaded };
        if (done) break;
        if (loaded + value.length > target.length) {
          if (size != null) {
            reader.cancel().catch(() => {});
            return { error: 'size', message: `more than ${size} bytes`, loaded: loaded + value.length };
          }
          const grown = allocate(Math.max(target.length * 2, loaded + value.length));
          grown.set(target.subarray(0, loaded));
          stats.allocated -= target.length;
          target = grown;
        }
        target.set(value, loaded);
        loaded += value.length;
        if (onProgress) {
          const now = performance.now();
          if (now - last >= everyMs) { last = now; onProgress(loaded); }
        }
      }
    } catch (err) {
      if (signal && signal.aborted) return { error: 'abort', message: 'aborted', loaded };
      return failure(err, { loaded });
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
    }
    if (onProgress) onProgress(loaded);
    if (size == null) {
      const exact = target.slice(0, loaded);
      stats.allocated -= target.length - loaded;
      target = exact;
    }
    return { bytes: target, loaded };
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

    // The whole file, streamed into one Uint8Array of `size` bytes (null: size unknown).
    async download(url, size, signal, onProgress, everyMs = 100) {
      let response;
      try {
        response = await fetch(url, { signal, cache: 'no-store' });
      } catch (err) {
        return failure(err);
      }
      const info = headersOf(response);
      if (!response.ok) { info.body = await errorText(response); return info; }
      if (!response.body) return { ...info, error: 'read', message: 'the response has no body' };
      let result;
      try {
        result = await readStream(response.body, size, signal, onProgress, everyMs);
      } catch (err) {
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

    async cacheRead(url, signal, onProgress, everyMs = 100) {
      let response;
      try {
        const cache = await caches.open(CACHE_NAME);
        response = await cache.match(url);
      } catch (err) {
        return failure(err, { error: 'cache' });
      }
      if (!response) return { missing: true };
      const size = Number(response.headers.get(SIZE_HEADER));
      if (!Number.isSafeInteger(size) || size < 0 || !response.body) return { missing: true };
      const result = await readStream(response.body, size, signal, onProgress, everyMs);
      return { ...result, size };
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
        const out = failure(err);
        if (out.error !== 'quota') out.error = 'cache';
        if (/quota/i.test(out.message)) out.error = 'quota';
        return out;
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

    async fileRead(file, signal, onProgress, everyMs = 100) {
      try {
        return await readStream(file.stream(), file.size, signal, onProgress, everyMs);
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
