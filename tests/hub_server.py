"""A local imitation of the Hugging Face Hub, so that URL loading is tested offline.

    hub = Hub().start()                      # two servers: the hub and a CDN on another port
    hub.add("org/name", folder)              # serves folder's files as org/name
    hub.url + "org/name/resolve/main/config.json"

What it imitates (as huggingface.co does it):
  - /<org>/<name>/resolve/<revision>/<file>: small files are served directly; weights (.safetensors,
    .bin, or anything over 1 MB) answer 302 with a Location on the CDN origin, as the Hub redirects
    LFS files to its CDN,
  - CORS on both (Access-Control-Allow-Origin: *, exposed Content-Range / Content-Length / ETag),
    preflight (OPTIONS) answered,
  - Range requests (206 + Content-Range; 416 past the end), an ETag per file,
  - a missing file: 404 with X-Error-Code: EntryNotFound and a JSON body.

Per-repository misbehaviour for the bad-input matrix, `hub.add(repo, folder, **options)`:
  range=False           ignore Range (200 with the whole file, no Accept-Ranges)
  cors=False            no CORS headers at all (the browser refuses to hand over the response)
  html_404=True         a missing file answers 200 with an HTML page (as SPA hosts do)
  status={file: code}   answer this status for a file (500, 401, ...)
  drop_after={file: n}  send the headers and n bytes of the file, then close the connection
  throttle=bytes_per_s  send slowly (for cancelling mid-download)
  expose=False          CORS without Access-Control-Expose-Headers (Content-Range unreadable)

Every request is logged in hub.log as {server, method, path, range, status}.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")
EXPOSE = "Content-Range, Content-Length, ETag, Accept-Ranges, X-Repo-Commit, X-Error-Code, X-Error-Message"
MIME = {".json": "application/json", ".txt": "text/plain; charset=utf-8"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: "Hub" = None  # set on the bound subclass
    role = "hub"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    # -- plumbing
    def _log(self, status):
        self.hub._record({"server": self.role, "method": self.command, "path": urllib.parse.urlsplit(self.path).path,
                          "range": self.headers.get("Range"), "status": status})

    def _cors(self, opts):
        if not opts.get("cors", True):
            return
        self.send_header("Access-Control-Allow-Origin", "*")
        if opts.get("expose", True):
            self.send_header("Access-Control-Expose-Headers", EXPOSE)

    def _simple(self, status, body: bytes, ctype: str, opts, extra=None):
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._cors(opts)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_OPTIONS(self):  # noqa: N802 - CORS preflight
        repo, _, _ = self._route()
        opts = self.hub.options.get(repo, {})
        self._log(204)
        self.send_response(204)
        if opts.get("cors", True):
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def _route(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if self.role == "hub":
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            return (m.group(1), m.group(2), m.group(3)) if m else (None, None, None)
        m = re.match(r"^/repos/([^/]+/[^/]+)/(.+)$", path)
        return (m.group(1), "main", m.group(2)) if m else (None, None, None)

    def do_GET(self):  # noqa: N802
        repo, _revision, name = self._route()
        folder = self.hub.repos.get(repo)
        opts = self.hub.options.get(repo, {})
        if folder is None or name is None:
            return self._simple(404, b'{"error":"Repository not found"}', "application/json", {"cors": True},
                                {"X-Error-Code": "RepoNotFound"})
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents or not path.is_file():
            if opts.get("html_404"):
                page = b"<!DOCTYPE html><html><head><title>Not here</title></head><body>Oops</body></html>"
                return self._simple(200, page, "text/html; charset=utf-8", opts)
            return self._simple(404, b'{"error":"Entry not found"}', "application/json", opts,
                                {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
        status = opts.get("status", {}).get(name)
        if status:
            return self._simple(status, f"error {status}".encode(), "text/plain", opts,
                                {"X-Error-Message": f"simulated error {status}"})
        size = path.stat().st_size
        if self.role == "hub" and opts.get("redirect", True) and (name.endswith(LFS_SUFFIXES) or size > 1 << 20):
            location = f"{self.hub.cdn_url}repos/{repo}/{urllib.parse.quote(name)}?X-Amz-Signature=imitation"
            self._log(302)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.send_header("X-Linked-Size", str(size))
            self._cors(opts)
            self.end_headers()
            return None
        return self._file(path, name, size, opts)

    def _file(self, path: Path, name: str, size: int, opts):
        stat = path.stat()
        etag = '"' + hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest() + '"'
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and opts.get("range", True):
            m = RANGE_RE.match(rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1) == "":
                    start = max(0, size - int(m.group(2)))
                else:
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                if start >= size or start > end:
                    return self._simple(416, b"", "text/plain", opts, {"Content-Range": f"bytes */{size}"})
                status = 206
        length = max(0, end - start + 1)
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", MIME.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        if opts.get("range", True):
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self._cors(opts)
        self.end_headers()
        if self.command == "HEAD":
            return None
        drop = opts.get("drop_after", {}).get(name)
        throttle = opts.get("throttle")
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                step = min(left, 64 * 1024 if throttle else 1 << 20)
                if drop is not None and sent + step > drop:
                    step = drop - sent
                chunk = f.read(step)
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return None
                sent += len(chunk)
                left -= len(chunk)
                if drop is not None and sent >= drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return None
                if throttle:
                    time.sleep(len(chunk) / throttle)
        return None


class Hub:
    def __init__(self, host: str = "127.0.0.1"):
        self.repos: dict[str, Path] = {}
        self.options: dict[str, dict] = {}
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self._servers = []
        for role in ("hub", "cdn"):
            handler = type(f"{role.title()}Handler", (_Handler,), {"hub": self, "role": role})
            httpd = ThreadingHTTPServer((host, 0), handler)
            httpd.daemon_threads = True
            self._servers.append(httpd)
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._servers[0].server_address[1]}/"

    @property
    def cdn_url(self) -> str:
        return f"http://{self.host}:{self._servers[1].server_address[1]}/"

    def add(self, repo: str, folder, **options) -> str:
        self.repos[repo] = Path(folder)
        self.options[repo] = options
        return repo

    def _record(self, entry: dict) -> None:
        with self._lock:
            self.log.append(entry)

    def requests(self, repo: str | None = None) -> list[dict]:
        with self._lock:
            entries = list(self.log)
        if repo is None:
            return entries
        return [e for e in entries if e["path"].startswith(f"/{repo}/") or e["path"].startswith(f"/repos/{repo}/")]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def start(self) -> "Hub":
        for httpd in self._servers:
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()


def main() -> None:  # python tests/hub_server.py ORG/NAME=FOLDER ... : serve them by hand
    import sys

    hub = Hub().start()
    for arg in sys.argv[1:]:
        repo, _, folder = arg.partition("=")
        hub.add(repo, Path(folder))
        print(f"{repo}: {hub.url}{repo}/resolve/main/", flush=True)
    print(json.dumps({"hub": hub.url, "cdn": hub.cdn_url}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
    os._exit(0)
