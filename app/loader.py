"""Load a GPT-2-family model folder (Hugging Face layout) onto the GPU.

Where a model comes from (`load_model(gpu, ref, ...)`, or `pywebgpt.load(...)` in the page):

    'weights/shakespeare-char/'      a folder served with the site (relative to the page)
    './models/x/', '/models/x/'      any other folder on the site's server
    'https://host/path/to/folder/'   a base URL (the server must allow CORS)
    'openai-community/gpt2'          a Hugging Face Hub id -> https://huggingface.co/<id>/resolve/main/
                                     (also https://huggingface.co/<id> and .../tree/main pages)
    files=[{path, file}, ...]        a folder the user picked or dropped: JS File objects with their
                                     relative paths. From JS: `pywebgpt.load({files: input.files})`
                                     with <input type=file webkitdirectory> (or a FileList/File[] of
                                     the folder's files; dropped folders: pass {path, file} pairs).

A folder holds config.json, the weights (model.safetensors, or model.safetensors.index.json with its
shards) in F32, F16 or BF16, and a tokenizer: vocab.json + merges.txt, tokenizer.json or
char_vocab.json.

Order of work, so that a bad model fails early and nothing is allocated for it:
  1. config.json: parsed and checked (app/config.py); a first GPU-memory estimate against the
     device limits.
  2. the tokenizer files; their vocabulary must fit the config's vocab_size.
  3. each safetensors header (a Range request for the first 64 KiB, more only if the header is
     longer; a server without Range support is read up to the header and the request cancelled):
     names, dtypes and shapes against the config, offsets against the file size, then the exact
     GPU memory estimate (weights, KV cache, activations; the largest single buffer against
     maxBufferSize / maxStorageBufferBindingSize).
  4. the downloads, each streamed by web/fetch.js into one preallocated JS Uint8Array with
     progress; the bytes go to the GPU from there (`gpu.write_js`), never through the wasm heap.
  5. the GPU model (app/model.py). Anything that fails frees what it allocated.

Progress: `on_progress(json_text)` with {phase, file, loaded, total, bytes_per_s, eta_s, from_cache,
overall_loaded, overall_total, overall_eta_s, file_index, file_count}; phase is one of 'config',
'tokenizer', 'headers', 'download', 'cache', 'upload', 'compile' (first run of every kernel), 'done'. Cancel: `LoadJob.cancel()`
(`pywebgpt.cancelLoad()`) aborts the running download and frees everything this load allocated.

Cache Storage ('pywebgpt-models-v1'): every file of a model loaded over HTTP is stored (complete and
size-checked files only) with a manifest `<base>.pywebgpt-manifest.json` written after a successful
load; the next load of the same reference reads everything from the cache without a single network
request and says so (from_cache, notices). `cache`: True (default), 'refresh' (download again and
replace) or False. A full quota is a notice, not a failure. `cached_models()` and `clear_cache(ref)`
list and delete cached models with their sizes. Cached files are kept until cleared: a model that
changes upstream under the same address needs clear_cache or cache='refresh'.

Every failure is a LoadError whose message names the file, key or limit at fault; `.code` is one of
'input', 'http', 'network', 'format', 'too_large', 'memory', 'gpu', 'cancelled', 'busy'.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import js
from pyodide.ffi import create_proxy, to_js

from .config import GPT2Config, match_tensors
from .gpu import is_null
from .model import GPT2
from .safetensors import ModelFormatError, is_lfs_pointer, lfs_pointer_error, parse_header, parse_header_length
from .tokenizer import load_tokenizer_from_texts

HUB = "https://huggingface.co"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "char_vocab.json")
MANIFEST = ".pywebgpt-manifest.json"
GPT2_VOCAB_SIZE = 50257
HEAD_PROBE = 64 * 1024          # bytes asked for first: the whole header of any GPT-2 checkpoint
MAX_LAYERS = 1024               # a config beyond this is corrupt, not a model
DEFAULT_GPU_BUDGET_GIB = 8      # WebGPU does not report GPU memory; see gpu_budget()
PROGRESS_EVERY_MS = 100
_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


class LoadError(ValueError):
    """A model that could not be loaded, with a message naming the file and what to do."""

    def __init__(self, message: str, code: str = "format"):
        super().__init__(message)
        self.code = code


class LoadCancelled(LoadError):
    def __init__(self, message: str = "loading was cancelled"):
        super().__init__(message, "cancelled")


# ------------------------------------------------------------------------------------ references


def resolve_reference(ref: str, base_url: str = "", hub: str | None = None) -> str:
    """Turn a model reference into a base URL ending in '/'.

    'weights/shakespeare-char/' (relative to the page), 'https://host/path/', or a Hub id such
    as 'openai-community/gpt2' (-> https://huggingface.co/openai-community/gpt2/resolve/main/).
    `hub` replaces https://huggingface.co (a mirror, or the test server imitating the Hub).
    """
    hub = (hub or HUB).rstrip("/")
    ref = str(ref).strip()
    if not ref:
        raise LoadError("no model given: pass a folder, a URL or a Hugging Face id such as openai-community/gpt2",
                        "input")
    page = re.match(r"^https://(?:www\.)?huggingface\.co/([\w.-]+/[\w.-]+)(?:/(?:tree|blob)/([\w.-]+))?/?$", ref)
    if page:  # a model's web page, not its files
        url = f"{HUB}/{page.group(1)}/resolve/{page.group(2) or 'main'}/"
    elif ref.startswith(("http://", "https://")):
        url = ref
    elif ref.startswith(("./", "/", "../")) or ref.startswith("weights/") or ref.endswith("/"):
        url = ref
    elif ref.count("/") == 1 and all(re.fullmatch(r"[\w][\w.-]*", part) for part in ref.split("/")):
        url = f"{hub}/{ref}/resolve/main/"
    else:
        url = ref
    if base_url and not url.startswith(("http://", "https://")):
        url = str(js.URL.new(url, base_url).href)
    return url if url.endswith("/") else url + "/"


def hub_id(base: str, hub: str | None = None) -> str | None:
    """'https://huggingface.co/org/name/resolve/main/' -> 'org/name' (None for other URLs)."""
    for root in {HUB, (hub or HUB).rstrip("/")}:
        m = re.match(re.escape(root) + r"/([\w.-]+/[\w.-]+)/resolve/[\w.-]+/$", base)
        if m:
            return m.group(1)
    return None


# ------------------------------------------------------------------------------------ helpers


def _fetch_js():
    helper = getattr(js.globalThis, "pywebgptFetch", None)
    if helper is None or is_null(helper):
        raise LoadError("web/fetch.js is not loaded: add <script src=\"web/fetch.js\"></script> before web/api.js",
                        "input")
    return helper


def _get(obj, name: str, default=None):
    """A property of a JS result object; missing, undefined and null give `default`."""
    try:
        value = getattr(obj, name)
    except AttributeError:
        return default
    if value is None or is_null(value):
        return default
    return value


def _mb(n) -> str:
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.1f} kB"
    return f"{n} bytes"


def looks_like_html(head) -> bool:
    text = bytes(head[:512]).lstrip().lower()
    return text.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))


def _html_error(name: str, where: str) -> LoadError:
    return LoadError(
        f"{name}: the server sent a web page (HTML) instead of the file at {where}: the address is "
        f"probably wrong (some hosts answer a missing file with a page and status 200)", "http")


class _Probe:
    def __init__(self, head: bytes, size: int | None, from_cache: bool = False, etag: str | None = None):
        self.head, self.size, self.from_cache, self.etag = head, size, from_cache, etag


# ------------------------------------------------------------------------------------ the job


class LoadJob:
    """One load in progress: its abort signal, progress reports and statistics."""

    def __init__(self, on_progress=None):
        self.on_progress = on_progress if on_progress is not None and not is_null(on_progress) else None
        self.controller = js.AbortController.new()
        self.signal = self.controller.signal
        self.cancelled = False
        self.t0 = time.perf_counter()
        self.overall_total = 0
        self.overall_done = 0
        self.overall_t0 = None
        self.file_count = 0
        self.file_index = 0
        self.stats = {"network_bytes": 0, "cache_bytes": 0, "file_bytes": 0, "requests": 0}
        self._progress_broken = False

    def cancel(self) -> None:
        self.cancelled = True
        try:
            self.controller.abort()
        except Exception:  # noqa: BLE001 - aborting twice or after the end is harmless
            pass

    def check(self) -> None:
        if self.cancelled:
            raise LoadCancelled()

    def emit(self, phase: str, file: str | None = None, loaded: int = 0, total: int | None = None,
             from_cache: bool = False, started: float | None = None) -> None:
        if self.on_progress is None or self._progress_broken:
            return
        now = time.perf_counter()
        rate = eta = overall_eta = None
        if started is not None and now - started > 0.05 and loaded:
            rate = loaded / (now - started)
            if total:
                eta = max(0.0, (total - loaded) / rate)
        overall_loaded = self.overall_done + (loaded if phase == "download" else 0)
        if self.overall_t0 is not None and self.overall_total and overall_loaded and now - self.overall_t0 > 0.05:
            overall_rate = overall_loaded / (now - self.overall_t0)
            overall_eta = max(0.0, (self.overall_total - overall_loaded) / overall_rate)
        event = {
            "phase": phase, "file": file, "loaded": loaded, "total": total,
            "bytes_per_s": round(rate) if rate else None,
            "eta_s": round(eta, 2) if eta is not None else None,
            "from_cache": from_cache,
            "overall_loaded": overall_loaded, "overall_total": self.overall_total,
            "overall_eta_s": round(overall_eta, 2) if overall_eta is not None else None,
            "file_index": self.file_index, "file_count": self.file_count,
            "elapsed_s": round(now - self.t0, 3),
        }
        try:
            self.on_progress(json.dumps(event))
        except Exception:  # noqa: BLE001 - a broken progress callback must not break the load
            self._progress_broken = True


# ------------------------------------------------------------------------------------ sources


class UrlSource:
    """Files under a base URL: fetch() through web/fetch.js, and the browser's Cache Storage."""

    kind = "url"

    def __init__(self, base: str, job: LoadJob, cache=True):
        self.base = base
        self.job = job
        self.F = _fetch_js()
        available = bool(self.F.cacheAvailable())
        self.cache_write = available and cache not in (False, "off", None)
        self.cache_read = self.cache_write and cache != "refresh"
        self.manifest: dict | None = None   # name -> size, from a complete earlier load
        self.seen: dict = {}                # name -> size of every file this load used
        self.etags: dict = {}
        self.notices: list = []
        self.from_cache: set = set()
        self.cache_failed = False
        if not available and cache not in (False, "off", None) and not is_null(getattr(js.globalThis, "document", None)):
            self.notices.append("the browser cache (Cache Storage) is not available on this page (a page served over "
                                "plain http from another machine is not a secure context), so the model will be "
                                "downloaded again next time")

    @property
    def label(self) -> str:
        return self.base

    def url(self, name: str) -> str:
        return self.base + name

    async def start(self) -> None:
        if not self.cache_read:
            return
        r = await self.F.cacheText(self.url(MANIFEST))
        text = _get(r, "text")
        if text is None:
            return
        try:
            manifest = json.loads(str(text))
            files = manifest["files"]
            if isinstance(files, dict) and all(isinstance(v, int) for v in files.values()):
                self.manifest = files
                self.stored = manifest.get("stored")
        except (ValueError, KeyError, TypeError):
            self.manifest = None

    def known_absent(self, name: str) -> bool:
        return self.manifest is not None and name not in self.manifest

    # -- errors
    def _http_error(self, name: str, r, optional: bool):
        status = int(_get(r, "status", 0))
        url = self.url(name)
        if status == 404 and optional:
            return None
        detail = str(_get(r, "errorMessage", "") or "")
        reason = f"HTTP {status} {_get(r, 'statusText', '') or ''}".strip()
        if status == 404:
            hint = ""
            if name == CONFIG:
                hint = (". A model folder needs config.json, model.safetensors and tokenizer files: is the "
                        "address right?")
            raise LoadError(f"{name}: not found ({reason}) at {url}{hint}", "http")
        if status in (401, 403):
            raise LoadError(f"{name}: access denied ({reason}) at {url}: the model does not exist, or it is "
                            f"private or gated and the page cannot send credentials (download it and load the "
                            f"folder instead)", "http")
        if status == 416:
            raise LoadError(f"{name}: the file is empty (HTTP 416 for a request of its first bytes) at {url}",
                            "format")
        extra = f": {detail}" if detail else ""
        raise LoadError(f"{name}: the server answered {reason}{extra} for {url}", "http")

    def _network_error(self, name: str, r):
        kind = str(_get(r, "error", "network"))
        if kind == "abort" or self.job.cancelled:
            raise LoadCancelled()
        if kind == "memory":
            raise LoadError(f"{name}: not enough memory in this tab to hold the file ({_get(r, 'message', '')})",
                            "memory")
        url = self.url(name)
        raise LoadError(
            f"{name}: could not fetch {url} ({_get(r, 'message', 'network error')}). Check the address and the "
            f"connection; a server on another origin must allow cross-origin requests (CORS headers)", "network")

    def _count(self, n_bytes: int = 0) -> None:
        self.job.stats["requests"] += 1
        self.job.stats["network_bytes"] += n_bytes

    # -- small files
    async def text(self, name: str, optional: bool = False) -> str | None:
        if self.known_absent(name):
            return None
        url = self.url(name)
        if self.cache_read and self.manifest is not None:
            r = await self.F.cacheText(url)
            text = _get(r, "text")
            if text is not None:
                text = str(text)
                self.seen[name] = len(text.encode("utf-8"))
                self.from_cache.add(name)
                self.job.stats["cache_bytes"] += self.seen[name]
                return text
        r = await self.F.get(url, self.job.signal, True)
        self._count()
        if _get(r, "error") is not None:
            self._network_error(name, r)
        if not _get(r, "ok", False):
            return self._http_error(name, r, optional)
        text = str(_get(r, "text", ""))
        self.job.stats["network_bytes"] += len(text)
        if looks_like_html(text[:512].encode("utf-8", "replace")):
            if optional:
                self.notices.append(f"{name}: the server sent a web page instead of the file; treated as missing")
                return None
            raise _html_error(name, url)
        raw = text.encode("utf-8")
        self.seen[name] = len(raw)
        await self.store(name, text, len(raw), None)
        return text

    # -- weights
    async def probe(self, name: str, n: int, optional: bool = False) -> _Probe | None:
        if self.known_absent(name):
            return None
        url = self.url(name)
        if self.cache_read:
            info = await self.F.cacheInfo(url)
            size = _get(info, "size")
            if size is not None and _get(info, "error") is None:
                r = await self.F.cachePrefix(url, n)
                if _get(r, "bytes") is not None:
                    return _Probe(_get(r, "bytes").to_bytes(), int(size), True, _get(info, "etag"))
        r = await self.F.probe(url, n, self.job.signal)
        self._count()
        if _get(r, "error") is not None:
            self._network_error(name, r)
        if not _get(r, "ok", False):
            return self._http_error(name, r, optional)
        head = _get(r, "bytes").to_bytes()
        self.job.stats["network_bytes"] += len(head)
        size = self._size_of(r, len(head), n)
        etag = _get(r, "etag")
        if etag:
            self.etags[name] = str(etag)
        return _Probe(head, size, False, etag)

    @staticmethod
    def _size_of(r, got: int, asked: int) -> int | None:
        """The whole file's size from a probe response, when the headers tell it."""
        status = int(_get(r, "status", 0))
        if status == 206:
            m = re.match(r"^\s*bytes\s+\d+-\d+/(\d+)\s*$", str(_get(r, "contentRange", "") or ""))
            if m:
                return int(m.group(1))
        elif status == 200 and not _get(r, "contentEncoding"):
            length = _get(r, "contentLength")
            if length is not None and str(length).isdigit():
                return int(str(length))
        return got if got < asked else None  # a short answer is the whole file

    async def read_range(self, name: str, start: int, end: int) -> bytes:
        url = self.url(name)
        if self.cache_read:
            r = await self.F.cachePrefix(url, end + 1)
            if _get(r, "bytes") is not None:
                return _get(r, "bytes").to_bytes()[start:end + 1]
        r = await self.F.range(url, start, end, self.job.signal)
        self._count()
        if _get(r, "error") is not None:
            self._network_error(name, r)
        if not _get(r, "ok", False):
            self._http_error(name, r, False)
        data = _get(r, "bytes").to_bytes()
        self.job.stats["network_bytes"] += len(data)
        return data

    async def read(self, name: str, size: int | None):
        """The whole file as a JS Uint8Array, with progress. -> (array, from_cache)"""
        url = self.url(name)
        job = self.job
        started = time.perf_counter()
        state = {"from_cache": False}

        def progress(loaded):
            job.emit("download", name, int(loaded), size, state["from_cache"], started)

        proxy = create_proxy(progress)
        try:
            if self.cache_read:
                state["from_cache"] = True
                r = await self.F.cacheRead(url, job.signal, proxy, PROGRESS_EVERY_MS)
                if _get(r, "error") == "abort" or job.cancelled:
                    raise LoadCancelled()
                data = _get(r, "bytes")
                if data is not None and (size is None or int(data.length) == size):
                    self.from_cache.add(name)
                    job.stats["cache_bytes"] += int(data.length)
                    return data, True
                if data is not None:  # a stale or damaged entry: forget it, download again
                    self.F.released(int(data.length))
                    await self.F.cacheDelete(to_js([url]))
                state["from_cache"] = False
                started = time.perf_counter()
            r = await self.F.download(url, size, job.signal, proxy, PROGRESS_EVERY_MS)
        finally:
            proxy.destroy()
        self._count(int(_get(r, "loaded", 0) or 0))
        kind = _get(r, "error")
        if kind is not None:
            loaded = int(_get(r, "loaded", 0) or 0)
            if kind == "size":
                raise LoadError(f"{name}: the server sent more than the {_mb(size)} the file has; the file changed "
                                f"while loading? Try again", "network")
            if kind in ("abort",) or job.cancelled:
                raise LoadCancelled()
            if kind == "network" and loaded:
                raise LoadError(f"{name}: the download broke off after {_mb(loaded)} of {_mb(size)} "
                                f"({_get(r, 'message', 'network error')}); try again", "network")
            self._network_error(name, r)
        if not _get(r, "ok", False):
            self._http_error(name, r, False)
        data = _get(r, "bytes")
        got = int(data.length)
        if size is not None and got != size:
            self.F.released(got)
            raise LoadError(f"{name}: the download ended after {_mb(got)} but the file has {_mb(size)} "
                            f"(connection closed early?); try again", "network")
        etag = _get(r, "etag")
        if etag:
            self.etags[name] = str(etag)
        return data, False

    # -- cache
    async def store(self, name: str, data, size: int, etag) -> None:
        """Put one complete, size-checked file in Cache Storage; a full quota turns caching off."""
        if not self.cache_write or self.cache_failed:
            return
        job = self.job
        job.emit("cache", name, 0, size)
        r = await self.F.cachePut(self.url(name), data, size, etag)
        kind = _get(r, "error")
        if kind is None:
            return
        self.cache_failed = True
        if kind == "quota":
            self.notices.append(
                f"{name}: not cached: the browser's storage quota is full ({_get(r, 'message', '')}). The model "
                f"loaded, but it will be downloaded again next time; free space with pywebgpt.clearCache()")
        else:
            self.notices.append(f"{name}: not cached ({_get(r, 'name', '')}: {_get(r, 'message', '')}); the model "
                                f"loaded, but will be downloaded again next time")

    async def finish(self) -> None:
        """After a successful load: write the manifest that makes the next load network-free."""
        if not self.cache_write or self.cache_failed or self.manifest is not None and set(self.seen) <= set(
                self.from_cache):
            return
        manifest = json.dumps({"files": self.seen, "stored": js.Date.new().toISOString(), "base": self.base})
        r = await self.F.cachePut(self.url(MANIFEST), manifest, len(manifest), None)
        if _get(r, "error") is not None:
            self.notices.append(f"the model was not cached ({_get(r, 'message', '')})")


class FileSource:
    """Files the user picked (directory picker, file picker or drag and drop): [(path, File)]."""

    kind = "files"

    def __init__(self, entries: list, job: LoadJob):
        self.job = job
        self.F = _fetch_js()
        self.notices: list = []
        self.from_cache: set = set()
        self.seen: dict = {}
        if not entries:
            raise LoadError("no files were picked: pick a model folder (config.json, model.safetensors and "
                            "tokenizer files)", "input")
        folders: dict = {}
        for path, file in entries:
            parts = [p for p in str(path).replace("\\", "/").split("/") if p]
            if not parts:
                continue
            folder = "/".join(parts[:-1])
            folders.setdefault(folder, {})[parts[-1]] = file
        with_config = sorted((f for f, names in folders.items() if CONFIG in names), key=lambda f: (f.count("/"), f))
        if not with_config:
            names = sorted(f"{folder}/{n}" if folder else n for folder, names in folders.items() for n in names)
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise LoadError(f"none of the {len(names)} picked files is config.json (got {shown}): pick a model "
                            f"folder with config.json, model.safetensors and tokenizer files", "input")
        if len(with_config) > 1:
            shown = ", ".join((f or ".") + "/" for f in with_config[:6])
            raise LoadError(f"the picked files hold {len(with_config)} model folders ({shown}): pick one of them",
                            "input")
        self.folder = with_config[0]
        self.files = folders[self.folder]
        if any(name in self.files for name in ("pytorch_model.bin", "ckpt.pt")) and WEIGHTS not in self.files \
                and INDEX not in self.files:
            raise LoadError("the picked folder has PyTorch pickle weights (pytorch_model.bin or ckpt.pt), which a "
                            "browser cannot read safely: convert them with `python tools/convert.py SRC OUT_DIR`",
                            "format")

    @property
    def label(self) -> str:
        return f"picked folder {self.folder or '.'}/"

    def names(self) -> set:
        return set(self.files)

    def known_absent(self, name: str) -> bool:
        return name not in self.files

    def _read_error(self, name: str, r):
        kind = str(_get(r, "error", "read"))
        if kind == "abort" or self.job.cancelled:
            raise LoadCancelled()
        if kind == "memory":
            raise LoadError(f"{name}: not enough memory in this tab to hold the file", "memory")
        raise LoadError(f"{name}: could not read the picked file ({_get(r, 'message', '')}); pick the folder again",
                        "input")

    async def text(self, name: str, optional: bool = False) -> str | None:
        file = self.files.get(name)
        if file is None:
            if optional:
                return None
            raise LoadError(f"{name}: not among the picked files of {self.label}", "input")
        r = await self.F.fileText(file)
        if _get(r, "error") is not None:
            self._read_error(name, r)
        text = str(_get(r, "text", ""))
        self.seen[name] = int(file.size)
        return text

    async def probe(self, name: str, n: int, optional: bool = False) -> _Probe | None:
        file = self.files.get(name)
        if file is None:
            if optional:
                return None
            raise LoadError(f"{name}: not among the picked files of {self.label}", "input")
        r = await self.F.filePrefix(file, n)
        if _get(r, "error") is not None:
            self._read_error(name, r)
        return _Probe(_get(r, "bytes").to_bytes(), int(file.size))

    async def read_range(self, name: str, start: int, end: int) -> bytes:
        r = await self.F.filePrefix(self.files[name], end + 1)
        if _get(r, "error") is not None:
            self._read_error(name, r)
        return _get(r, "bytes").to_bytes()[start:end + 1]

    async def read(self, name: str, size: int | None):
        job = self.job
        started = time.perf_counter()
        proxy = create_proxy(lambda loaded: job.emit("download", name, int(loaded), size, False, started))
        try:
            r = await self.F.fileRead(self.files[name], job.signal, proxy, PROGRESS_EVERY_MS)
        finally:
            proxy.destroy()
        if _get(r, "error") is not None:
            self._read_error(name, r)
        data = _get(r, "bytes")
        if size is not None and int(data.length) != size:
            raise LoadError(f"{name}: the file changed while it was read ({_mb(int(data.length))}, expected "
                            f"{_mb(size)}); pick it again", "input")
        self.seen[name] = int(data.length)
        return data, False

    async def start(self) -> None:
        return None

    async def store(self, name, data, size, etag) -> None:
        return None

    async def finish(self) -> None:
        return None


# ------------------------------------------------------------------------------------ GPU memory


def gpu_budget(max_gpu_bytes=None) -> tuple:
    """(bytes this load may use on the GPU, why). WebGPU does not tell how much memory the GPU has:
    the default is navigator.deviceMemory (the RAM, which Chrome caps at 8 GiB), at least 4 GiB, or
    8 GiB where unknown; `max_gpu_bytes` overrides it."""
    if max_gpu_bytes:
        return int(max_gpu_bytes), "the maxGpuBytes option"
    try:
        gib = _fetch_js().deviceMemoryGiB()
    except LoadError:
        gib = None
    if gib is None or is_null(gib):
        return DEFAULT_GPU_BUDGET_GIB << 30, f"PyWebGPT's default of {DEFAULT_GPU_BUDGET_GIB} GiB"
    gib = max(4.0, float(gib))
    return int(gib * (1 << 30)), f"navigator.deviceMemory ({gib:g} GiB)"


def estimate_gpu_memory(cfg: GPT2Config, weight_dtype: str, limits: dict, context: int | None = None,
                        separate_head: bool | None = None) -> dict:
    """GPU bytes the engine (app/model.py) allocates for this model, in closed form (no loop over
    layers, so an absurd config costs nothing to check), and the largest buffers that must each fit
    one binding. weight_dtype: 'F32', 'F16' or 'BF16' (matrices stay in it; vectors become f32)."""
    E, V, P, M, L = cfg.n_embd, cfg.vocab_size, cfg.n_positions, cfg.d_mlp, cfg.n_layer
    wb = _DTYPE_BYTES[weight_dtype]
    wg = int(limits.get("maxComputeWorkgroupStorageSize", 16384))
    n_ctx = max(1, min(P, (wg - 2 * 256 * 4) // 4, context or P))
    chunk = min(128, n_ctx)
    head = (not cfg.tie_word_embeddings) if separate_head is None else separate_head
    matrices = (V * E + P * E + L * (4 * E * E + 2 * E * M) + (V * E if head else 0)) * wb
    vectors = (L * (9 * E + M) + 2 * E) * 4
    kv = L * 2 * n_ctx * E * 4
    groups = -(-V // 1024)
    activations = 4 * (16 + 4 * chunk + 4 * chunk * E + chunk * M + V + 2 * groups * 130 + 130 + 8) + 4 * 130
    buffers = [
        ("wpe.weight", P * E * wb),
        ("h.*.attn.c_attn.weight", E * 3 * E * wb),
        ("h.*.mlp.c_fc.weight", E * M * wb),
        ("h.*.mlp.c_proj.weight", M * E * wb),
        ("KV cache of one layer", 2 * n_ctx * E * 4),
        ("MLP activations", chunk * M * 4),
        ("logits", V * 4),
        ("one row of wte.weight", E * wb),
    ]
    return {"weights": matrices + vectors, "kv_cache": kv, "activations": activations,
            "total": matrices + vectors + kv + activations, "context": n_ctx, "buffers": buffers}


def check_device(cfg: GPT2Config, weight_dtype: str, limits: dict, context, budget: tuple, where: str,
                 separate_head: bool | None = None) -> dict:
    """Raise LoadError(code 'too_large') naming the limit when the model cannot fit this device."""
    if cfg.n_layer > MAX_LAYERS:
        raise LoadError(f"{where}: 'n_layer' is {cfg.n_layer:,}; no GPT-2 has more than {MAX_LAYERS} layers "
                        f"(a corrupt config?)", "too_large")
    # The engine's own shape rules (app/model.py), checked before anything is downloaded.
    if cfg.n_embd % 4:
        raise LoadError(f"{where}: 'n_embd' {cfg.n_embd} is not a multiple of 4, which the GPU kernels need",
                        "format")
    if cfg.head_dim > 256:
        raise LoadError(f"{where}: the head size n_embd/n_head = {cfg.head_dim} is over 256, the attention "
                        f"kernel's limit", "format")
    if cfg.d_mlp % 4:
        raise LoadError(f"{where}: the MLP width (n_inner) {cfg.d_mlp} is not a multiple of 4, which the GPU "
                        f"kernels need", "format")
    est = estimate_gpu_memory(cfg, weight_dtype, limits, context, separate_head)
    per_buffer = min(int(limits.get("maxBufferSize", 1 << 28)), int(limits.get("maxStorageBufferBindingSize", 1 << 27)))
    for label, nbytes in est["buffers"]:
        if nbytes > per_buffer:
            which = ("maxStorageBufferBindingSize" if per_buffer == int(limits.get("maxStorageBufferBindingSize", 0))
                     else "maxBufferSize")
            raise LoadError(
                f"{where}: the model is too large for this GPU: {label} needs {nbytes:,} bytes ({_mb(nbytes)}) in "
                f"one GPU buffer, over this device's {which} of {per_buffer:,} bytes (n_embd={cfg.n_embd}, n_positions={cfg.n_positions}, "
                f"vocab_size={cfg.vocab_size}, {weight_dtype})", "too_large")
    limit, why = budget
    if est["total"] > limit:
        raise LoadError(
            f"{where}: the model needs about {_mb(est['total'])} of GPU memory (weights {_mb(est['weights'])} in "
            f"{weight_dtype}, KV cache {_mb(est['kv_cache'])} for {est['context']} tokens, activations "
            f"{_mb(est['activations'])}), over the {_mb(limit)} allowed by {why}. Use a smaller model or F16 "
            f"weights (tools/convert.py --dtype float16), a shorter context ({{context: N}}), or raise the limit "
            f"with {{maxGpuBytes: N}}", "too_large")
    return est


# ------------------------------------------------------------------------------------ the model


@dataclass
class Tensor:
    dtype: str
    shape: tuple
    data: object  # JS Uint8Array view of the fetched file


@dataclass
class LoadedModel:
    model: GPT2
    tokenizer: object
    config: GPT2Config
    source: str
    notices: list
    weight_bytes: int
    stats: dict = field(default_factory=dict)


def _format_error(exc: Exception) -> LoadError:
    if isinstance(exc, LoadError):
        return exc
    return LoadError(str(exc), "format")


async def _read_tokenizer(source, cfg: GPT2Config, job: LoadJob):
    job.emit("tokenizer")
    texts: dict = {}
    if isinstance(source, FileSource):
        for name in TOKENIZER_FILES:
            text = await source.text(name, optional=True)
            if text is not None:
                texts[name] = text
    else:
        # Ask for the likely files first, so a usual folder costs no 404: a character vocabulary is
        # small, GPT-2's BPE has 50257 tokens.
        order = ["char_vocab.json", "bpe", "tokenizer.json"] if cfg.vocab_size < GPT2_VOCAB_SIZE \
            else ["bpe", "tokenizer.json", "char_vocab.json"]
        for what in order:
            if what == "bpe":
                vocab = await source.text("vocab.json", optional=True)
                if vocab is not None:
                    texts["vocab.json"] = vocab
                    merges = await source.text("merges.txt", optional=True)
                    if merges is not None:
                        texts["merges.txt"] = merges
                    break
            else:
                text = await source.text(what, optional=True)
                if text is not None:
                    texts[what] = text
                    break
            job.check()
    if not texts:
        raise LoadError(f"no tokenizer in {source.label}: expected vocab.json + merges.txt, tokenizer.json or "
                        f"char_vocab.json", "format")
    for name, text in texts.items():
        if is_lfs_pointer(text[:64].encode("utf-8", "replace")):
            raise LoadError(str(lfs_pointer_error(text.encode("utf-8", "replace"), name)), "format")
    try:
        tokenizer = load_tokenizer_from_texts(texts)
    except (ValueError, KeyError, TypeError) as exc:
        message = str(exc)
        if not any(name in message for name in texts):
            message = f"{', '.join(texts)}: {message}"
        raise LoadError(message, "format") from exc
    vocab = getattr(tokenizer, "vocab_size", None)
    if vocab is not None and vocab > cfg.vocab_size:
        raise LoadError(f"{', '.join(texts)}: the tokenizer has {vocab:,} tokens but {CONFIG}'s vocab_size is "
                        f"{cfg.vocab_size:,}: the tokenizer belongs to another model", "format")
    return tokenizer


async def _read_header(source, name: str, probe: _Probe):
    """Parse one safetensors header from its probe (fetching the rest of a long header)."""
    head, size = probe.head, probe.size
    if looks_like_html(head):
        raise _html_error(name, getattr(source, "url", lambda n: n)(name))
    if size == 0 or (size is None and not head):
        raise LoadError(f"{name}: the file is empty", "format")
    try:
        header_len = parse_header_length(head, size, name)
    except ModelFormatError as exc:
        raise _format_error(exc) from None
    if 8 + header_len > len(head):
        head = head + await source.read_range(name, len(head), 8 + header_len - 1)
        if len(head) < 8 + header_len:
            raise LoadError(f"{name}: header length {header_len:,} bytes is larger than the file "
                            f"({len(head):,} bytes): the file is truncated or not a safetensors file", "format")
    try:
        return parse_header(head[8:8 + header_len], size, name)
    except ModelFormatError as exc:
        raise _format_error(exc) from None


async def _read_layout(source, job: LoadJob) -> tuple:
    """-> (list of (file name, probe, header), tensors by stored name)."""
    job.emit("headers", WEIGHTS)
    probe = await source.probe(WEIGHTS, HEAD_PROBE, optional=True)
    files = []
    if probe is not None:
        files.append((WEIGHTS, probe))
    else:
        index_text = await source.text(INDEX, optional=True)
        if index_text is None:
            raise LoadError(
                f"no weights in {source.label}: neither {WEIGHTS} nor {INDEX} is there (PyTorch "
                f"pytorch_model.bin or ckpt.pt files must be converted: python tools/convert.py SRC OUT_DIR)",
                "format")
        shards = _parse_index(index_text)
        for shard in shards:
            job.check()
            job.emit("headers", shard)
            p = await source.probe(shard, HEAD_PROBE, optional=True)
            if p is None:
                raise LoadError(f"{shard}: not found in {source.label}, but {INDEX} lists it", "format")
            files.append((shard, p))
        weight_map = json.loads(index_text)["weight_map"]
    headers, tensors, where = [], {}, {}
    for name, p in files:
        job.check()
        header = await _read_header(source, name, p)
        headers.append((name, p, header))
        for key, info in header.tensors.items():
            if key in tensors:
                raise LoadError(f"{name}: tensor {key!r} is also in {where[key]}", "format")
            tensors[key] = info
            where[key] = name
    if probe is None:
        for key, shard in weight_map.items():
            if where.get(key) != shard:
                found = f"it is in {where[key]}" if key in where else "no shard has it"
                raise LoadError(f"{INDEX}: 'weight_map' puts tensor {key!r} in {shard}, but {found}", "format")
    return headers, tensors


def _parse_index(text: str) -> list:
    try:
        index = json.loads(text)
    except ValueError as exc:
        raise LoadError(f"{INDEX}: not valid JSON ({str(exc).splitlines()[0][:120]})", "format") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise LoadError(f"{INDEX}: needs a non-empty 'weight_map' object (tensor name -> shard file)", "format")
    shards = []
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not re.fullmatch(r"[\w][\w.-]*\.safetensors", shard):
            raise LoadError(f"{INDEX}: 'weight_map' entry {key!r} names {shard!r:.80}, not a .safetensors file "
                            f"in the same folder", "format")
        if shard not in shards:
            shards.append(shard)
    return shards


def _make_source(ref, files, base_url: str, job: LoadJob, cache, hub):
    if files is not None and not is_null(files):
        entries = []
        for item in files:
            path = _get(item, "path")
            file = _get(item, "file")
            if file is None:  # a bare File
                file, path = item, _get(item, "webkitRelativePath") or _get(item, "name")
            entries.append((str(path or _get(file, "name", "")), file))
        return FileSource(entries, job)
    return UrlSource(resolve_reference(ref, base_url, hub), job, cache)


async def load_model(gpu, ref: str = "", base_url: str = "", context: int | None = None, *, files=None,
                     job: LoadJob | None = None, on_progress=None, cache=True, hub: str | None = None,
                     max_gpu_bytes: int | None = None) -> LoadedModel:
    """Check, download and put a model on the GPU; see the module docstring. Raises LoadError."""
    job = job or LoadJob(on_progress)
    F = _fetch_js()
    F.resetStats()
    stats = job.stats
    wasm = _wasm_heap_bytes()
    stats["wasm_heap_before"] = wasm
    source = _make_source(ref, files, base_url, job, cache, hub)
    await source.start()
    budget = gpu_budget(max_gpu_bytes)
    limits = dict(gpu.limits)
    arrays = []
    try:
        # 1. config.json
        job.emit("config", CONFIG)
        text = await source.text(CONFIG)
        if text is None:
            raise LoadError(f"{CONFIG}: not found in {source.label}", "input")
        try:
            cfg = GPT2Config.from_json(text, CONFIG)
        except ModelFormatError as exc:
            raise _format_error(exc) from None
        check_device(cfg, "F16", limits, context, budget, CONFIG)  # the smallest it could be
        job.check()

        # 2. tokenizer
        tokenizer = await _read_tokenizer(source, cfg, job)
        job.check()

        # 3. headers, checked against the config and the device
        headers, stored = await _read_layout(source, job)
        try:
            mapping, notices = match_tensors(cfg, stored, WEIGHTS if len(headers) == 1 else INDEX)
        except ModelFormatError as exc:
            raise _format_error(exc) from None
        notices = list(notices)
        dtypes = {info.dtype for name, info in mapping.items() if len(info.shape) == 2}
        weight_dtype = dtypes.pop() if len(dtypes) == 1 else "F32"
        if weight_dtype == "BF16" or "BF16" in {info.dtype for info in mapping.values()}:
            notices.append("BF16 weights: the matrices stay BF16 on the GPU and are widened to f32 inside the "
                           "kernels (exact); biases and LayerNorm parameters are converted to F32 (exact)")
        estimate = check_device(cfg, weight_dtype, limits, context, budget, headers[0][0],
                                separate_head="lm_head.weight" in mapping)
        stats["gpu_bytes_estimate"] = estimate["total"]
        job.check()

        # 4. the bytes, file by file (into JS memory)
        job.file_count = len(headers)
        job.overall_total = sum(p.size or 0 for _, p, _ in headers)
        job.overall_t0 = time.perf_counter()
        views = {}
        total_bytes = 0
        for i, (name, probe, header) in enumerate(headers):
            job.file_index = i
            job.check()
            data, from_cache = await source.read(name, probe.size)
            arrays.append(data)
            size = int(data.length)
            total_bytes += size
            if probe.size is None:  # the size was unknown until now: check the offsets again
                try:
                    header = parse_header(data.subarray(8, 8 + header.header_len).to_bytes(), size, name)
                except ModelFormatError as exc:
                    raise _format_error(exc) from None
                for key, info in header.tensors.items():
                    stored[key] = info
            job.overall_done += size
            if not from_cache:
                await source.store(name, data, size, getattr(source, "etags", {}).get(name))
            views[name] = data
            source.seen[name] = size
        job.check()
        mapping = {name: stored[info.name] for name, info in mapping.items()}
        tensors = {
            name: Tensor(info.dtype, tuple(info.shape),
                         views[info.filename].subarray(info.data_offset, info.data_offset + info.nbytes))
            for name, info in mapping.items()
        }

        # 5. the GPU
        job.emit("upload", None, 0, total_bytes)
        model = _build_model(gpu, cfg, tensors, context)
        del tensors
        if job.cancelled:
            model.free()
            raise LoadCancelled()
        job.emit("compile", None, total_bytes, total_bytes)
        try:
            stats["compile_s"] = round(await model.warm_up(), 3)
        except Exception as exc:
            model.free()
            raise LoadError(f"the GPU could not run the model: {exc}", "gpu") from exc
        if job.cancelled:
            model.free()
            raise LoadCancelled()
        await source.finish()
    finally:
        for data in arrays:
            F.released(int(data.length))
        arrays.clear()
    stats.update({
        "file_bytes": total_bytes,
        "from_cache": bool(source.from_cache) and all(name in source.from_cache for name, _, _ in headers),
        "peak_js_bytes": int(F.stats().peak),
        "wasm_heap_after": _wasm_heap_bytes(),
        "seconds": round(time.perf_counter() - job.t0, 3),
        "gpu_bytes": model.gpu_bytes(),
    })
    if stats["from_cache"]:
        notices.append("loaded from the browser cache without a download; pywebgpt.clearCache() or "
                       "{cache: 'refresh'} fetches it again")
    notices = notices + source.notices + list(model.notices)
    job.emit("done", None, total_bytes, total_bytes, stats["from_cache"])
    label = source.base if isinstance(source, UrlSource) else source.label
    return LoadedModel(model, tokenizer, cfg, label, notices, total_bytes, stats)


def _build_model(gpu, cfg, tensors, context):
    """GPT2(...) that frees every buffer it made when it fails half-way."""
    model = GPT2.__new__(GPT2)
    try:
        model.__init__(gpu, cfg, tensors, context=context)
    except Exception as exc:
        for buf in getattr(model, "buffers", []) or []:
            try:
                gpu.free(buf)
            except Exception:  # noqa: BLE001 - free the rest regardless
                pass
        model.buffers = []
        message = str(exc) or type(exc).__name__
        code = "gpu" if type(exc).__name__ == "GPUError" else "format"
        raise LoadError(f"the GPU could not take the model: {message}", code) from exc
    return model


def _wasm_heap_bytes() -> int | None:
    try:
        import pyodide_js  # noqa: PLC0415

        return int(pyodide_js._module.HEAPU8.length)
    except Exception:  # noqa: BLE001 - not essential
        return None


# ------------------------------------------------------------------------------------ the cache


async def cached_models(hub: str | None = None) -> dict:
    """The models in Cache Storage: {models: [{source, hub_id, files: [{name, bytes, stored}], bytes,
    complete, stored}], total_bytes, usage, quota}. `complete` means the next load is network-free."""
    F = _fetch_js()
    out = {"models": [], "total_bytes": 0, "usage": None, "quota": None, "available": bool(F.cacheAvailable())}
    if not out["available"]:
        return out
    entries = await F.cacheEntries()
    if _get(entries, "error") is not None:
        raise LoadError(f"cannot read the browser cache ({_get(entries, 'message', '')})", "input")
    groups: dict = {}
    for e in entries:
        url = str(e.url)
        base, name = url[:url.rfind("/") + 1], url[url.rfind("/") + 1:]
        groups.setdefault(base, {})[name] = {"name": name, "bytes": int(e.size or 0),
                                             "stored": _get(e, "stored") and str(e.stored)}
    for base, files in sorted(groups.items()):
        manifest = files.pop(MANIFEST, None)
        listed = sorted(files.values(), key=lambda f: f["name"])
        total = sum(f["bytes"] for f in listed)
        out["models"].append({
            "source": base, "hub_id": hub_id(base, hub), "files": listed, "bytes": total,
            "complete": manifest is not None, "stored": manifest["stored"] if manifest else None,
        })
        out["total_bytes"] += total
    estimate = await F.storageEstimate()
    if estimate is not None and not is_null(estimate):
        out["usage"], out["quota"] = _get(estimate, "usage"), _get(estimate, "quota")
    return out


async def clear_cache(ref: str = "", base_url: str = "", hub: str | None = None) -> dict:
    """Delete one model's cached files (ref: as for loading), or every cached model (no ref)."""
    F = _fetch_js()
    if not F.cacheAvailable():
        return {"deleted_files": 0, "freed_bytes": 0}
    entries = await F.cacheEntries()
    if _get(entries, "error") is not None:
        raise LoadError(f"cannot read the browser cache ({_get(entries, 'message', '')})", "input")
    entries = [(str(e.url), int(e.size or 0)) for e in entries]
    if not ref:
        await F.cacheDrop()
        chosen = entries
    else:
        base = resolve_reference(ref, base_url, hub)
        chosen = [(url, size) for url, size in entries if url.startswith(base) and "/" not in url[len(base):]]
        r = await F.cacheDelete(to_js([url for url, _ in chosen]))
        if _get(r, "error") is not None:
            raise LoadError(f"cannot delete from the browser cache ({_get(r, 'message', '')})", "input")
    return {"deleted_files": sum(1 for url, _ in chosen if not url.endswith(MANIFEST)),
            "freed_bytes": sum(size for url, size in chosen if not url.endswith(MANIFEST))}
