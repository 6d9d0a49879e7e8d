"""Install the pure-Python wheels that the site serves itself (web/wheels/: Jinja2 and MarkupSafe)
into this interpreter, on first use: `await ensure_jinja2()` before rendering a chat template.

Why this way (web/wheels/README.md says more): Pyodide's own jinja2/markupsafe packages and micropip
are fetched from its CDN, and the page loads nothing from another origin. So the site serves the two
wheels itself, and this module unpacks them into site-packages with `zipfile`, after checking each
one's sha256 and size against web/wheels/manifest.json. The same code runs in the page, in a worker,
under Node (the runner copies web/wheels/ into the package's folder) and in CPython tests,
and nothing is fetched until a chat template is rendered, so the page's start-up does not grow.

Standard library only.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import io
import json
import os
import sys
import sysconfig
import urllib.parse
import zipfile

from .errors import LoadError

MANIFEST = "manifest.json"
SITE_FOLDER = "web/wheels/"  # where the site serves them, relative to its root
# the Node runner copies web/wheels/ here, beside the package's modules
LOCAL_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "wheels")

_pending = None  # the install in progress: concurrent callers share it


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_source() -> str:
    """The package's own web/wheels/ folder when there is one (Node), else web/wheels/ under the page's
    URL (in the engine worker, the page's URL that it was given: web/engine-worker.js)."""
    if os.path.isfile(os.path.join(LOCAL_FOLDER, MANIFEST)):
        return LOCAL_FOLDER
    from .engine import _page_url  # noqa: PLC0415 - Pyodide only: CPython has jinja2 installed or passes a folder

    return urllib.parse.urljoin(_page_url(), SITE_FOLDER)  # as the page resolves its own links


def check_wheel(data: bytes, entry: dict) -> None:
    """The wheel's bytes are the ones manifest.json names (size and sha256), or LoadError."""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry["size"] or digest != entry["sha256"]:
        raise LoadError(f"{SITE_FOLDER}{entry['file']}: {len(data)} bytes with sha256 {digest}, but "
                        f"{SITE_FOLDER}{MANIFEST} says {entry['size']} bytes with sha256 {entry['sha256']}; "
                        "the site serves a different file", code="format")


def unpack_wheel(data: bytes, entry: dict, target: str) -> None:
    """Unpack a checked pure-Python wheel into `target` (a site-packages folder)."""
    check_wheel(data, entry)
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        for name in wheel.namelist():
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "\\" in name:
                raise LoadError(f"{SITE_FOLDER}{entry['file']}: unsafe path {name!r} in the wheel", code="format")
        wheel.extractall(target)
    importlib.invalidate_caches()


def _manifest(text: str) -> list:
    try:
        wheels = json.loads(text)["wheels"]
        for entry in wheels:
            entry["file"], entry["sha256"], entry["size"] = str(entry["file"]), str(entry["sha256"]), int(entry["size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{SITE_FOLDER}{MANIFEST} is not a wheel manifest: {exc}", code="format") from None
    return wheels


def install_from_folder(folder: str, target: str | None = None) -> list[str]:
    """Install every wheel of manifest.json from a local folder; returns the files installed."""
    target = target or sysconfig.get_paths()["purelib"]
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as fh:
        wheels = _manifest(fh.read())
    for entry in wheels:
        with open(os.path.join(folder, entry["file"]), "rb") as fh:
            unpack_wheel(fh.read(), entry, target)
    _on_path(target)
    return [entry["file"] for entry in wheels]


async def _fetch_bytes(url: str) -> bytes:
    import js  # noqa: PLC0415 - Pyodide only

    try:
        response = await js.fetch(url)
    except Exception as exc:  # noqa: BLE001 - a JS TypeError: offline, blocked, CORS
        raise LoadError(f"could not fetch {url}: {exc}", code="network") from None
    if not response.ok:
        raise LoadError(f"could not fetch {url}: HTTP {response.status}", code="http")
    return (await response.arrayBuffer()).to_bytes()


async def install_from_url(base: str, target: str | None = None) -> list[str]:
    """Install every wheel of base + manifest.json, fetched over HTTP (the page, a worker)."""
    base = base if base.endswith("/") else base + "/"
    target = target or sysconfig.get_paths()["purelib"]
    wheels = _manifest((await _fetch_bytes(base + MANIFEST)).decode("utf-8"))
    for entry in wheels:
        unpack_wheel(await _fetch_bytes(base + entry["file"]), entry, target)
    _on_path(target)
    return [entry["file"] for entry in wheels]


def _on_path(target: str) -> None:
    if target not in sys.path:
        sys.path.append(target)
    importlib.invalidate_caches()


async def ensure_jinja2(source: str | None = None) -> bool:
    """Make `import jinja2` work here. Returns False when it already did (CPython with jinja2, or a
    second call), True when this call installed the wheels. `source`: a local folder or the URL of
    the folder holding manifest.json (default: default_source())."""
    global _pending
    if importable("jinja2") and importable("markupsafe"):
        return False
    source = source or default_source()
    if os.path.isdir(source):
        install_from_folder(source)
        return True
    if _pending is None:
        _pending = asyncio.ensure_future(install_from_url(source))
    task = _pending
    try:
        await task
    except BaseException:
        if _pending is task:  # a failed install (offline, say) is tried again by the next call
            _pending = None
        raise
    return True
