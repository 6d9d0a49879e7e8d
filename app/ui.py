"""The page UI, in Python: binds index.html's controls to the engine's JS API (`window.pywebgpt`).

One path to the engine: everything goes through the same JS API object that scripts and tests use
(`await api.load(...)`, `await api.generate(prompt, opts, onToken)`, `api.stop()`,
`api.cancelLoad()`), so the page exercises exactly what it documents. This module only touches
the DOM; app/web_api.py does the work.

    ui.start(js.window.pywebgpt)   # from app/main.py, before or after the engine starts

Safety: model output, token texts, file names and error messages are put on the page as text
(textContent / text nodes), never as HTML, so a model that writes `<img src=x onerror=...>`
shows those characters and nothing runs.

Responsiveness: the engine runs on the main thread, but every decode step awaits the GPU (a
mapAsync readback), so the browser gets a turn between tokens; the UI work per token is one
span appended. tests/test_ui.py measures the long tasks and the input delay during a 200-token
generation.

Content-Security-Policy (index.html's <meta>): `default-src 'self'; script-src 'self'
'unsafe-eval' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' https://huggingface.co
https://*.huggingface.co https://*.hf.co http://localhost:* http://127.0.0.1:*; object-src 'none';
base-uri 'self'; form-action 'none'`.
  - 'unsafe-eval' is required by PyScript 0.7 (it compiles its plugin hooks with Function(); with
    only 'wasm-unsafe-eval' the page stops at "Evaluating a string as JavaScript violates ...").
    It also covers Pyodide's WebAssembly; 'wasm-unsafe-eval' is listed for when it can go.
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
import json
import math
import re
import time

import js
from pyodide.ffi import JsException, create_once_callable, create_proxy, to_js

MODELS_URL = "weights/models.json"
FALLBACK_MODELS = [{
    "id": "shakespeare-char", "name": "Shakespeare (character-level, bundled)", "source": "weights/shakespeare-char/",
    "size_bytes": None, "dtype": "F16", "tokenizer": "char", "prompt": "ROMEO:",
    "description": "The bundled character-level model trained on Tiny Shakespeare.",
}]
DEFAULTS = {"max-new-tokens": "200", "temperature": "0.8", "top-k": "40", "top-p": "1",
            "repetition-penalty": "1", "seed": "", "stop-strings": "", "greedy": False}
LOW_PROBABILITY = 0.1
FINISH_TEXT = {"length": "reached the token limit", "eos": "end of text", "stop": "stop string",
               "cancelled": "stopped"}
LOAD_PHASES = {"config": "Reading config.json", "tokenizer": "Reading the tokenizer",
               "headers": "Checking the weights", "cache": "Reading from the browser cache",
               "upload": "Uploading the weights to the GPU",
               "compile": "Compiling the GPU kernels (first run)", "done": "Done"}
LOAD_HINTS = {
    "http": "Check the model id or address. Private or gated Hub models cannot be loaded from the page: "
            "download the folder and load it from your computer.",
    "network": "Check your connection and the address. A server on another site must allow cross-origin "
               "requests (CORS), and this page only connects to itself, the Hugging Face Hub and localhost.",
    "format": "This folder is not a GPT-2-family model in the Hugging Face layout (config.json, "
              "model.safetensors, tokenizer files). tools/convert.py converts other checkpoints.",
    "too_large": "Try a smaller model, such as the bundled Shakespeare model or distilgpt2.",
    "memory": "Close other tabs or try a smaller model.",
    "gpu": "The GPU refused the model: try a smaller one, or reload the page.",
    "input": "Pick a model from the list, type a Hub id such as openai-community/gpt2, or choose a folder.",
    "busy": "Wait for the current load to finish, or cancel it.",
}


def _n(value):
    """A JS value, or None for null / undefined (Pyodide 314 maps null to a JsNull object)."""
    if value is None or type(value).__name__ in ("JsNull", "JsUndefined"):
        return None
    return value


def _el(element_id: str):
    return _n(js.document.getElementById(element_id))


def _mb(n) -> str:
    if n is None:
        return "?"
    n = float(n)
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.0f} kB"
    return f"{n:.0f} B"


def _count(n) -> str:
    if n is None:
        return "?"
    n = float(n)
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def _seconds(s) -> str:
    if s is None:
        return "?"
    s = float(s)
    if s < 1:
        return "under a second"
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def visible(text: str) -> str:
    """A token's text made visible in a table cell: spaces, newlines and tabs as symbols."""
    if text == "":
        return "(part of a character)"
    return (text.replace("\r", "\u240d").replace("\n", "\u21b5").replace("\t", "\u21e5")
            .replace(" ", "\u2423"))


def unescape_stop(line: str) -> str:
    r"""Stop strings are typed one per line; \n, \t and \\ are escapes."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            if nxt in "nt\\":
                out.append({"n": "\n", "t": "\t", "\\": "\\"}[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def error_parts(exc) -> dict:
    """{name, message, code, ...fields} of an exception from Python or of a rejected JS promise:
    the engine's errors carry their code and structured fields (app/errors.py, web/api.js)."""
    if isinstance(exc, JsException):
        err = getattr(exc, "js_error", exc)
        fields = {}
        try:
            fields = {k: v for k, v in _py(js.Object.assign(js.Object.new(), err)).items()}
        except Exception:  # noqa: BLE001 - a thrown non-object (a string): no fields
            pass
        fields["name"] = str(_n(getattr(err, "name", None)) or "Error")
        fields["message"] = str(_n(getattr(err, "message", None)) or str(exc))
        fields["code"] = fields.get("code")
        return fields
    if hasattr(exc, "to_dict"):
        return exc.to_dict()
    return {"name": type(exc).__name__, "message": str(exc) if exc.args else type(exc).__name__, "code": None}


def sentence(message: str) -> str:
    """An engine message as a sentence on the page (a message may start with a file name, kept)."""
    message = message.strip()
    first, space, _ = message.partition(" ")
    if space and first.isalpha() and first.islower():  # a word, not a file name such as config.json
        message = message[:1].upper() + message[1:]
    return message


def _obj(d: dict):
    return to_js(d, dict_converter=js.Object.fromEntries)


def _py(value):
    """A JS value (JSON-shaped) as Python data."""
    if isinstance(value, (dict, list, str, int, float, bool)):
        return value
    if _n(value) is None:
        return None
    return json.loads(js.JSON.stringify(value))


class UI:
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
        self.generating = False
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
        self.error_fix = None
        self.lost_shown = False  # a device loss was shown while idle: the next action recovers at once
        self.el = {name: _el(name) for name in (
            "status", "error-banner", "error-title", "error-message", "error-hint", "error-fix", "error-dismiss",
            "model-form", "model-select", "load-button", "model-description", "more-sources", "custom-form",
            "custom-ref", "custom-load", "drop-zone", "folder-input", "load-box", "load-title", "load-progress",
            "cancel-load", "load-text", "model-state", "model-details", "model-info", "model-notices", "generate-form", "prompt",
            "generate-button", "stop-button", "run-state", "settings", "max-new-tokens", "max-new-tokens-max",
            "greedy", "temperature", "top-k", "top-p", "repetition-penalty", "seed", "stop-strings",
            "reset-settings", "output", "output-prompt", "output-text", "copy-button", "copy-state", "stats",
            "run-notices", "token-popup", "output-panel")}

    # ------------------------------------------------------------------------------ plumbing

    def on(self, target, event: str, fn, options=None) -> None:
        proxy = create_proxy(fn)
        self.proxies.append(proxy)
        if options is not None:
            target.addEventListener(event, proxy, _obj(options))
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
        for name in ("max-new-tokens", "temperature", "top-k", "top-p", "repetition-penalty", "seed"):
            self.on(e[name], "input", lambda ev: self._clear_invalid(ev.target))
        e["output"].dataset.empty = "true"
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
            self.runtime = _py(await self.api.ready) or {}
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
        current = self.current_model_info()
        if current is not None:  # a script loaded a model already
            self.set_model(current, None, current.get("source", ""))
            return
        default = self.models[0]
        await self.load(default["source"], label=default["name"], entry=default, auto=True)

    async def load_models_list(self) -> None:
        try:
            response = await js.fetch(MODELS_URL)
            if not response.ok:
                raise ValueError(f"HTTP {response.status}")
            models = json.loads(str(await response.text()))
            if isinstance(models, dict):
                models = models.get("models", [])
            models = [m for m in models if isinstance(m, dict) and m.get("source") and m.get("name")]
            if models:
                self.models = models
        except Exception as exc:  # noqa: BLE001 - the bundled model still works without the list
            self.models = list(FALLBACK_MODELS)
            self.el["model-description"].textContent = f"(The models list {MODELS_URL} could not be read: {exc}.)"
        select = self.el["model-select"]
        while select.firstChild:
            select.removeChild(select.firstChild)
        for i, m in enumerate(self.models):
            option = js.document.createElement("option")
            option.value = str(i)
            option.textContent = str(m["name"])
            select.appendChild(option)
        select.value = "0"
        self.prompt_default = self.models[0].get("prompt") or self.prompt_default
        self.describe_selected()

    def describe_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        bits = [entry.get("description") or ""]
        if entry.get("size_bytes"):
            bits.append(f"Download: {_mb(entry['size_bytes'])} ({entry.get('dtype', '?')}, "
                        f"{entry.get('tokenizer', '?')} tokenizer).")
        self.el["model-description"].textContent = " ".join(b for b in bits if b)

    def selected_entry(self):
        try:
            return self.models[int(self.el["model-select"].value)]
        except (ValueError, IndexError, TypeError):
            return None

    def current_model_info(self):
        try:
            info = _py(self.api.info())
        except Exception:  # noqa: BLE001 - not ready
            return None
        return (info or {}).get("model")

    # ------------------------------------------------------------------------------ controls

    def update_controls(self) -> None:
        e = self.el
        ready = self.engine == "ready"
        busy = self.loading or self.generating
        for name in ("model-select", "load-button", "custom-ref", "custom-load", "folder-input"):
            e[name].disabled = not ready or busy
        e["generate-button"].disabled = not ready or busy or self.model is None
        e["stop-button"].disabled = not self.generating
        e["copy-button"].disabled = not (e["output-text"].textContent or e["output-prompt"].textContent)
        e["load-box"].hidden = not self.loading
        e["generate-button"].setAttribute("aria-busy", "true" if self.generating else "false")

    def fold(self, narrow: bool) -> None:
        """Narrow screens stack the panels: fold the model details and the settings so that the
        prompt, Generate and the output come within a thumb's reach (one tap opens each); wide
        screens show them open beside the prompt."""
        self.el["model-details"].open = not narrow
        self.el["settings"].open = not narrow

    def sync_greedy(self) -> None:
        greedy = bool(self.el["greedy"].checked)
        for name in ("temperature", "top-k", "top-p", "seed"):
            self.el[name].disabled = greedy

    def reset_settings(self) -> None:
        for name, value in DEFAULTS.items():
            if name == "greedy":
                self.el[name].checked = value
            else:
                self.el[name].value = value
                self._clear_invalid(self.el[name])
        self.apply_model_bounds()
        self.sync_greedy()

    def apply_model_bounds(self) -> None:
        if self.model is None:
            return
        context = int(self.model.get("context") or self.model.get("n_positions") or 1024)
        limit = max(1, context - 1)
        field = self.el["max-new-tokens"]
        field.max = str(limit)
        self.el["max-new-tokens-max"].textContent = str(limit)
        try:
            if int(field.value) > limit:
                field.value = str(limit)
        except ValueError:
            pass
        vocab = self.model.get("vocab_size")
        if vocab:
            self.el["top-k"].max = str(vocab)

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

    # ------------------------------------------------------------------------------ loading

    def _on_model_submit(self, event) -> None:
        event.preventDefault()
        entry = self.selected_entry()
        if entry is not None:
            self.spawn(self.load(entry["source"], label=entry["name"], entry=entry))

    def _on_custom_submit(self, event) -> None:
        event.preventDefault()
        ref = str(self.el["custom-ref"].value).strip()
        if not ref:
            self.show_error("No model given", "Type a Hugging Face model id or the URL of a model folder.",
                            "For example openai-community/gpt2, or https://huggingface.co/distilbert/distilgpt2.")
            self.el["custom-ref"].focus()
            return
        self.spawn(self.load(ref, label=ref))

    def _on_folder_picked(self, event) -> None:
        files = _n(self.el["folder-input"].files)
        if files is None or not files.length:
            return
        first = files.item(0)
        path = str(first.webkitRelativePath or first.name)
        folder = path.split("/")[0] if "/" in path else "picked files"
        self.spawn(self.load_files(files, f"folder {folder}"))

    async def load_files(self, files, label: str):
        try:
            await self.load(None, label=label, files=files)
        finally:
            self.el["folder-input"].value = ""

    def _on_drag_over(self, event) -> None:
        event.preventDefault()
        if _n(event.dataTransfer) is not None:
            event.dataTransfer.dropEffect = "copy"
        self.el["drop-zone"].classList.add("dragging")

    def _on_page_drop(self, event) -> None:
        event.preventDefault()

    def _on_drop(self, event) -> None:
        event.preventDefault()
        event.stopPropagation()
        self.el["drop-zone"].classList.remove("dragging")
        if self.engine != "ready" or self.loading or self.generating:
            return
        transfer = _n(event.dataTransfer)
        entries, plain = [], []
        # Entries must be taken while the drop event runs: the DataTransfer empties afterwards.
        items = _n(transfer.items) if transfer is not None else None
        if items is not None:
            for i in range(items.length):
                item = items[i]
                if str(item.kind) != "file":
                    continue
                entry = _n(item.webkitGetAsEntry()) if hasattr(item, "webkitGetAsEntry") else None
                if entry is not None:
                    entries.append(entry)
                else:
                    f = _n(item.getAsFile())
                    if f is not None:
                        plain.append(f)
        elif transfer is not None:
            plain = [transfer.files.item(i) for i in range(transfer.files.length)]
        self.spawn(self._load_dropped(entries, plain))

    async def _load_dropped(self, entries, plain):
        pairs = [(str(f.name), f) for f in plain]
        for entry in entries:
            pairs += await self._walk(entry)
        if not pairs:
            self.show_error("Nothing to load", "The drop held no files.", "Drop a model folder, or its files.")
            return
        top = {p.split("/")[0] for p, _ in pairs if "/" in p}
        label = f"folder {next(iter(top))}" if len(top) == 1 else "dropped files"
        array = js.Array.new()
        for path, file in pairs:
            array.push(_obj({"path": path, "file": file}))
        await self.load(None, label=label, files=array)

    async def _walk(self, entry) -> list:
        if entry.isFile:
            file = await js.Promise.new(create_once_callable(lambda resolve, reject: entry.file(resolve, reject)))
            return [(str(entry.fullPath).lstrip("/"), file)]
        out = []
        if entry.isDirectory:
            reader = entry.createReader()
            while True:
                batch = await js.Promise.new(
                    create_once_callable(lambda resolve, reject: reader.readEntries(resolve, reject)))
                if not batch.length:
                    break
                for i in range(batch.length):
                    out += await self._walk(batch[i])
        return out

    async def load(self, ref, label: str, entry: dict | None = None, files=None, auto: bool = False):
        if self.loading or self.generating or self.engine != "ready":
            return
        e = self.el
        self.loading = True
        self.load_was_auto = auto
        e["load-title"].textContent = f"Loading {label}…"
        e["load-text"].textContent = "Starting…"
        e["load-progress"].removeAttribute("value")  # indeterminate until sizes are known
        e["load-progress"].setAttribute("aria-valuetext", "starting")
        self.update_controls()
        progress = create_proxy(self._on_progress)
        try:
            opts = _obj({"onProgress": progress})
            target = files if files is not None else ref
            loader = self.api._autoLoad if auto and hasattr(self.api, "_autoLoad") else self.api.load
            info = _py(await self._recovering(lambda: loader(target, opts)))
        except Exception as exc:  # noqa: BLE001 - every failure is shown, the previous model stays
            err = error_parts(exc)
            code, message = err["code"], sentence(err["message"])
            if code == "cancelled":
                if not auto:
                    self.set_model_state(self._model_state_text(prefix="Loading was cancelled. "), "loaded"
                                         if self.model else "idle")
                elif self.model is None:
                    self.set_model_state("Loading the default model gave way to another load.", "idle")
            elif code == "busy" and auto:
                pass  # a script is loading a model; the pywebgpt:model event will show it
            else:
                if self.model is None:
                    self.set_model_state("No model loaded.", "error")
                hint = LOAD_HINTS.get(code or "", "Check the model and try again, or pick another model.")
                if "Content Security Policy" in message or (code == "network" and self._foreign(ref)):
                    hint = ("This page's security policy lets it download models only from this site, the "
                            "Hugging Face Hub and localhost. Download the model folder and load it from your "
                            "computer instead.")
                kept = f" {self.model_label} is still loaded." if self.model is not None else ""
                self.show_error(f"Could not load {label}", message, hint + kept)
            return
        finally:
            progress.destroy()
            self.loading = False
            self.update_controls()
            body = js.document.body
            body.dataset.loads = str(int(_n(body.getAttribute("data-loads")) or 0) + 1)
        self.hide_error_if_load()
        self.set_model(info, entry, label)

    def hide_error_if_load(self) -> None:
        if str(self.el["error-title"].textContent).startswith("Could not load"):
            self.hide_error()

    @staticmethod
    def _foreign(ref) -> bool:
        if not isinstance(ref, str) or not ref.startswith(("http://", "https://")):
            return False
        host = re.sub(r"^https?://([^/]+).*$", r"\1", ref)
        return not (host.endswith(("huggingface.co", "hf.co")) or host.split(":")[0] in ("localhost", "127.0.0.1")
                    or host == str(js.location.host))

    def cancel_load(self) -> None:
        if self.loading:
            self.api.cancelLoad()
            self.el["load-text"].textContent = "Cancelling…"

    def _on_progress(self, p) -> None:
        p = _py(p) or {}
        e = self.el
        phase = p.get("phase")
        bar = e["load-progress"]
        total = p.get("overall_total") or 0
        done = p.get("overall_loaded") or 0
        if phase == "download" and total:
            fraction = min(1.0, done / total)
            bar.value = fraction
            file = p.get("file") or "weights"
            parts = [f"{file}: {_mb(p.get('loaded'))} of {_mb(p.get('total'))}"]
            if p.get("file_count", 1) > 1:
                parts[0] += f" (file {p.get('file_index', 0) + 1} of {p.get('file_count')})"
            if p.get("bytes_per_s"):
                parts.append(f"{_mb(p['bytes_per_s'])}/s")
            eta = p.get("overall_eta_s", p.get("eta_s"))
            if eta is not None:
                parts.append("less than a second left" if eta < 1 else f"about {_seconds(eta)} left")
            if p.get("from_cache"):
                parts.append("from cache")
            text = " · ".join(parts)
            bar.setAttribute("aria-valuetext", f"{fraction * 100:.0f}%: {text}")
        else:
            text = LOAD_PHASES.get(phase, str(phase or "Loading"))
            if phase == "cache" and p.get("total"):
                text += f": {_mb(p.get('loaded'))} of {_mb(p.get('total'))}"
                bar.value = min(1.0, (p.get("loaded") or 0) / p["total"])
            elif phase in ("upload", "done"):
                bar.value = 1
            if p.get("from_cache") and "cache" not in text:
                text += " (from cache)"
            text += "…" if phase not in ("done",) else ""
            bar.setAttribute("aria-valuetext", text)
        e["load-text"].textContent = text

    def _on_model_event(self) -> None:
        """A load or unload settled; refresh the panel when it was not the UI's own."""
        if self.loading or self.engine != "ready":
            return
        info = self.current_model_info()
        if info is None:
            if self.model is not None:
                self.model = None
                self.model_entry = None
                self.el["model-details"].hidden = True
                self.set_model_state("No model loaded.", "idle")
                self.update_controls()
        elif self.model is None or info.get("source") != self.model.get("source"):
            self.set_model(info, None, str(info.get("source", "")))

    # ------------------------------------------------------------------------------ model info

    def set_model_state(self, text: str, state: str) -> None:
        self.el["model-state"].textContent = text
        self.el["model-state"].dataset.state = state

    def _model_state_text(self, prefix: str = "") -> str:
        return f"{prefix}{self.model_label} is loaded." if self.model is not None else prefix + "No model loaded."

    def entry_for_source(self, source: str):
        """The models.json entry whose source resolves to this loaded base URL, if any."""
        for entry in self.models:
            ref = str(entry.get("source", ""))
            if re.fullmatch(r"[\w][\w.-]*/[\w][\w.-]*", ref):
                url = f"https://huggingface.co/{ref}/resolve/main/"
            else:
                try:
                    url = str(js.URL.new(ref, js.location.href).href)
                except Exception:  # noqa: BLE001 - not a URL
                    continue
            if url.rstrip("/") == str(source).rstrip("/"):
                return entry
        return None

    def set_model(self, info: dict, entry: dict | None, label: str) -> None:
        if entry is None:
            entry = self.entry_for_source(str(info.get("source", "")))
        old_prompt = (self.model_entry or {}).get("prompt") or self.prompt_default
        self.model = info
        self.model_entry = entry
        self.model_label = entry["name"] if entry else label
        load = info.get("load") or {}
        cached = load.get("from_cache")
        self.set_model_state(f"{self.model_label} is loaded" + (" (from the browser cache)." if cached else "."),
                             "loaded")
        adapter = (self.runtime.get("adapter") or {}) if self.runtime else {}
        adapter_text = " / ".join(str(adapter.get(k)) for k in ("vendor", "architecture", "description")
                                  if adapter.get(k)) or "WebGPU adapter"
        rows = [
            ("Parameters", _count(info.get("parameters"))),
            ("Shape", f"{info.get('n_layer')} layers × {info.get('n_head')} heads × {info.get('n_embd')} wide"),
            ("Context", f"{info.get('context')} tokens"),
            ("Vocabulary", f"{info.get('vocab_size'):,} tokens ({info.get('tokenizer', '?')})"
             if isinstance(info.get("vocab_size"), int) else "?"),
            ("Weights", f"{info.get('dtype', '?')}, {_mb(info.get('file_bytes'))}"),
            ("GPU memory", _mb(info.get("gpu_bytes"))),
            ("Adapter", adapter_text),
            ("Loaded in", f"{info['load_s']:.1f} s" + (" from cache" if cached else "")
             if isinstance(info.get("load_s"), (int, float)) else "?"),
            ("Source", str(info.get("source", label))),
        ]
        dl = self.el["model-info"]
        while dl.firstChild:
            dl.removeChild(dl.firstChild)
        for key, value in rows:
            dt = js.document.createElement("dt")
            dt.textContent = key
            dd = js.document.createElement("dd")
            dd.textContent = value
            dl.appendChild(dt)
            dl.appendChild(dd)
        self.el["model-details"].hidden = False
        notices = [n for n in info.get("notices") or [] if not str(n).startswith("loaded from the browser cache")]
        self._fill_list(self.el["model-notices"], notices)
        self.apply_model_bounds()
        prompt = self.el["prompt"]
        new_prompt = (entry or {}).get("prompt")
        if new_prompt and str(prompt.value).strip() in ("", old_prompt):
            prompt.value = new_prompt
        if entry is not None:
            self.el["model-select"].value = str(self.models.index(entry))
            self.describe_selected()
        self.update_controls()
        js.document.body.dataset.model = "loaded"

    @staticmethod
    def _fill_list(ul, items) -> None:
        while ul.firstChild:
            ul.removeChild(ul.firstChild)
        for item in items:
            li = js.document.createElement("li")
            li.textContent = str(item)
            ul.appendChild(li)
        ul.hidden = not items

    # ------------------------------------------------------------------------------ settings

    def _clear_invalid(self, field) -> None:
        field.removeAttribute("aria-invalid")
        note = _el(f"{field.id}-error")
        if note is not None:
            note.remove()

    def _mark_invalid(self, name: str, message: str) -> None:
        field = self.el[name]
        field.setAttribute("aria-invalid", "true")
        if _el(f"{name}-error") is None:
            note = js.document.createElement("p")
            note.id = f"{name}-error"
            note.className = "error-text"
            field.parentElement.appendChild(note)
            field.setAttribute("aria-describedby", f"{name}-hint {name}-error")
        js.document.getElementById(f"{name}-error").textContent = message

    def read_settings(self) -> tuple:
        """(options for generate(), [(field, problem), ...])."""
        problems = []
        e = self.el
        for name in ("max-new-tokens", "temperature", "top-k", "top-p", "repetition-penalty", "seed"):
            self._clear_invalid(e[name])

        def number(name, kind, lo, hi, label, optional=False):
            raw = str(e[name].value).strip()
            if raw == "" and optional:
                return None
            try:
                value = kind(float(raw)) if kind is float else int(raw)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError
            except ValueError:
                problems.append((name, f"{label}: a number from {lo} to {hi}"))
                return None
            if value < lo or value > hi:
                problems.append((name, f"{label}: from {lo} to {hi}"))
                return None
            return value

        context = int((self.model or {}).get("context") or 1024)
        vocab = int((self.model or {}).get("vocab_size") or 50257)
        opts = {"max_new_tokens": number("max-new-tokens", int, 1, max(1, context - 1), "Max new tokens")}
        greedy = bool(e["greedy"].checked)
        if greedy:
            opts["temperature"] = 0
        else:
            opts["temperature"] = number("temperature", float, 0, 2, "Temperature")
            opts["top_k"] = number("top-k", int, 0, vocab, "Top-k")
            opts["top_p"] = number("top-p", float, 0.01, 1, "Top-p")
            opts["seed"] = number("seed", int, 0, 2 ** 53 - 1, "Seed", optional=True)
        opts["repetition_penalty"] = number("repetition-penalty", float, 0.5, 2, "Repetition penalty")
        stops = [unescape_stop(line) for line in str(e["stop-strings"].value).split("\n")]
        opts["stop"] = [s for s in stops if s]
        for name, message in problems:
            self._mark_invalid(name, message)
        return {k: v for k, v in opts.items() if v is not None}, problems

    # ------------------------------------------------------------------------------ generation

    def _on_generate_submit(self, event) -> None:
        event.preventDefault()
        self.request_generate()

    def request_generate(self) -> None:
        if self.engine != "ready" or self.generating or self.loading or self.model is None:
            return
        self.generating = True  # at once: a second press before the run starts (a double click) is ignored
        self.spawn(self.generate())

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
        if self.generating:
            self.api.stop()
            self.el["run-state"].textContent = "Stopping…"

    def clear_output(self, prompt: str) -> None:
        self.hide_popup()
        e = self.el
        e["output-prompt"].textContent = prompt
        text = e["output-text"]
        while text.firstChild:
            text.removeChild(text.firstChild)
        self.tokens = []
        self.pending = []
        self.current = 0
        e["output"].dataset.empty = "false"
        self._fill_list(e["run-notices"], [])
        e["stats"].textContent = ""
        e["stats"].removeAttribute("data-finish")

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

    async def generate(self) -> None:
        self.generating = False  # request_generate's hold; set again below, with no await before it
        e = self.el
        opts, problems = self.read_settings()
        if problems:
            self.show_error("Check the settings", "; ".join(p for _, p in problems) + ".",
                            "Fix the highlighted fields, or use Reset to defaults.")
            e[problems[0][0]].focus()
            self._count_run("failed")
            return
        prompt = str(e["prompt"].value)
        if prompt == "":
            self.show_error("The prompt is empty", "Write something for the model to continue.",
                            "For the Shakespeare model, try a name in capitals followed by a colon, like ROMEO:")
            e["prompt"].focus()
            self._count_run("failed")
            return
        if _n(e["error-banner"].getAttribute("data-kind")) != "engine":
            self.hide_error()
        # The previous output stays until the first new token arrives: a run that fails at once
        # (a bad prompt, bad settings) loses nothing.
        self.run_prompt = prompt
        self.run_cleared = False
        self.generating = True
        js.document.body.dataset.gen = "running"
        self.run_started = time.perf_counter()
        self.first_token_at = None
        e["run-state"].textContent = "Generating…"
        e["run-state"].dataset.state = "running"
        self.update_controls()
        on_token = create_proxy(self._on_token)
        result = None
        try:
            result = _py(await self._recovering(lambda: self.api.generate(prompt, _obj(opts), on_token)))
        except Exception as exc:  # noqa: BLE001 - shown in the banner; prompt and output stay
            err = error_parts(exc)
            chars = err.get("chars")
            message = sentence(err["message"])
            if chars:
                shown = " ".join(repr(c) for c in chars)
                self.show_error(
                    "The prompt has characters this model does not know",
                    f"This model's vocabulary does not contain {shown}.",
                    f"This model knows only the characters it was trained on. Remove {shown} from the prompt, "
                    "or let the page do it.",
                    fix=("Remove them and generate", lambda: self.drop_chars(chars)))
            elif err["code"] == "busy":
                self.show_error("A generation is already running", message, "Wait for it or press Stop (Esc).")
            else:
                self.show_error("Generation failed", message,
                                "Your prompt and the output so far are kept. Check the settings and try again; "
                                "after a lost GPU, Generate restarts it and reloads the model.")
        finally:
            on_token.destroy()
            self.generating = False
            e["run-state"].dataset.state = "idle"
            self.update_controls()
        if result is None:
            e["run-state"].textContent = "Failed: see the message above."
            self._count_run("failed")
            return
        if not self.run_cleared:
            self.clear_output(prompt)
        self.show_result(result)
        self._count_run("done")

    def _count_run(self, state: str) -> None:
        body = js.document.body
        body.dataset.gen = state
        body.dataset.runs = str(int(_n(body.getAttribute("data-runs")) or 0) + 1)

    def drop_chars(self, chars: list) -> None:
        prompt = self.el["prompt"]
        bad = set(chars)
        prompt.value = "".join(c for c in str(prompt.value) if c not in bad)
        self.request_generate()

    def token_span(self, index: int):
        return _n(self.el["output-text"].querySelector(f'[data-i="{index}"]'))

    def _on_token(self, event) -> None:
        ev = _py(event) or {}
        if not self.run_cleared:
            self.clear_output(self.run_prompt)
            self.run_cleared = True
            out_box = self.el["output"].getBoundingClientRect()
            if out_box.top > js.window.innerHeight - 60:  # off screen (phones): bring the output up
                self.el["output"].scrollIntoView(_obj({"block": "nearest"}))
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        out = self.el["output"]
        stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 24
        text = ev.get("text") or ""
        holder = self.el["output-text"]
        if ev.get("token", 0) < 0:
            if text:
                holder.appendChild(js.document.createTextNode(text))
        elif text == "":
            self.pending.append(ev)
        else:
            index = len(self.tokens)
            events = self.pending + [ev]
            self.pending = []
            self.tokens.append({"events": events, "text": text})
            span = js.document.createElement("span")
            span.className = "tok"
            top = ev.get("top") or []
            prob = next((c.get("prob") for c in top if c.get("id") == ev.get("token")), None)
            if prob is not None and prob < LOW_PROBABILITY:
                span.classList.add("low")
            span.dataset.i = str(index)
            span.tabIndex = 0 if index == 0 else -1
            span.textContent = text  # text only, never HTML
            holder.appendChild(span)
        if stick:
            out.scrollTop = out.scrollHeight
        n = sum(len(t["events"]) for t in self.tokens) + len(self.pending)
        elapsed = time.perf_counter() - self.run_started
        rate = ""
        if self.first_token_at is not None and n > 1:
            since = time.perf_counter() - self.first_token_at
            if since > 0:
                rate = f" · {(n - 1) / since:.1f} tokens/s"
        self.el["run-state"].textContent = f"Generating… {n} tokens in {elapsed:.1f} s{rate}"
        self.el["copy-button"].disabled = False

    def show_result(self, r: dict) -> None:
        e = self.el
        t = r.get("timings") or {}
        n_new = len(r.get("tokens") or [])
        n_prompt = len(r.get("prompt_ids") or [])
        decode = t.get("decode_ms_per_token")
        stats = [("Prompt", f"{n_prompt} tokens"), ("New", f"{n_new} tokens")]
        if t.get("ttft_ms") is not None:
            stats.append(("First token", f"{t['ttft_ms']:.0f} ms"))
        if decode:
            stats.append(("Speed", f"{1000 / decode:.1f} tokens/s"))
        if t.get("prefill_tokens_per_s"):
            rate = t["prefill_tokens_per_s"]
            stats.append(("Prompt speed", f"{rate:.0f} tokens/s" if rate >= 10 else f"{rate:.1f} tokens/s"))
        if t.get("total_ms") is not None:
            stats.append(("Total", f"{t['total_ms'] / 1000:.2f} s"))
        stats.append(("Finished", FINISH_TEXT.get(r.get("finish_reason"), str(r.get("finish_reason")))))
        box = e["stats"]
        while box.firstChild:
            box.removeChild(box.firstChild)
        for label, value in stats:
            item = js.document.createElement("span")
            item.className = "stat"
            item.appendChild(js.document.createTextNode(label + ": "))
            b = js.document.createElement("b")
            b.textContent = value
            item.appendChild(b)
            box.appendChild(item)
        box.dataset.finish = str(r.get("finish_reason"))
        notices = list(r.get("notices") or [])
        self._fill_list(e["run-notices"], notices)
        e["run-state"].textContent = f"Done: {FINISH_TEXT.get(r.get('finish_reason'), r.get('finish_reason'))}."
        self.update_controls()

    async def copy(self) -> None:
        text = str(self.el["output-prompt"].textContent) + str(self.el["output-text"].textContent)
        state = self.el["copy-state"]
        try:
            await js.navigator.clipboard.writeText(text)
            state.textContent = "Copied."
        except Exception:  # noqa: BLE001 - no clipboard permission: select the text instead
            selection = js.window.getSelection()
            selection.selectAllChildren(self.el["output"])
            state.textContent = "Selected: press Ctrl+C to copy."
        await asyncio.sleep(2.5)
        state.textContent = ""

    # ------------------------------------------------------------------------------ token popup

    @staticmethod
    def _token_index(event):
        target = _n(event.target)
        if target is None or not hasattr(target, "closest"):
            return None
        span = _n(target.closest(".tok"))
        if span is None:
            return None
        try:
            return int(span.dataset.i)
        except (TypeError, ValueError):
            return None

    def _on_token_over(self, event) -> None:
        index = self._token_index(event)
        if index is not None and not self.popup_pinned:
            self.show_popup(index)

    def _on_token_out(self, event) -> None:
        if self.popup_pinned or self.popup_index is None:
            return
        related = _n(event.relatedTarget)
        if related is not None and hasattr(related, "closest") and _n(related.closest(".tok")) is not None:
            return
        active = _n(js.document.activeElement)
        if active is not None and hasattr(active, "classList") and active.classList.contains("tok"):
            self.show_popup(int(active.dataset.i))
            return
        self.hide_popup()

    def _on_token_click(self, event) -> None:
        index = self._token_index(event)
        if index is None:
            return
        if self.popup_pinned and self.popup_index == index:
            self.popup_pinned = False
            self.hide_popup()
            return
        self.popup_pinned = True
        self.token_span(index).focus()
        self.show_popup(index)

    def _on_token_focus(self, event) -> None:
        index = self._token_index(event)
        if index is None:
            return
        self.set_current(index)
        if not self.popup_pinned or self.popup_index != index:
            self.popup_pinned = False
            self.show_popup(index)

    def _on_token_blur(self, event) -> None:
        related = _n(event.relatedTarget)
        if related is not None and hasattr(related, "closest") and _n(related.closest(".tok")) is not None:
            return
        self.popup_pinned = False
        self.hide_popup()

    def set_current(self, index: int) -> None:
        if index == self.current:
            return
        old = self.token_span(self.current)
        if old is not None:
            old.tabIndex = -1
        new = self.token_span(index)
        if new is not None:
            new.tabIndex = 0
        self.current = index

    def _on_output_key(self, event) -> None:
        index = self._token_index(event)
        if index is None or not self.tokens:
            return
        key = str(event.key)
        moves = {"ArrowRight": index + 1, "ArrowDown": index + 1, "ArrowLeft": index - 1, "ArrowUp": index - 1,
                 "Home": 0, "End": len(self.tokens) - 1}
        if key in moves:
            event.preventDefault()
            target = max(0, min(len(self.tokens) - 1, moves[key]))
            self.popup_pinned = False
            self.token_span(target).focus()
        elif key in ("Enter", " "):
            event.preventDefault()
            self.popup_pinned = not self.popup_pinned
            self.show_popup(index)

    def show_popup(self, index: int) -> None:
        if not 0 <= index < len(self.tokens):
            return
        record = self.tokens[index]
        ev = record["events"][-1]
        popup = self.el["token-popup"]
        while popup.firstChild:
            popup.removeChild(popup.firstChild)
        doc = js.document
        title = doc.createElement("p")
        title.className = "popup-title"
        title.textContent = f"Token {index + 1}: “{visible(record['text'])}”"
        popup.appendChild(title)
        top = ev.get("top") or []
        chosen = ev.get("token")
        table = doc.createElement("table")
        caption = doc.createElement("caption")
        caption.className = "hint"
        caption.textContent = ("Most likely next tokens at this step (probabilities at the sampling temperature, "
                               "1 when greedy, before top-k / top-p)")
        table.appendChild(caption)
        body = doc.createElement("tbody")
        for cand in top:
            row = doc.createElement("tr")
            prob = cand.get("prob")
            if cand.get("id") == chosen:
                row.className = "chosen"
            cells = [("cand", visible(str(cand.get("text", "")))), ("bar", None),
                     ("prob", "n/a" if prob is None else f"{prob * 100:.1f}%")]
            for cls, value in cells:
                td = doc.createElement("td")
                td.className = cls
                if cls == "bar":
                    track = doc.createElement("span")
                    track.className = "bar-track"
                    track.setAttribute("aria-hidden", "true")
                    fill = doc.createElement("span")
                    fill.className = "bar-fill"
                    fill.style.setProperty("width", f"{max(0.0, min(1.0, prob or 0)) * 100:.1f}%")
                    track.appendChild(fill)
                    td.appendChild(track)
                else:
                    td.textContent = value
                    if cls == "cand" and cand.get("id") == chosen:
                        td.setAttribute("aria-label", f"{visible(str(cand.get('text', '')))} (chosen)")
                row.appendChild(td)
            body.appendChild(row)
        table.appendChild(body)
        popup.appendChild(table)
        notes = []
        if top and all(c.get("prob") is None for c in top):
            notes.append("The engine gives probabilities only at temperature 1 or greedy; this list is in "
                         "order of likelihood.")
        if chosen is not None and all(c.get("id") != chosen for c in top):
            notes.append(f"The sampled token (id {chosen}) was not among these.")
        if len(record["events"]) > 1:
            notes.append(f"This text took {len(record['events'])} tokens; showing the last one.")
        for text in notes:
            p = doc.createElement("p")
            p.className = "popup-note"
            p.textContent = text
            popup.appendChild(p)
        previous = self.token_span(self.popup_index) if self.popup_index is not None else None
        if previous is not None:
            previous.removeAttribute("aria-describedby")
            previous.removeAttribute("aria-expanded")
        self.popup_index = index
        span = self.token_span(index)
        span.setAttribute("aria-describedby", "token-popup")
        span.setAttribute("aria-expanded", "true")
        popup.hidden = False
        self.place_popup()

    def place_popup(self) -> None:
        if self.popup_index is None:
            return
        span = self.token_span(self.popup_index)
        popup = self.el["token-popup"]
        if span is None:
            return
        panel = self.el["output-panel"].getBoundingClientRect()
        rect = span.getBoundingClientRect()
        width = popup.offsetWidth
        left = rect.left - panel.left
        left = max(4, min(left, panel.width - width - 4))
        top = rect.bottom - panel.top + 6
        popup.style.setProperty("left", f"{left:.0f}px")
        popup.style.setProperty("top", f"{top:.0f}px")

    def hide_popup(self) -> None:
        if self.popup_index is not None:
            span = self.token_span(self.popup_index)
            if span is not None:
                span.removeAttribute("aria-describedby")
                span.removeAttribute("aria-expanded")
        self.popup_index = None
        self.popup_pinned = False
        self.el["token-popup"].hidden = True


APP: UI | None = None


def start(api=None) -> UI:
    """Bind the page (idempotent per page). The engine may still be starting: the UI waits for
    `api.ready` and then loads the default model."""
    global APP
    if APP is None:
        APP = UI(api if api is not None else js.window.pywebgpt)
        APP.start()
    return APP
