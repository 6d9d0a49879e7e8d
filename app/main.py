# Entry point run by PyScript on the page's main thread (see index.html): bind the page UI
# (app/ui.py) to window.pywebgpt, then start the engine (app/web_api.py: Python, the GPU,
# generation). Where the engine runs is web/boot.js's choice: by default in a dedicated Web Worker
# (web/engine-worker.js) that boot.js starts at once, in parallel with this interpreter;
# window.pywebgpt then passes each call to it and this thread keeps only the DOM. With
# `?engine=main` in the page's address, or when the worker cannot run the engine (no WebGPU in
# workers), it runs here, on the main thread. The package is shipped into Pyodide's file system
# as `pywebgpt` by pyscript.toml's [files], here and in the worker.
#
# Neither half can take the other down: if the engine cannot start (no WebGPU, a module that fails
# to import), the JS API's `ready` rejects with a readable message, which web/boot.js shows in
# #status and the UI shows in its banner; if the UI fails to bind, the JS API still works.
import json
import sys

import js
from pyodide.ffi import create_proxy


def start_ui(api):
    try:
        from pywebgpt import ui  # noqa: PLC0415 - inside the try: an import failure is reported on the page

        ui.start(api)
    except Exception as exc:  # noqa: BLE001 - report on the page; the engine's API stays usable
        message = str(exc) if getattr(exc, "args", None) else exc.__class__.__name__
        status = js.document.getElementById("status")
        if status is not None:
            status.textContent = (f"The page controls failed to start: {message}. "
                                  "The JS API (window.pywebgpt) still works.")
            status.dataset.state = "error"
        print(f"PyWebGPT UI failed to start: {message}")


async def start_engine(api):
    try:
        from pywebgpt import web_api  # noqa: PLC0415 - inside the try: an import failure rejects `ready`

        await web_api.start(api)
    except Exception as exc:  # noqa: BLE001 - every start-up failure reaches the page with a readable message
        message = str(exc) if getattr(exc, "args", None) else exc.__class__.__name__
        api._fail(message)
        print(f"PyWebGPT failed to start: {message}", file=sys.stderr)


async def eval_page_python(code: str) -> str:
    """Test and console hook (`pywebgpt._pyPage(code)`): run Python source in the page's own
    interpreter (the UI's), with `ui` in scope; the value of the last expression comes back as JSON.
    `pywebgpt._py` runs code where the engine runs (this interpreter, or the engine worker's)."""
    from pyodide.code import eval_code_async  # noqa: PLC0415
    from pywebgpt import ui  # noqa: PLC0415

    return json.dumps(await eval_code_async(code, globals={"ui": ui, "__name__": "__pywebgpt_page__"}))


api = js.window.pywebgpt
api._pyPage = create_proxy(eval_page_python)
start_ui(api)
api._uiBound()
if await api._engineOnPage():  # noqa: F704 - PyScript runs this module with top-level await
    await start_engine(api)  # noqa: F704
