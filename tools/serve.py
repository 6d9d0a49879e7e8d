"""Serve the PyWebGPT site locally: correct MIME types, Range requests, no caching surprises.

    python tools/serve.py [--host 127.0.0.1] [--port 8000] [--root DIR]

Runs the vendoring step first when vendor/ is missing. The same server is used by the tests and by
tools/generate.py (which also mounts a model folder from anywhere on disk under /models/<name>/).
"""

from __future__ import annotations

import argparse
import email.utils
import os
import posixpath
import re
import sys
import threading
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wgsl": "text/wgsl",
    ".json": "application/json",
    ".safetensors": "application/octet-stream",
    ".bin": "application/octet-stream",
    ".toml": "application/toml",
    ".py": "text/x-python",
    ".zip": "application/zip",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)$")


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with Range support. `mounts` maps URL prefixes ("/models/x/") to folders."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    mounts: dict[str, Path] = {}
    quiet = True

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        if not self.quiet:
            super().log_message(format, *args)

    def end_headers(self):
        # Revalidate every time: a stale pyscript.toml or shader after an edit is a classic trap.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        clean = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        for prefix, folder in self.mounts.items():
            if clean.startswith(prefix):
                rest = posixpath.normpath(clean[len(prefix):]).lstrip("/")
                if rest.startswith(".."):
                    return str(Path(folder) / "__outside__")
                return str(Path(folder) / rest)
        return super().translate_path(path)

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path) or "Range" not in self.headers:
            return super().send_head()
        match = RANGE_RE.match(self.headers["Range"].strip())
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = os.fstat(f.fileno()).st_size
        if not match or (match.group(1) == "" and match.group(2) == ""):
            f.close()
            self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            return None
        if match.group(1) == "":  # suffix range: last N bytes
            start, end = max(0, size - int(match.group(2))), size - 1
        else:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
        end = min(end, size - 1)
        if start >= size or start > end:
            f.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", email.utils.formatdate(os.fstat(f.fileno()).st_mtime, usegmt=True))
        self.end_headers()
        f.seek(start)
        self._range_left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        left = getattr(self, "_range_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        self._range_left = None
        while left > 0:
            chunk = source.read(min(left, 1 << 20))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A browser that stops reading (a cancelled model download, a closed page) is not an error
        # worth a traceback on stderr: tools/generate.py promises one line of output on failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Server:
    """A site server on a background thread (tests, tools) or in the foreground (serve.py)."""

    def __init__(self, root: Path = ROOT, host: str = "127.0.0.1", port: int = 0,
                 mounts: dict[str, Path] | None = None, handler: type = SiteHandler):
        handler_cls = type("BoundHandler", (handler,), {"mounts": dict(mounts or {})})
        self.httpd = _QuietServer((host, port), partial(handler_cls, directory=str(root)))
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> "Server":
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the PyWebGPT site.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--root", type=Path, default=ROOT, help="folder to serve (default: the repository)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.root.resolve() == ROOT:
        sys.path.insert(0, str(ROOT / "tools"))
        import vendor  # noqa: PLC0415 - only needed when serving the repository itself

        vendor.vendor()
    SiteHandler.quiet = not args.verbose
    try:
        server = Server(args.root, args.host, args.port)
    except OSError as exc:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    print(f"PyWebGPT is served at {server.url}  (Ctrl+C to stop)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
