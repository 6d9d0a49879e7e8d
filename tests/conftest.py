"""Shared fixtures: the site server, system Chromium with WebGPU on SwiftShader, and pages that
fail their test on any console error or page error the test did not expect."""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Karpathy's tiny shakespeare, the bundled model's training text (tests/data/SOURCES.md)
SHAKESPEARE = ROOT / "tests" / "data" / "tinyshakespeare.txt"
sys.path.insert(0, str(ROOT / "tools"))

from serve import Server  # noqa: E402
from vendor import vendor  # noqa: E402

CHROMIUM = os.environ.get("PYWEBGPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
BOOT_TIMEOUT_MS = 120_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium, or set PYWEBGPT_CHROMIUM")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def site_server():
    vendor()
    server = Server(ROOT).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def site_url(site_server) -> str:
    return site_server.url


class ConsoleGuard:
    """Collects console errors and page errors; the test fails on any not matched by `allow`."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text}")

    def allow(self, pattern: str) -> None:
        self.allowed.append(pattern)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(p, e) for p in self.allowed)]


def new_guarded_page(context):
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    guard = ConsoleGuard(page)
    return page, guard


@contextmanager
def mounted_site_page(browser, mounts: dict, allow=()):
    """The site served with `mounts` (Server's), booted in a page of a new browser context; console
    errors other than the `allow` patterns fail the test when the block ends."""
    server = Server(ROOT, mounts=mounts).start()
    context = browser.new_context()
    try:
        page, guard = new_guarded_page(context)
        for pattern in allow:
            guard.allow(pattern)
        page.goto(server.url)
        wait_ready(page)
        yield page
        problems = guard.unexpected()
    finally:
        context.close()
        server.stop()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


@pytest.fixture
def guarded_page(context):
    """A fresh page; console errors fail the test unless allowed with `guard.allow(regex)`."""
    page, guard = new_guarded_page(context)
    yield page, guard
    assert not guard.unexpected(), "unexpected console/page errors:\n" + "\n".join(guard.unexpected())


READY_TIMEOUT_S = 300


def wait_ready(page) -> dict:
    """The page's boot report; a boot that never settles fails here rather than hanging the suite."""
    return page.evaluate("""(ms) => Promise.race([window.pywebgpt.ready, new Promise((_, fail) => setTimeout(
      () => fail(new Error(`window.pywebgpt.ready did not settle in ${ms / 1000} s`)), ms))])""",
                         READY_TIMEOUT_S * 1000)


def run_py(page, code: str):
    """Run Python source in the engine's interpreter (the engine worker's, with `engine`, `gpu` and
    `scratch` in scope); returns the last expression's value (JSON)."""
    return json.loads(page.evaluate("async (code) => await window.pywebgpt._py(code)", code))


@contextmanager
def slow_tokens(page, seconds: float = 0.05):
    """Each generated token takes `seconds` longer (the GPU model class's `collect` patched), so
    that what a test does during a run lands while the run still goes: in its worker the engine
    generates the tiny model's tokens faster than the page's test can act."""
    run_py(page, f"""
import asyncio
cls = type(engine.model.gpu_model)
scratch['collect'] = (cls, cls.collect)
async def slow_collect(self, *args, **kwargs):
    await asyncio.sleep({seconds})
    return await scratch['collect'][1](self, *args, **kwargs)
cls.collect = slow_collect
True""")
    try:
        yield
    finally:
        run_py(page, "cls, original = scratch.pop('collect')\ncls.collect = original\nTrue")


def run_engine_js(page, script: str) -> None:
    """Run JavaScript in the engine's global scope (its worker's, or the page's with ?engine=main):
    a test patches there the browser APIs the engine itself calls (Cache Storage, fetch)."""
    run_py(page, f"from pyodide.code import run_js\nrun_js({json.dumps(script)})\nTrue")


def run_page_py(page, code: str):
    """Run Python source in the page UI's own interpreter (on the main thread, with `ui` in scope);
    returns the last expression's value (JSON)."""
    return json.loads(page.evaluate("async (code) => await window.pywebgpt._pyPage(code)", code))


def patch_engine_worker(target, script: str) -> None:
    """The engine worker's init script: `script` runs in web/engine-worker.js before anything else
    (a page's init scripts do not reach its workers). `target`: a page or a browser context."""
    def prepend(route):
        response = route.fetch()
        route.fulfill(response=response, body=script + "\n" + response.text())

    target.route("**/web/engine-worker.js", prepend)


@pytest.fixture(scope="module")
def booted_page(browser, site_url):
    """One page per test module with Python and the GPU up (booting takes seconds)."""
    context = browser.new_context()
    page, guard = new_guarded_page(context)
    page.goto(site_url)
    wait_ready(page)
    yield page
    problems = guard.unexpected()
    context.close()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)
