"""Where a model's files come from: a folder of the site, any URL, a Hugging Face Hub id, or files
the user picked. Each source answers the same questions (text of a small file, the first bytes of
a big one, a byte range, the whole file with progress) so the load pipeline (app/loader.py) does not
care which it has.

    'weights/shakespeare-char/'      a folder served with the site (relative to the page)
    './models/x/', '/models/x/'      any other folder on the site's server
    'https://host/path/to/folder/'   a base URL (the server must allow CORS)
    'openai-community/gpt2'          a Hugging Face Hub id -> https://huggingface.co/<id>/resolve/main/
                                     (also https://huggingface.co/<id> and .../tree/main pages)
    files=[{path, file}, ...]        a folder the user picked or dropped: JS File objects with their
                                     relative paths.

UrlSource reads through web/fetch.js and keeps every file of a model loaded over HTTP in the
browser's Cache Storage ('pywebgpt-models-v1', complete and size-checked files only) with a manifest
`<base>.pywebgpt-manifest.json` written after a successful load; the next load of the same
reference reads everything from the cache without a single network request. `cache`: True
(default), 'refresh' (download again and replace) or False. A full quota is a notice, not a
failure. Cached files are kept until cleared (app/model_cache.py).
"""

from __future__ import annotations

import json
import re
import time

import js
from pyodide.ffi import create_proxy, to_js

from .errors import LoadCancelled, LoadError
from .gpu import is_null
from .load_job import LoadJob

HUB = "https://huggingface.co"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
MANIFEST = ".pywebgpt-manifest.json"
PROGRESS_EVERY_MS = 100


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


def split_gguf_reference(ref) -> tuple:
    """(the folder reference, the .gguf file name) for a reference to one GGUF file: a URL, a
    path, a Hub file ('org/name/model.Q8_0.gguf') or its Hub page (.../blob/main/model.gguf);
    (ref, None) for anything else."""
    ref = str(ref).strip()
    if not ref.lower().endswith(".gguf") or "/" not in ref:
        return ref, None
    folder, name = ref.rsplit("/", 1)
    page = re.match(r"^https://(?:www\.)?huggingface\.co/([\w.-]+/[\w.-]+)/(?:blob|resolve)/([\w.-]+)$", folder)
    if page:
        return f"{HUB}/{page.group(1)}/resolve/{page.group(2)}/", name
    if re.fullmatch(r"[\w][\w.-]*/[\w][\w.-]*", folder) and not folder.startswith("weights/"):
        return folder, name  # a Hub id, as a folder reference without its slash is
    return folder + "/", name


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


class UrlSource:
    """Files under a base URL: fetch() through web/fetch.js, and the browser's Cache Storage."""

    kind = "url"
    gguf_name = None  # the model is this one .gguf file of the folder

    def __init__(self, base: str, job: LoadJob, cache=True):
        self.base = base
        self.job = job
        self.F = _fetch_js()
        available = bool(self.F.cacheAvailable())
        self.cache_write = available and cache not in (False, "off", None)
        self.cache_read = self.cache_write and cache != "refresh"
        self.manifest: dict | None = None   # name -> size, from a complete earlier load
        self.seen: dict = {}                # name -> size of every file this load used
        self.etags: dict = {}               # name -> ETag the server sent for it this load
        self.stored_etags: dict = {}        # name -> ETag of the cached copy (from the manifest)
        self.notices: list = []
        self.from_cache: set = set()
        self.cache_failed = False
        in_page = not is_null(getattr(js.globalThis, "document", None))
        if not available and cache not in (False, "off", None) and in_page:
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
                etags = manifest.get("etags")
                self.stored_etags = {k: v for k, v in etags.items() if isinstance(v, str)} \
                    if isinstance(etags, dict) else {}
        except (ValueError, KeyError, TypeError):
            self.manifest = None
        if self.manifest is not None:
            await self._revalidate()

    async def _revalidate(self) -> None:
        """A cached model is checked against the server once per load: one request for one byte of
        each weight file, whose ETag must be the one the cached copy was stored with. A changed file
        makes the whole folder download again; no answer (offline) uses the cache, and says so."""
        for name, etag in self.stored_etags.items():
            r = await self.F.revalidate(self.url(name), self.job.signal)
            self._count()
            if _get(r, "error") is not None:
                if self.job.cancelled:
                    raise LoadCancelled()
                self.notices.append("the server could not be reached to check for a newer version (offline?): "
                                    "the cached copy was used")
                return
            status, now = int(_get(r, "status", 0)), _get(r, "etag")
            if status in (200, 206) and now is not None and str(now) == etag:
                continue
            if status in (200, 206):
                self.notices.append(f"{name} changed on the server since it was cached: the model was downloaded "
                                    f"again")
                await self.F.cacheDelete(to_js([self.url(n) for n in [*self.manifest, MANIFEST]]))
                self.manifest, self.cache_read = None, False
                return
            self.notices.append(f"{name}: the server answered HTTP {status} when asked whether the cached copy is "
                                f"current: the cached copy was used")
            return

    def known_absent(self, name: str) -> bool:
        # a folder of GGUF files: the manifest lists those loaded so far, not every file there
        return self.manifest is not None and name not in self.manifest and not name.lower().endswith(".gguf")

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

    async def stream(self, name: str, size: int | None, ranges: list, handover, expected: int, recheck) -> int:
        """The whole file streamed to `handover` (app/loader.py: called from web/fetch.js with each
        group of tensors, [start0, end0, ...] = `ranges`, as soon as its bytes are in), with progress:
        from the cache when it holds the file, else downloaded and written to the cache as it comes.
        -> the file's size. Where `size` is unknown, `recheck(name, size)` checks the tensors
        against the size read, and the cache entry is stored only if it is `expected` bytes."""
        url = self.url(name)
        job = self.job
        started = time.perf_counter()
        state = {"from_cache": False}

        def progress(loaded):
            job.emit("download", name, int(loaded), size, state["from_cache"], started)

        progress_proxy, group_proxy, groups = create_proxy(progress), create_proxy(handover), to_js(ranges)
        try:
            if self.cache_read:
                state["from_cache"] = True
                r = await self.F.cacheRead(url, size, groups, group_proxy, job.signal, progress_proxy,
                                           PROGRESS_EVERY_MS)
                handover.check()
                if _get(r, "error") == "abort" or job.cancelled:
                    raise LoadCancelled()
                stored, loaded = _get(r, "size"), _get(r, "loaded")
                if _get(r, "error") is None and loaded is not None and int(loaded) == int(stored):
                    got = int(loaded)
                    if size is None:
                        recheck(name, got)
                    self.from_cache.add(name)
                    job.stats["cache_bytes"] += got
                    return got
                if not _get(r, "missing") or _get(r, "stale"):  # a stale or damaged entry: forget it, download again
                    await self.F.cacheDelete(to_js([url]))
                state["from_cache"] = False
                started = time.perf_counter()
            cache_size = None
            if self.cache_write and not self.cache_failed:
                cache_size = size if size is not None else expected
            r = await self.F.download(url, size, groups, group_proxy, job.signal, progress_proxy, PROGRESS_EVERY_MS,
                                      cache_size, self.etags.get(name))
        finally:
            progress_proxy.destroy()
            group_proxy.destroy()
        loaded = int(_get(r, "loaded", 0) or 0)
        self._count(loaded)
        handover.check()
        kind = _get(r, "error")
        if kind is not None:
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
        if size is None:
            recheck(name, loaded)
        elif loaded != size:
            raise LoadError(f"{name}: the download ended after {_mb(loaded)} but the file has {_mb(size)} "
                            f"(connection closed early?); try again", "network")
        etag = _get(r, "etag")
        if etag:
            self.etags[name] = str(etag)
        if cache_size is not None:
            self._cache_outcome(name, _get(r, "cache"), loaded)
        return loaded

    # -- cache
    async def store(self, name: str, data, size: int, etag) -> None:
        """Put one complete, size-checked small file in Cache Storage; a full quota turns caching off."""
        if not self.cache_write or self.cache_failed:
            return
        self.job.emit("cache", name, 0, size)
        self._cache_outcome(name, await self.F.cachePut(self.url(name), data, size, etag), size)

    def _cache_outcome(self, name: str, r, size: int) -> None:
        """What became of writing `name` to the cache: a failure is a notice and turns caching off."""
        kind = _get(r, "error") if r is not None else "cache"
        if kind is None:
            self.job.emit("cache", name, size, size)
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
        files = {**(self.manifest or {}), **self.seen}  # other GGUF files of the folder stay listed
        etags = {k: v for k, v in {**self.stored_etags, **self.etags}.items() if k in files}
        manifest = json.dumps({"files": files, "stored": js.Date.new().toISOString(), "base": self.base,
                               "etags": etags})
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
        self.gguf_name = None
        ggufs = [(f, n) for f, names in folders.items() for n in names if n.lower().endswith(".gguf")]
        if not with_config and len(ggufs) == 1:  # one GGUF file holds the whole model
            self.folder, self.gguf_name = ggufs[0]
            self.files = folders[self.folder]
            return
        if not with_config and len(ggufs) > 1:
            shown = ", ".join(n for _, n in ggufs[:6])
            raise LoadError(f"the picked files hold {len(ggufs)} GGUF files ({shown}): pick one of them", "input")
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
        if self.gguf_name:
            return f"picked file {self.gguf_name}"
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

    async def stream(self, name: str, size: int | None, ranges: list, handover, expected: int, recheck) -> int:
        """The picked file streamed to `handover` (see UrlSource.stream); -> its size."""
        job = self.job
        started = time.perf_counter()
        progress_proxy = create_proxy(lambda loaded: job.emit("download", name, int(loaded), size, False, started))
        group_proxy = create_proxy(handover)
        try:
            r = await self.F.fileRead(self.files[name], to_js(ranges), group_proxy, job.signal, progress_proxy,
                                      PROGRESS_EVERY_MS)
        finally:
            progress_proxy.destroy()
            group_proxy.destroy()
        handover.check()
        got = int(_get(r, "loaded", 0) or 0)
        if _get(r, "error") == "size" or (_get(r, "error") is None and size is not None and got != size):
            raise LoadError(f"{name}: the file changed while it was read ({_mb(got)}, expected {_mb(size)}); pick it "
                            f"again", "input")
        if _get(r, "error") is not None:
            self._read_error(name, r)
        if size is None:
            recheck(name, got)
        self.seen[name] = got
        return got

    async def start(self) -> None:
        return None

    async def finish(self) -> None:
        return None


def make_source(ref, files, base_url: str, job: LoadJob, cache, hub):
    if files is not None and not is_null(files):
        entries = []
        for item in files:
            path = _get(item, "path")
            file = _get(item, "file")
            if file is None:  # a bare File
                file, path = item, _get(item, "webkitRelativePath") or _get(item, "name")
            entries.append((str(path or _get(file, "name", "")), file))
        return FileSource(entries, job)
    folder, gguf_name = split_gguf_reference(ref)
    source = UrlSource(resolve_reference(folder, base_url, hub), job, cache)
    source.gguf_name = gguf_name
    return source
