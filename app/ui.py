"""The page UI, in Python: binds index.html's controls to the engine's JS API (`window.pywebgpt`).

One path to the engine: everything goes through the same JS API object that scripts and tests use
(`await api.load(...)`, `await api.generate(prompt, opts, onToken)`,
`await api.chat.completions.create({...})`, `api.stop()`, `api.cancelLoad()`), so the page
exercises exactly what it documents. The UI only touches the DOM; app/web_api.py does the work.

    ui.start(js.window.pywebgpt)   # from app/main.py, before or after the engine starts

The UI is one object (`UI`, below: start-up, the shared controls, the error banner, keys) made of
one mixin per part of the page, each in its own module:

    app/ui_loading.py   the Model panel: models list, loading, progress, the model's details
    app/ui_files.py     a model folder from this computer: folder picker, drag and drop
    app/ui_settings.py  the Settings panel: reading and checking the fields, the model's defaults
    app/ui_output.py    the plain prompt page: Generate, the streaming output, a run's figures
    app/ui_popup.py     the token popup (the five likeliest tokens at a step)
    app/ui_chat.py      the chat, for models with a chat template
    app/ui_selftest.py  the "Check this GPU" button (pywebgpt.selfTest())
    app/ui_storage.py   the models stored in this browser, persistent storage, offline state
    app/ui_dom.py       JS values and DOM helpers shared by the above
    app/ui_text.py, app/ui_chat_text.py   every word and number shown, and the parsing of the
                        fields: pure Python, tested in CPython (tests/test_ui_text.py)

Safety: model output, token texts, file names and error messages are put on the page as text
(textContent / text nodes), never as HTML, so a model that writes `<img src=x onerror=...>`
shows those characters and nothing runs.

Responsiveness: this UI talks to the engine only through window.pywebgpt. The engine runs in a
dedicated Web Worker by default (web/engine-worker.js), so this thread only does the DOM work, one
span appended per token. With `?engine=main` in the address, or in a browser without WebGPU in
workers, it runs on this thread (every decode step awaits the GPU, so the browser gets a turn
between tokens, but loading a model holds the thread for seconds). tests/test_longtasks.py
(tools/longtasks.py) checks that, with the worker, loading, a 1,000-token prefill and a 200-token
generation leave no main-thread task over 50 ms and that typing stays responsive; tests/test_ui.py
records the long tasks and the input delay during a 200-token generation of the bundled model.

Content-Security-Policy (index.html's <meta>): `default-src 'self'; script-src 'self'
'unsafe-eval' 'wasm-unsafe-eval'; worker-src 'self' blob:; style-src 'self'; connect-src 'self' https://huggingface.co
https://*.huggingface.co https://*.hf.co http://localhost:* http://127.0.0.1:*; object-src 'none';
base-uri 'self'; form-action 'none'`.
  - 'unsafe-eval' is required by PyScript 0.7 (it compiles its plugin hooks with Function(); with
    only 'wasm-unsafe-eval' the page stops at "Evaluating a string as JavaScript violates ...").
    It also covers Pyodide's WebAssembly; 'wasm-unsafe-eval' is listed for when it can go.
  - worker-src blob: the engine worker starts from a blob: URL so that it runs under this same
    policy (a worker loaded from a URL takes its policy from response headers, which a static host
    does not send); its connect-src refusals are reported on this document (web/engine-client.js).
  - No inline scripts or styles: everything is in web/ and vendor/ ('self'); the UI sets styles
    through the CSSOM only (allowed by style-src 'self').
  - connect-src: a <meta> policy cannot change after the page loads, so "only where the user
    chose" is approximated by the places this page offers: the site itself, the Hugging Face Hub
    and its CDNs (the Hub answers weight downloads with redirects to *.hf.co /
    *.huggingface.co hosts), and model servers on this computer. A URL on any other host is
    refused by the browser; the UI says so and suggests downloading the folder and loading it
    from disk (the local-folder control, which needs no network at all).
"""

from __future__ import annotations

import asyncio

import js
from pyodide.ffi import create_proxy

from .ui_chat import ChatPanel
from .ui_dom import by_id, error_parts, to_js_object, to_py
from .ui_files import FolderInput
from .ui_loading import LoadingPanel
from .ui_output import OutputPanel
from .ui_popup import TokenPopup
from .ui_selftest import SelfTestPanel
from .ui_settings import SettingsPanel
from .ui_storage import StoragePanel
from .ui_text import FALLBACK_MODELS, NUMBER_FIELDS, sentence

ELEMENT_IDS = (
    "status", "skip-link", "error-banner", "error-title", "error-message", "error-hint", "error-fix", "error-dismiss",
    "model-form", "model-select", "load-button", "model-description", "more-sources", "custom-form", "custom-ref",
    "custom-load", "drop-zone", "folder-input", "load-box", "load-title", "load-progress", "cancel-load", "load-text",
    "model-state", "model-details", "model-info", "model-notices", "prompt-panel", "generate-form", "prompt",
    "generate-button", "stop-button", "run-state", "settings", "max-new-tokens", "max-new-tokens-max", "greedy",
    "temperature", "top-k", "top-p", "repetition-penalty", "seed", "stop-strings", "reset-settings", "output",
    "output-prompt", "output-text", "copy-button", "copy-state", "stats", "run-notices", "token-popup",
    "output-panel", "chat-panel", "chat-tokens", "system-prompt", "chat-log", "chat-notices", "chat-form",
    "chat-input", "chat-send", "chat-stop", "chat-regenerate", "chat-clear", "chat-state", "chat-stats",
    "selftest-button", "selftest-result", "storage", "offline-state", "cached-list", "cached-summary",
    "quantize-select", "gguf-input")


class UI(LoadingPanel, FolderInput, SettingsPanel, OutputPanel, TokenPopup, ChatPanel, SelfTestPanel, StoragePanel):
    def __init__(self, api):
        self.api = api
        self.proxies: list = []
        self.tasks: set = set()
        self.engine = "starting"
        self.runtime: dict = {}
        self.models: list = list(FALLBACK_MODELS)
        self.model: dict | None = None       # info of the loaded model
        self.model_entry: dict | None = None  # its models.json entry, when it came from the list
        self.model_label = ""
        self.loading = False
        self.load_was_auto = False
        self.generating = False              # a generation or a chat reply runs
        self.setting_defaults: dict = {}     # the model's generation_config defaults, as field values
        self.tokens: list = []               # one dict per token span: {"events": [event, ...]}
        self.pending: list = []              # events of tokens whose text is not complete yet
        self.current = 0                     # the token span that takes Tab focus (roving tabindex)
        self.popup_index: int | None = None
        self.popup_pinned = False
        self.run_started = 0.0
        self.first_token_at = None
        self.prompt_default = "ROMEO:"
        self.run_prompt = ""
        self.run_cleared = True
        self.chat_mode = False
        self.messages: list = []             # the conversation, without the system prompt
        self.bubbles: list = []              # each message's element
        self.chat_abort = None               # the AbortController of the reply being written
        self.error_fix = None
        self.lost_shown = False  # a device loss was shown while idle: the next action recovers at once
        self.checking = False                # the GPU self-test runs
        self.selftest_source = None
        self.selftest_out = None
        self.persist_state = None
        self.el = {name: by_id(name) for name in ELEMENT_IDS}

    # ------------------------------------------------------------------------------ plumbing

    def on(self, target, event: str, fn, options=None) -> None:
        proxy = create_proxy(fn)
        self.proxies.append(proxy)
        if options is not None:
            target.addEventListener(event, proxy, to_js_object(options))
        else:
            target.addEventListener(event, proxy)

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(self._guarded(coro))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guarded(self, coro):
        try:
            await coro
        except Exception as exc:  # noqa: BLE001 - a UI bug must show on the page, not kill the page
            err = error_parts(exc)
            self.show_error("Something went wrong in the page", f"{err['name']}: {err['message']}",
                            "Reload the page; if it happens again, please report it with this message.")

    # ------------------------------------------------------------------------------ start

    def start(self) -> None:
        e = self.el
        self.on(e["model-form"], "submit", self._on_model_submit)
        self.on(e["model-select"], "change", lambda ev: self.describe_selected())
        self.on(e["custom-form"], "submit", self._on_custom_submit)
        self.on(e["folder-input"], "change", self._on_folder_picked)
        self.on(e["gguf-input"], "change", self._on_gguf_picked)
        self.on(e["cancel-load"], "click", lambda ev: self.cancel_load())
        self.on(e["generate-form"], "submit", self._on_generate_submit)
        self.on(e["stop-button"], "click", lambda ev: self.stop())
        self.on(e["error-dismiss"], "click", lambda ev: self.hide_error())
        self.on(e["error-fix"], "click", self._on_error_fix)
        self.on(e["greedy"], "change", lambda ev: self.sync_greedy())
        self.on(e["reset-settings"], "click", lambda ev: self.reset_settings())
        self.on(e["copy-button"], "click", lambda ev: self.spawn(self.copy()))
        self.on(js.document, "keydown", self._on_key)
        self.on(js.document, "pywebgpt:model", lambda ev: self._on_model_event())
        out = e["output"]
        self.on(out, "mouseover", self._on_token_over)
        self.on(out, "mouseout", self._on_token_out)
        self.on(out, "click", self._on_token_click)
        self.on(out, "focusin", self._on_token_focus)
        self.on(out, "focusout", self._on_token_blur)
        self.on(out, "keydown", self._on_output_key)
        self.on(js.window, "resize", lambda ev: self.place_popup())
        for name in ("dragenter", "dragover"):
            self.on(e["drop-zone"], name, self._on_drag_over)
        self.on(e["drop-zone"], "dragleave", lambda ev: e["drop-zone"].classList.remove("dragging"))
        self.on(e["drop-zone"], "drop", self._on_drop)
        # A folder dropped elsewhere on the page must not make the browser navigate away to it.
        self.on(js.window, "dragover", lambda ev: ev.preventDefault())
        self.on(js.window, "drop", self._on_page_drop)
        for name in NUMBER_FIELDS:
            self.on(e[name], "input", lambda ev: self._clear_invalid(ev.target))
        self.on(e["chat-form"], "submit", self._on_chat_submit)
        self.on(e["chat-input"], "keydown", self._on_chat_input_key)
        self.on(e["chat-stop"], "click", lambda ev: self.stop())
        self.on(e["chat-regenerate"], "click", lambda ev: self.request_regenerate())
        self.on(e["chat-clear"], "click", lambda ev: self.clear_chat())
        self.bind_selftest()
        self.bind_storage()
        e["output"].dataset.empty = "true"
        e["chat-log"].dataset.empty = "true"
        narrow = js.window.matchMedia("(max-width: 59.99rem)")
        self.on(narrow, "change", lambda ev: self.fold(bool(ev.matches)))
        if narrow.matches:
            self.fold(True)
        self.sync_greedy()
        self.update_controls()
        js.document.body.dataset.ui = "starting"
        self.spawn(self._boot())

    async def _boot(self):
        await self.load_models_list()
        try:
            self.runtime = to_py(await self.api.ready) or {}
        except Exception as exc:  # noqa: BLE001 - the engine could not start (no WebGPU, ...)
            message = error_parts(exc)["message"]
            self.engine = "failed"
            self.update_controls()
            self.set_model_state("No model: the engine did not start.", "error")
            self.show_error("PyWebGPT cannot run here", message,
                            "You can still read and edit the prompt and settings; generating needs a browser with "
                            "WebGPU. Reload the page after switching browsers or flags.", engine=True)
            js.document.body.dataset.ui = "failed"
            return
        self.engine = "ready"
        lost = create_proxy(self._on_device_lost)
        self.proxies.append(lost)
        self.api.onDeviceLost(lost)
        self.update_controls()
        js.document.body.dataset.ui = "ready"
        self.spawn(self.refresh_storage())
        current = self.current_model_info()
        if current is not None:  # a script loaded a model already
            self.set_model(current, None, current.get("source", ""))
            return
        default = self.models[0]
        await self.load(default["source"], label=default["name"], entry=default, auto=True)

    # ------------------------------------------------------------------------------ controls

    def update_controls(self) -> None:
        e = self.el
        ready = self.engine == "ready"
        busy = self.loading or self.generating or self.checking
        for name in ("model-select", "load-button", "custom-ref", "custom-load", "folder-input", "gguf-input"):
            e[name].disabled = not ready or busy
        e["generate-button"].disabled = not ready or busy or self.model is None
        e["stop-button"].disabled = not self.generating
        e["copy-button"].disabled = not (e["output-text"].textContent or e["output-prompt"].textContent)
        e["load-box"].hidden = not self.loading
        e["generate-button"].setAttribute("aria-busy", "true" if self.generating else "false")
        self.update_chat_controls(ready, busy)
        self.update_selftest_controls(ready, busy)

    def _on_key(self, event) -> None:
        key = str(event.key)
        if key == "Enter" and (event.ctrlKey or event.metaKey):
            event.preventDefault()
            self.request_generate()
        elif key == "Escape":
            if self.generating:
                event.preventDefault()
                self.stop()
            elif self.loading:
                event.preventDefault()
                self.cancel_load()
            elif self.popup_index is not None:
                index = self.popup_index
                self.hide_popup()
                if 0 <= index < len(self.tokens):
                    self.token_span(index).focus()

    def stop(self) -> None:
        """Stop (or Esc): ends the generation or the chat reply being written."""
        if not self.generating:
            return
        if self.chat_abort is not None:
            self.stop_chat()
            self.el["chat-state"].textContent = "Stopping…"
        else:
            self.api.stop()
            self.el["run-state"].textContent = "Stopping…"

    # ------------------------------------------------------------------------------ errors

    def show_error(self, title: str, message: str, hint: str = "", fix: tuple | None = None,
                   engine: bool = False) -> None:
        e = self.el
        e["error-title"].textContent = title
        e["error-message"].textContent = message
        e["error-hint"].textContent = hint
        e["error-hint"].hidden = not hint
        if fix is not None:
            label, action = fix
            e["error-fix"].textContent = label
            e["error-fix"].hidden = False
            self.error_fix = action
        else:
            e["error-fix"].hidden = True
            self.error_fix = None
        e["error-banner"].dataset.kind = "engine" if engine else "error"
        e["error-banner"].hidden = False

    def hide_error(self) -> None:
        self.el["error-banner"].hidden = True
        self.error_fix = None

    def _on_error_fix(self, event) -> None:
        action = self.error_fix
        self.hide_error()
        if action is not None:
            action()

    def _on_device_lost(self, message) -> None:
        """The GPU went away while nothing ran: say so now, not at the next click."""
        self.lost_shown = True
        self.show_error("The GPU device was lost", sentence(str(message)),
                        "Your prompt and the output are kept. Generate or Load restarts the GPU and loads the "
                        "model again (from the browser cache when it is there).")

    async def _recovering(self, call):
        """Run an API call; after a loss already shown, its one 'device_lost' rejection is the
        expected first answer, so the call is made again (the API restarts the GPU then)."""
        try:
            out = await call()
        except Exception as exc:  # noqa: BLE001 - anything else goes to the caller
            if not (self.lost_shown and error_parts(exc)["code"] == "device_lost"):
                raise
            self.lost_shown = False
            return await call()
        self.lost_shown = False
        return out


APP: UI | None = None


def start(api=None) -> UI:
    """Bind the page (idempotent per page). The engine may still be starting: the UI waits for
    `api.ready` and then loads the default model."""
    global APP
    if APP is None:
        APP = UI(api if api is not None else js.window.pywebgpt)
        APP.start()
    return APP
