"""The page's JS API, `window.pywebgpt`, implemented in Python.

`web/boot.js` creates the object and its `ready` promise before Python starts; this module fills in
the methods once the GPU is up. It is the only module besides `ui.py` that knows it runs in a page.
"""

from __future__ import annotations

import json
import sys

import js
from pyodide.ffi import create_proxy, to_js

from .gpu import GPU

_state: dict = {"gpu": None, "proxies": []}


def _pyodide_version() -> str:
    try:
        import pyodide  # noqa: PLC0415

        return str(pyodide.__version__)
    except Exception:  # pragma: no cover - pyodide always has it
        return "unknown"


def runtime_info(gpu: GPU) -> dict:
    info = gpu.info()
    info["python_version"] = sys.version.split()[0]
    info["pyodide_version"] = _pyodide_version()
    return info


async def _eval_python(code: str) -> str:
    """Test and console hook: run Python source in the page's interpreter; the value of the last
    expression comes back as JSON. It gives nothing that the page's own JS could not already do."""
    from pyodide.code import eval_code_async  # noqa: PLC0415

    value = await eval_code_async(code, globals={"gpu": _state["gpu"], "__name__": "__pywebgpt_eval__"})
    return json.dumps(value)


def _expose(api, name: str, fn) -> None:
    proxy = create_proxy(fn)
    _state["proxies"].append(proxy)
    setattr(api, name, proxy)


async def start(api) -> None:
    gpu = await GPU.create()
    _state["gpu"] = gpu
    _expose(api, "_py", _eval_python)
    api._ok(json.dumps(runtime_info(gpu)))
