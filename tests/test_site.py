"""The site as shipped: pyscript.toml ships every module and shader, the server speaks correct HTTP
(MIME types, Range, 404, no path traversal), and the built `_site/` boots under a sub-path, as
GitHub Pages serves it (https://<user>.github.io/<repo>/), using only relative same-origin URLs."""

from __future__ import annotations

import ast
import html.parser
import http.client
import json
import tomllib
import urllib.parse
from pathlib import Path

import pytest

import build_site  # tools/ is on sys.path (conftest)
from conftest import ROOT, new_guarded_page, wait_ready
from serve import Server

PYSCRIPT = tomllib.loads((ROOT / "pyscript.toml").read_text(encoding="utf-8"))
FILES = PYSCRIPT.get("files", {})
MODEL = "weights/shakespeare-char"
SUBPATH = "/repo/"


def _local(key: str) -> str:
    """'./app/gpu.py' -> 'app/gpu.py' (a [files] source URL, relative to the page)."""
    return key[2:] if key.startswith("./") else key


class _PyScripts(html.parser.HTMLParser):
    """`<script type="py" src=...>` files: fetched by URL, so they need no [files] entry."""

    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("type") in ("py", "mpy") and a.get("src"):
            self.srcs.append(_local(a["src"]))


def _entry_scripts() -> list[str]:
    parser = _PyScripts()
    parser.feed((ROOT / "index.html").read_text(encoding="utf-8"))
    return parser.srcs


# --- (a) pyscript.toml ships the package --------------------------------------------------------

def test_pyscript_toml_points_at_the_local_runtime():
    assert PYSCRIPT["interpreter"] == "./vendor/pyodide/pyodide.mjs"
    assert FILES, "pyscript.toml has no [files]"


def test_every_app_module_and_shader_is_listed_in_pyscript_toml():
    listed = {_local(k) for k in FILES}
    entry = set(_entry_scripts())
    assert entry, "index.html has no <script type=\"py\" src=...>"
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app").rglob("*.py") if "__pycache__" not in p.parts}
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "shaders").glob("*.wgsl")}
    missing = sorted(wanted - listed - entry)
    assert not missing, f"not shipped by pyscript.toml [files]: {missing}"


def test_every_listed_file_exists_and_lands_in_the_package():
    missing = [k for k in FILES if not (ROOT / _local(k)).is_file()]
    assert not missing, f"pyscript.toml [files] lists missing files: {missing}"
    for src in _entry_scripts():
        assert (ROOT / src).is_file(), f"index.html runs {src}, which does not exist"
    destinations = list(FILES.values())
    assert len(destinations) == len(set(destinations)), "two [files] entries share a destination"
    for key, dest in FILES.items():
        if key.startswith("./app/"):
            assert dest == "./pywebgpt/" + key[len("./app/"):], f"{key} -> {dest}"
        if key.startswith("./shaders/"):
            assert dest == "./pywebgpt/shaders/" + key[len("./shaders/"):], f"{key} -> {dest}"


def test_every_package_import_resolves_to_a_shipped_module():
    """A relative import of a module that pyscript.toml does not ship fails only in the browser."""
    shipped = {Path(_local(k)).stem for k in FILES if k.startswith("./app/") and k.endswith(".py")}
    problems = []
    for path in sorted((ROOT / "app").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pywebgpt":
                rest = node.module.split(".")[1:]
                names = rest[:1] if rest else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("pywebgpt.")]
            for name in names:
                module = name.split(".")[0]
                if module not in shipped:
                    problems.append(f"app/{path.name}:{node.lineno} imports {module!r}, "
                                    f"which pyscript.toml does not ship (app/{module}.py)")
    assert not problems, "\n".join(problems)


def test_the_python_api_example_ships_the_package():
    """examples/python-api/ runs the Python API without the page's UI: it ships every app module but
    the page's entry point and UI (app/main.py, app/ui*.py), and every shader."""
    example = tomllib.loads((ROOT / "examples/python-api/pyscript.toml").read_text(encoding="utf-8"))
    listed = {k.removeprefix("../../") for k in example["files"]}
    wanted = {f"app/{p.name}" for p in (ROOT / "app").glob("*.py") if p.name != "main.py" and
              not p.name.startswith("ui")}
    wanted |= {f"shaders/{p.name}" for p in (ROOT / "shaders").glob("*.wgsl")}
    assert sorted(wanted - listed) == [] and sorted(listed - wanted) == []


# --- tools/build_site.py --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "_site"
    summary = build_site.build(out)
    assert summary["files"] > 0 and summary["bytes"] > 0
    return out


def test_built_site_has_the_page_runtime_and_models_and_nothing_else(built_site):
    top = {p.name for p in built_site.iterdir()}
    assert top == {"index.html", "pyscript.toml", "sw.js", "app", "shaders", "web", "vendor", "weights",
                   ".nojekyll"}, top
    for key in FILES:
        assert (built_site / _local(key)).is_file(), key
    assert (built_site / _local(PYSCRIPT["interpreter"])).is_file()
    for name in build_site.vendoring.PYODIDE_FILES:
        assert (built_site / "vendor" / "pyodide" / name).is_file(), name
    assert (built_site / "vendor" / "pyscript" / "core.js").is_file()
    for folder in build_site.weight_folders(ROOT / "weights"):
        for f in folder.rglob("*"):
            if f.is_file() and not f.name.startswith("."):
                copy = built_site / "weights" / folder.name / f.relative_to(folder)
                assert copy.is_file() and copy.stat().st_size == f.stat().st_size, copy
    assert (built_site / MODEL / "model.safetensors").is_file()
    assert not list(built_site.rglob("__pycache__")) and not list(built_site.rglob("*.map"))


def test_page_urls_are_relative(built_site):
    assert build_site.url_problems(built_site) == []


def test_url_check_catches_absolute_and_foreign_urls(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "index.html").write_text(
        '<link rel="icon" href="/favicon.ico"><script src="https://cdn.example/x.js"></script>'
        '<script type="module" src="web/ok.js"></script><a href="#top">x</a>')
    (tmp_path / "pyscript.toml").write_text(
        'interpreter = "/vendor/pyodide/pyodide.mjs"\n[files]\n"./app/a.py" = "./a.py"\n')
    (tmp_path / "web" / "ok.js").write_text("import x from './y.js';\nconst r = fetch('/weights/m/config.json');\n")
    problems = build_site.url_problems(tmp_path)
    assert len(problems) == 4, problems
    assert any("/favicon.ico" in p for p in problems) and any("cdn.example" in p for p in problems)
    assert any(p.startswith("pyscript.toml") for p in problems)
    assert any(p.startswith("web/ok.js:2") for p in problems)


# --- (b) the server ------------------------------------------------------------------------------

def _get(server: Server, target: str, headers: dict | None = None, method: str = "GET"):
    """One raw request (the target is sent exactly as given: no client-side normalisation)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path, mime", [
    ("vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("vendor/pyodide/pyodide.mjs", "text/javascript"),
    ("shaders/linear.wgsl", "text/wgsl"),
    (f"{MODEL}/config.json", "application/json"),
    (f"{MODEL}/model.safetensors", "application/octet-stream"),
    ("pyscript.toml", "application/toml"),
    ("index.html", "text/html"),
])
def test_server_mime_types(site_server, path, mime):
    status, headers, body = _get(site_server, "/" + path, method="HEAD")
    assert status == 200
    assert headers["content-type"].split(";")[0].strip() == mime
    assert int(headers["content-length"]) == (ROOT / path).stat().st_size
    assert "no-cache" in headers.get("cache-control", "")


def test_server_range_requests(site_server):
    path = f"{MODEL}/model.safetensors"
    data = (ROOT / path).read_bytes()
    size = len(data)

    status, headers, body = _get(site_server, "/" + path, {"Range": "bytes=0-7"})
    assert status == 206
    assert headers["content-range"] == f"bytes 0-7/{size}"
    assert int(headers["content-length"]) == 8 and body == data[:8]
    assert headers["content-type"] == "application/octet-stream"

    status, headers, body = _get(site_server, "/" + path, {"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000] and headers["content-range"] == f"bytes 1000-1999/{size}"

    status, headers, body = _get(site_server, "/" + path, {"Range": f"bytes={size - 5}-"})
    assert status == 206 and body == data[-5:] and headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"

    status, headers, body = _get(site_server, "/" + path, {"Range": "bytes=-16"})
    assert status == 206 and body == data[-16:]

    status, headers, body = _get(site_server, "/" + path, {"Range": f"bytes={size - 2}-{size + 100}"})
    assert status == 206 and body == data[-2:], "a range past the end is clipped to the file"

    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
        status, headers, _ = _get(site_server, "/" + path, {"Range": unsatisfiable})
        assert status == 416, unsatisfiable
        assert headers["content-range"] == f"bytes */{size}"

    status, headers, body = _get(site_server, "/" + path)
    assert status == 200 and len(body) == size and headers.get("accept-ranges") == "bytes"


def test_server_404_for_missing_files(site_server):
    assert _get(site_server, "/no/such/file.wgsl")[0] == 404
    assert _get(site_server, "/weights/no-such-model/config.json", {"Range": "bytes=0-7"})[0] == 404


@pytest.fixture(scope="module")
def traversal_server(tmp_path_factory):
    """A site folder with a secret next to it, served at / and mounted at /mnt/."""
    base = tmp_path_factory.mktemp("traversal")
    (base / "site").mkdir()
    (base / "site" / "index.html").write_text("<p>site</p>")
    (base / "site" / "sub").mkdir()
    (base / "site" / "sub" / "a.txt").write_text("inside")
    (base / "secret.txt").write_text("TOP-SECRET")
    server = Server(base / "site", mounts={"/mnt/": base / "site"}).start()
    yield server
    server.stop()


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/mnt/../secret.txt",
    "/mnt/%2e%2e/secret.txt",
    "/mnt/sub/%2e%2e/%2e%2e/secret.txt",
    "/mnt/..%2f..%2fsecret.txt",
])
def test_server_refuses_path_traversal(traversal_server, target):
    for headers in ({}, {"Range": "bytes=0-3"}):
        status, _, body = _get(traversal_server, target, headers)
        assert b"TOP" not in body, (target, status, body)
        assert status in (400, 403, 404), (target, status)


def test_server_mount_serves_inside_files(traversal_server):
    assert _get(traversal_server, "/mnt/sub/a.txt")[2] == b"inside"
    assert _get(traversal_server, "/mnt/sub/../sub/a.txt")[2] == b"inside"
    assert b"site" in _get(traversal_server, "/mnt/")[2]


# --- (c) the built site boots under a sub-path ---------------------------------------------------

@pytest.fixture(scope="module")
def subpath_url(built_site, tmp_path_factory):
    """_site/ mounted at /repo/ of an origin whose root is an empty folder (as on GitHub Pages)."""
    empty = tmp_path_factory.mktemp("origin-root")
    server = Server(empty, mounts={SUBPATH: built_site}).start()
    yield f"http://{server.host}:{server.port}{SUBPATH}"
    server.stop()


class _Recorder:
    def __init__(self, page):
        self.urls: list[str] = []
        self.failed: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url}: HTTP {r.status}"))

    def outside(self, base: str) -> list[str]:
        """The requests for neither `base` nor this page's own in-memory blob: URLs (the engine
        worker's script, web/engine-client.js), which name the origin without any path."""
        blob = "blob:" + urllib.parse.urljoin(base, "/")
        return [u for u in self.urls if not u.startswith((base, blob))]


@pytest.mark.browser
def test_built_site_boots_under_a_sub_path(browser, subpath_url):
    context = browser.new_context()
    try:
        page, guard = new_guarded_page(context)
        seen = _Recorder(page)
        page.goto(subpath_url)
        info = wait_ready(page)
        assert info["pyodide_version"] == "314.0.7"
        assert page.locator("#status").get_attribute("data-state") == "ready"
        print(f"{len(seen.urls)} requests under {subpath_url}")
        assert seen.urls, f"no requests under {subpath_url}"
        assert not seen.outside(subpath_url), f"requests outside {subpath_url}: {seen.outside(subpath_url)}"
        assert not seen.failed, f"failed requests: {seen.failed}"
        assert any(u.endswith("/pyodide.asm.wasm") for u in seen.urls)
        assert not guard.unexpected(), "unexpected console/page errors:\n" + "\n".join(guard.unexpected())
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_built_site_loads_the_bundled_model_under_a_sub_path(browser, subpath_url):
    """The bundled model is fetched relative to the page, so it too stays under the sub-path."""
    context = browser.new_context()
    try:
        page, guard = new_guarded_page(context)
        guard.allow(r"Failed to load resource: .*\b404\b")  # the optional tokenizer probes, checked below
        seen = _Recorder(page)
        page.goto(subpath_url)
        wait_ready(page)
        config = json.loads((ROOT / MODEL / "config.json").read_text())
        model = page.evaluate("(ref) => window.pywebgpt.load(ref)", MODEL + "/")
        assert model["n_layer"] == config["n_layer"] and model["vocab_size"] == config["vocab_size"]
        weights = [u for u in seen.urls if "/weights/" in u and not u.endswith("/weights/models.json")]
        assert weights, seen.urls
        assert all(urllib.parse.urlsplit(u).path.startswith(SUBPATH + MODEL + "/") for u in weights), weights
        assert not seen.outside(subpath_url), f"requests outside {subpath_url}: {seen.outside(subpath_url)}"
        # The loader probes the tokenizer files a folder may have (the absent ones answer 404), and
        # cancels a probe of a file's first bytes once it has them (net::ERR_ABORTED).
        absent = ("vocab.json", "merges.txt", "tokenizer.json")
        expected = tuple(f"{SUBPATH}{MODEL}/{name}: HTTP 404" for name in absent)
        failed = [f for f in seen.failed if not urllib.parse.urlsplit(f).path.endswith(expected)
                  and not (f.startswith(subpath_url + MODEL + "/") and f.endswith("net::ERR_ABORTED"))]
        assert not failed, f"failed requests: {failed}"
        assert not guard.unexpected(), "unexpected console/page errors:\n" + "\n".join(guard.unexpected())
    finally:
        context.close()
