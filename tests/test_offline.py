"""Offline use: the service worker (sw.js), its shell (tools/shell_manifest.py, web/shell-manifest.json),
and the page's list of the models stored in this browser.

CPython: the manifest and sw.js's generated part are current and cover what the page loads.
Browser (one context on this module's own server, whose deploy a test can change): a first visit
installs the shell; the storage panel lists the model the loader cached, deletes it, and asks for
persistent storage past the size threshold; a new deploy is installed at the next visit while the
open page keeps its version whole, downloads only the changed files, and takes over at the reload,
its old cache gone; the worker answers shell files (Range requests included) and leaves other
requests to the network without storing them; with the network off (the context offline and the
server stopped) the page boots from the cache and generates the bundled model's golden text."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest

import shell_manifest  # tools/ is on sys.path (conftest)
from conftest import ROOT, new_guarded_page, run_page_py, wait_ready
from serve import Server, SiteHandler
from vendor import vendor

BUNDLED = ROOT / "weights" / "shakespeare-char"
GOLDEN = json.loads((BUNDLED / "golden.json").read_text(encoding="utf-8"))
SHOTS = ROOT / "tests" / "screenshots"
MARKER = "<!-- deploy 2: a changed shell file -->"
PERSIST_PROBE = """
window.__persistCalls = 0;
const persist = StorageManager.prototype.persist;
StorageManager.prototype.persist = function () { window.__persistCalls += 1; return persist.call(this); };
"""

OVERRIDES: dict[str, Path] = {}  # URL path -> file served instead (a new deploy)
REQUESTS: list[str] = []         # URL paths the server was asked for


class DeployHandler(SiteHandler):
    def do_GET(self):  # noqa: N802 - the name is http.server's
        REQUESTS.append(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        super().do_GET()

    def translate_path(self, path: str) -> str:
        clean = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if clean in OVERRIDES:
            return str(OVERRIDES[clean])
        return super().translate_path(path)


# ------------------------------------------------------------------------------------ CPython


def test_manifest_and_worker_are_current():
    """Fails when a shell file changed without `python3 tools/shell_manifest.py` being run."""
    vendor()
    assert shell_manifest.stale() == [], "stale: run python3 tools/shell_manifest.py"
    manifest = json.loads((ROOT / shell_manifest.MANIFEST).read_text(encoding="utf-8"))
    paths = {f["path"] for f in manifest["files"]}
    assert {"index.html", "pyscript.toml", "web/api.js", "web/offline.js", "app/main.py", "app/selftest.py",
            "shaders/linear.wgsl", "vendor/pyodide/pyodide.asm.wasm", "vendor/pyscript/core.js",
            "weights/models.json", "weights/shakespeare-char/model.safetensors",
            "weights/shakespeare-char/golden.json", "web/wheels/jinja2-3.1.6-py3-none-any.whl"} <= paths
    assert "sw.js" not in paths and shell_manifest.MANIFEST not in paths
    assert manifest["models"] == ["weights/shakespeare-char/"]
    assert f"const VERSION = '{manifest['version']}';" in (ROOT / "sw.js").read_text(encoding="utf-8")
    changed = shell_manifest.build(ROOT, {"index.html": b"other"})
    assert changed["version"] != manifest["version"] and len(changed["files"]) == len(manifest["files"])


# ------------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    vendor()
    models = tmp_path_factory.mktemp("offline-models")
    copy = models / "copy"
    copy.mkdir()
    for name in ("config.json", "char_vocab.json", "model.safetensors"):
        shutil.copy2(BUNDLED / name, copy / name)
    server = Server(ROOT, handler=DeployHandler, mounts={"/models/": models}).start()
    server.stopped = False
    yield server
    OVERRIDES.clear()
    if not server.stopped:
        server.stop()


@pytest.fixture(scope="module")
def page(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(PERSIST_PROBE)
    page, guard = new_guarded_page(context)
    guard.allow(r"Failed to load resource: the server responded with a status of 404")  # optional model files
    page.goto(site.url)
    wait_ready(page)
    page.wait_for_selector("body[data-model='loaded']", state="attached")
    page.guard = guard
    yield page
    problems = guard.unexpected()
    context.close()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


def shell_caches(page) -> dict:
    """{cache name: number of entries} of the shell caches of this origin."""
    return page.evaluate("""async () => {
      const out = {};
      for (const name of await caches.keys()) {
        if (name.startsWith('pywebgpt-shell:')) out[name] = (await (await caches.open(name)).keys()).length;
      }
      return out;
    }""")


def poll(page, script: str, timeout_s: float = 120):
    """Evaluate an async script until it gives something truthy (promises and navigations included)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = page.evaluate(script)
        except Exception as exc:  # noqa: BLE001 - a navigation replaced the document: ask the new one
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {script}")
        page.wait_for_timeout(250)


def open_storage(page) -> None:
    page.locator("#storage").evaluate("(d) => { d.open = true; }")


@pytest.mark.browser
def test_first_visit_installs_the_shell_in_one_versioned_cache(page):
    manifest = json.loads((ROOT / shell_manifest.MANIFEST).read_text(encoding="utf-8"))
    # getRegistration, not serviceWorker.ready: a failed install (a shell file that differs from a
    # stale manifest) removes the registration, and `ready` would then never settle
    active = poll(page, "async () => { const r = await navigator.serviceWorker.getRegistration(); "
                        "return r && r.active && r.active.scriptURL; }")
    assert active.endswith("/sw.js")
    caches = shell_caches(page)
    assert caches == {f"pywebgpt-shell:/:{manifest['version']}": len(manifest["files"]) + 1}, caches
    # the first visit's page came from the network: the worker controls the pages opened after it
    assert page.evaluate("() => navigator.serviceWorker.controller") is None
    page.wait_for_function("() => document.querySelector('#offline-state').dataset.state === 'ready'")
    text = page.locator("#offline-state").text_content()
    assert text.startswith("Works offline: the app and the bundled model are stored (") and \
        text.endswith(f" MB, version {manifest['version']}).")


@pytest.mark.browser
def test_storage_panel_lists_the_cached_model_deletes_it_and_asks_for_persistence(page):
    open_storage(page)
    item = page.locator("#cached-list li")
    item.first.wait_for()
    assert item.count() == 1
    assert item.first.locator("span").text_content() == "Shakespeare (bundled): 21.6 MB (3 files)"
    assert page.evaluate("() => window.__persistCalls") == 0, "21.6 MB is under the 100 MB threshold"
    run_page_py(page, "from pywebgpt import ui_storage, ui\nui_storage.PERSIST_BYTES = 1_000_000\n"
                 "await ui.APP.refresh_storage()\nTrue")
    assert page.evaluate("() => window.__persistCalls") == 1
    state = page.evaluate("() => document.body.dataset.persist")
    assert state in ("granted", "refused")
    summary = page.locator("#cached-summary").text_content()
    assert summary.startswith("1 model, 21.6 MB.") and ("persistent" in summary), summary
    button = item.first.get_by_role("button", name="Delete Shakespeare (bundled) from this browser")
    button.click()
    page.wait_for_function("() => document.querySelectorAll('#cached-list li').length === 0")
    page.wait_for_function("() => /^Deleted Shakespeare/.test(document.querySelector('#cached-summary').textContent)")
    assert page.locator("#cached-summary").text_content().startswith(
        "Deleted Shakespeare (bundled) (21.6 MB freed). No models are stored in this browser yet")
    assert page.evaluate("() => pywebgpt.cachedModels()")["models"] == []
    run_page_py(page, "from pywebgpt import ui_storage\nui_storage.PERSIST_BYTES = 100_000_000\nTrue")


@pytest.mark.browser
def test_a_new_deploy_takes_over_at_the_next_visit_without_mixing(page, site, tmp_path):
    old = json.loads((ROOT / shell_manifest.MANIFEST).read_text(encoding="utf-8"))
    index = (ROOT / "index.html").read_bytes().replace(b"<head>", f"<head>\n  {MARKER}".encode(), 1)
    new = shell_manifest.build(ROOT, {"index.html": index})
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "index.html").write_bytes(index)
    (deploy / "shell-manifest.json").write_text(shell_manifest.render_manifest(new), encoding="utf-8")
    worker = shell_manifest.render_worker((ROOT / "sw.js").read_text(encoding="utf-8"), new)
    (deploy / "sw.js").write_text(worker, encoding="utf-8")
    OVERRIDES.update({"/": deploy / "index.html", "/index.html": deploy / "index.html",
                      "/sw.js": deploy / "sw.js", "/web/shell-manifest.json": deploy / "shell-manifest.json"})
    REQUESTS.clear()

    page.reload()  # the next visit: the old version serves this page whole, the new one installs meanwhile
    poll(page, "async () => !!(await navigator.serviceWorker.getRegistration()).waiting")
    assert MARKER not in page.content()
    assert page.evaluate("() => navigator.serviceWorker.controller.scriptURL").endswith("/sw.js")
    assert set(REQUESTS) <= {"/sw.js", "/web/shell-manifest.json", "/index.html"}, \
        f"the open page read only the old cache, the update fetched only what changed: {sorted(set(REQUESTS))}"
    assert "/index.html" in REQUESTS and "/web/shell-manifest.json" in REQUESTS
    caches = shell_caches(page)
    assert caches == {f"pywebgpt-shell:/:{old['version']}": len(old["files"]) + 1,
                      f"pywebgpt-shell:/:{new['version']}": len(new["files"]) + 1}, caches

    page.reload()  # the only page of the old version goes: the new version takes over
    page.wait_for_selector("#selftest-button", state="attached")
    poll(page, f"() => document.documentElement.outerHTML.includes({json.dumps(MARKER)})")
    wait_ready(page)
    assert shell_caches(page) == {f"pywebgpt-shell:/:{new['version']}": len(new["files"]) + 1}
    page.wait_for_selector("body[data-model='loaded']", state="attached")


@pytest.mark.browser
def test_the_worker_answers_shell_files_with_ranges_and_leaves_models_to_the_network(page, site):
    data = (BUNDLED / "model.safetensors").read_bytes()
    size = len(data)
    page.guard.allow(r"status of 416 \(Range Not Satisfiable\)")  # asked for below
    REQUESTS.clear()
    out = page.evaluate("""async (size) => {
      const url = 'weights/shakespeare-char/model.safetensors';
      const ask = async (range) => {
        const r = await fetch(url, {headers: {Range: range}, cache: 'no-store'});
        return {status: r.status, range: r.headers.get('content-range'), length: r.headers.get('content-length'),
                bytes: Array.from(new Uint8Array(await r.arrayBuffer()))};
      };
      const whole = await fetch(url, {cache: 'no-store'});
      return {head: await ask('bytes=0-7'), middle: await ask('bytes=1000-1999'), tail: await ask('bytes=-16'),
              open: await ask(`bytes=${size - 5}-`), beyond: await ask(`bytes=${size}-`),
              whole: {status: whole.status, size: (await whole.arrayBuffer()).byteLength}};
    }""", size)
    assert out["head"] == {"status": 206, "range": f"bytes 0-7/{size}", "length": "8", "bytes": list(data[:8])}
    assert out["middle"]["status"] == 206 and out["middle"]["bytes"] == list(data[1000:2000])
    assert out["tail"]["bytes"] == list(data[-16:]) and out["open"]["bytes"] == list(data[-5:])
    assert out["beyond"]["status"] == 416 and out["beyond"]["range"] == f"bytes */{size}"
    assert out["whole"] == {"status": 200, "size": size}
    assert "/weights/shakespeare-char/model.safetensors" not in REQUESTS, "answered by the worker"

    before = shell_caches(page)
    responses = []
    page.on("response", lambda r: "/models/copy/" in r.url and responses.append(r.from_service_worker))
    info = page.evaluate("() => pywebgpt.load('models/copy/')")
    assert info["source"].endswith("/models/copy/")
    assert "/models/copy/model.safetensors" in REQUESTS and responses and not any(responses), \
        "a model outside the shell goes to the network, not through the worker's cache"
    assert shell_caches(page) == before, "the worker stores nothing but the shell"
    sources = [m["source"] for m in page.evaluate("() => pywebgpt.cachedModels()")["models"]]
    assert any(s.endswith("/models/copy/") for s in sources), "the loader's own cache keeps it, as before"


@pytest.mark.browser
def test_with_the_network_off_the_page_boots_and_generates(page, site):
    page.evaluate("() => pywebgpt.clearCache()")  # no model in the loader's cache: the shell must do
    page.context.set_offline(True)
    site.stop()
    site.stopped = True
    page.reload()
    info = wait_ready(page)
    assert info["pyodide_version"] == "314.0.7"
    assert info["engine"] == "worker", "the engine's worker also boots from the service worker's cache"
    page.wait_for_selector("body[data-model='loaded']", state="attached")
    assert "Shakespeare (bundled) is loaded" in page.locator("#model-state").text_content()
    case = GOLDEN["cases"][0]
    page.fill("#prompt", case["prompt"])
    page.locator("#greedy").set_checked(True)
    page.fill("#max-new-tokens", str(len(case["tokens"])))
    before = int(page.evaluate("() => Number(document.body.dataset.runs || 0)"))
    page.click("#generate-button")
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=before)
    assert page.locator("#output-text").text_content() == case["text"]
    open_storage(page)
    page.wait_for_function("() => document.querySelector('#offline-state').dataset.state === 'ready'")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "offline.png"), full_page=True)
