"""The page boots Python on WebGPU in real headless Chromium (SwiftShader)."""

import time

import pytest

from conftest import patch_engine_worker, wait_ready

pytestmark = pytest.mark.browser


def test_page_boots_and_reports_info(guarded_page, site_url):
    page, _ = guarded_page
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    t0 = time.perf_counter()
    page.goto(site_url)
    info = wait_ready(page)
    elapsed = time.perf_counter() - t0
    print(f"page open to ready: {elapsed:.2f} s, {len(requests)} requests")
    assert info["python_version"].startswith("3.14")
    assert info["pyodide_version"] == "314.0.7"
    assert set(info["adapter"]) >= {"vendor", "architecture", "description"}
    assert info["limits"]["maxStorageBufferBindingSize"] >= 128 * 1024 * 1024
    assert isinstance(info["features"], list)
    assert page.evaluate("() => window.pywebgpt.info().pyodide_version") == "314.0.7"
    assert info["engine"] == "worker" and "engine_notice" not in info, "the engine's worker is the default"
    status = page.locator("#status")
    assert status.get_attribute("data-state") == "ready"
    assert "Ready" in status.inner_text()
    # Everything the page needed came from its own origin (the engine worker's blob: URL is this origin's).
    foreign = [u for u in requests if not u.startswith((site_url, "blob:" + site_url.rstrip("/") + "/"))]
    assert requests and not foreign, f"requests to other origins: {foreign}"


def test_no_webgpu_shows_a_clear_message(guarded_page, site_url):
    page, guard = guarded_page
    guard.allow("WebGPU|navigator.gpu|PyWebGPT failed to start")
    page.add_init_script("delete Navigator.prototype.gpu; delete navigator.gpu;")
    page.goto(site_url)
    error = page.evaluate("() => window.pywebgpt.ready.then(() => null, (e) => e.message)")
    assert error and "WebGPU" in error
    status = page.locator("#status")
    assert status.get_attribute("data-state") == "error"
    text = status.inner_text()
    assert "navigator.gpu" in text and "Chrome" in text and "--enable-unsafe-webgpu" in text


def test_adapter_null_shows_a_clear_message(guarded_page, site_url):
    page, guard = guarded_page
    guard.allow("adapter|PyWebGPT failed to start")
    no_adapter = "GPU.prototype.requestAdapter = async function () { return null; };"
    page.add_init_script(no_adapter)  # the engine on the page's thread
    patch_engine_worker(page, no_adapter)  # the engine in its worker (the default)
    page.goto(site_url)
    error = page.evaluate("() => window.pywebgpt.ready.then(() => null, (e) => e.message)")
    assert error and "no GPU adapter" in error
    assert page.locator("#status").get_attribute("data-state") == "error"


def test_without_webgpu_in_workers_the_engine_runs_on_the_page_and_says_so(guarded_page, site_url):
    """A browser that offers WebGPU to pages but not to workers: the page runs the engine itself,
    says so in its status line, and generates."""
    page, _ = guarded_page
    patch_engine_worker(page, "delete WorkerNavigator.prototype.gpu;")
    page.goto(site_url)
    info = wait_ready(page)
    assert info["engine"] == "page", info
    assert "no WebGPU in workers" in info["engine_notice"]
    status = page.locator("#status").inner_text()
    assert status.startswith("Ready: ") and "The engine runs on this page's main thread" in status, status
    out = page.evaluate("() => pywebgpt.load('weights/shakespeare-char/')"
                        ".then(() => pywebgpt.generate('ROMEO:', {max_new_tokens: 4, temperature: 0}))")
    assert len(out["tokens"]) == 4


def test_engine_main_in_the_address_runs_the_engine_on_the_page(guarded_page, site_url):
    page, _ = guarded_page
    page.goto(site_url + "?engine=main")
    info = wait_ready(page)
    assert info["engine"] == "page" and "engine_notice" not in info, info
