# Entry point run by PyScript (see index.html): bring up the GPU from Python, then hand the page to
# the engine's JS API and the UI. The package itself is shipped into Pyodide's file system as
# `pywebgpt` by pyscript.toml's [files].
import json
import sys

import js
from pyodide.ffi import create_proxy

from pywebgpt import web_api


async def start():
    api = js.window.pywebgpt
    try:
        await web_api.start(api)
    except Exception as exc:  # every start-up failure reaches the page with a readable message
        message = str(exc) if getattr(exc, "args", None) else exc.__class__.__name__
        api._fail(message)
        print(f"PyWebGPT failed to start: {message}", file=sys.stderr)


await start()  # noqa: F704 - PyScript runs this module with top-level await
