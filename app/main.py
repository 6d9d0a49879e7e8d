# Entry point run by PyScript (see index.html): bind the page UI (app/ui.py), then bring up the GPU
# from Python and hand the page to the engine's JS API. The package itself is shipped into Pyodide's
# file system as `pywebgpt` by pyscript.toml's [files].
#
# Neither half can take the other down: if the engine cannot start (no WebGPU, a module that fails
# to import), the JS API's `ready` rejects with a readable message, which web/boot.js shows in
# #status and the UI shows in its banner; if the UI fails to bind, the JS API still works.
import sys

import js


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


api = js.window.pywebgpt
start_ui(api)
await start_engine(api)  # noqa: F704 - PyScript runs this module with top-level await
