"""The Model panel: the models list (weights/models.json), loading by list entry, Hub id or URL
(a folder from this computer: app/ui_files.py), the progress bar, Cancel, and the loaded model's
details. A model whose info says `chat: true` switches the page to the chat (app/ui_chat.py).

A mixin of app/ui.py's UI: it reads `api`, `el`, `runtime`, `show_error()`, `_recovering()` and
the settings and chat mixins, and owns `models`, `model` (the loaded model's info), `model_entry`,
`model_label`, `loading`, `load_was_auto` and `prompt_default`."""

from __future__ import annotations

import js
from pyodide.ffi import create_proxy

from .ui_dom import bump, empty, error_parts, fill_list, to_js_object, to_py
from .ui_text import (
    FALLBACK_MODELS,
    MODELS_URL,
    NO_MODEL_GIVEN,
    describe_entry,
    entry_for_source,
    is_foreign,
    load_error,
    loaded_text,
    model_notices,
    model_rows,
    models_from_json,
    progress_view,
)


class LoadingPanel:
    models: list
    model: dict | None
    model_entry: dict | None
    model_label: str
    loading: bool
    load_was_auto: bool
    prompt_default: str

    async def load_models_list(self) -> None:
        try:
            response = await js.fetch(MODELS_URL)
            if not response.ok:
                raise ValueError(f"HTTP {response.status}")
            models = models_from_json(str(await response.text()))
            if models:
                self.models = models
        except Exception as exc:  # noqa: BLE001 - the bundled model still works without the list
            self.models = list(FALLBACK_MODELS)
            self.el["model-description"].textContent = f"(The models list {MODELS_URL} could not be read: {exc}.)"
        select = self.el["model-select"]
        empty(select)
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
        if entry is not None:
            self.el["model-description"].textContent = describe_entry(entry)

    def selected_entry(self):
        try:
            return self.models[int(self.el["model-select"].value)]
        except (ValueError, IndexError, TypeError):
            return None

    def current_model_info(self):
        try:
            info = to_py(self.api.info())
        except Exception:  # noqa: BLE001 - not ready
            return None
        return (info or {}).get("model")

    def _on_model_submit(self, event) -> None:
        event.preventDefault()
        entry = self.selected_entry()
        if entry is not None:
            self.spawn(self.load(entry["source"], label=entry["name"], entry=entry))

    def _on_custom_submit(self, event) -> None:
        event.preventDefault()
        ref = str(self.el["custom-ref"].value).strip()
        if not ref:
            self.show_error(*NO_MODEL_GIVEN)
            self.el["custom-ref"].focus()
            return
        self.spawn(self.load(ref, label=ref))

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
            options = {"onProgress": progress}
            quantize = str(e["quantize-select"].value or "")
            if quantize and not auto:  # the bundled default loads as it is
                options["quantize"] = quantize
            opts = to_js_object(options)
            target = files if files is not None else ref
            loader = self.api._autoLoad if auto and hasattr(self.api, "_autoLoad") else self.api.load
            info = to_py(await self._recovering(lambda: loader(target, opts)))
        except Exception as exc:  # noqa: BLE001 - every failure is shown, the previous model stays
            err = error_parts(exc)
            code = err["code"]
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
                banner = load_error(err, label, self.model_label if self.model is not None else None,
                                    is_foreign(ref, str(js.location.host)))
                self.show_error(banner["title"], banner["message"], banner["hint"])
            return
        finally:
            progress.destroy()
            self.loading = False
            self.update_controls()
            bump("loads")
        self.hide_error_if_load()
        self.set_model(info, entry, label)

    def hide_error_if_load(self) -> None:
        if str(self.el["error-title"].textContent).startswith("Could not load"):
            self.hide_error()

    def cancel_load(self) -> None:
        if self.loading:
            self.api.cancelLoad()
            self.el["load-text"].textContent = "Cancelling…"

    def _on_progress(self, p) -> None:
        text, value, aria = progress_view(to_py(p) or {})
        bar = self.el["load-progress"]
        if value is not None:
            bar.value = value
        bar.setAttribute("aria-valuetext", aria)
        self.el["load-text"].textContent = text

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

    def set_model_state(self, text: str, state: str) -> None:
        self.el["model-state"].textContent = text
        self.el["model-state"].dataset.state = state

    def _model_state_text(self, prefix: str = "") -> str:
        return f"{prefix}{self.model_label} is loaded." if self.model is not None else prefix + "No model loaded."

    def set_model(self, info: dict, entry: dict | None, label: str) -> None:
        if entry is None:
            entry = entry_for_source(self.models, str(info.get("source", "")),
                                     lambda ref: js.URL.new(ref, js.location.href).href)
        old_prompt = (self.model_entry or {}).get("prompt") or self.prompt_default
        self.model = info
        self.model_entry = entry
        self.model_label = entry["name"] if entry else label
        self.set_model_state(loaded_text(self.model_label, (info.get("load") or {}).get("from_cache")), "loaded")
        dl = self.el["model-info"]
        empty(dl)
        for key, value in model_rows(info, (self.runtime or {}).get("adapter"), label):
            dt = js.document.createElement("dt")
            dt.textContent = key
            dd = js.document.createElement("dd")
            dd.textContent = value
            dl.appendChild(dt)
            dl.appendChild(dd)
        self.el["model-details"].hidden = False
        fill_list(self.el["model-notices"], model_notices(info))
        self.apply_model_defaults()
        self.apply_model_bounds()
        prompt = self.el["prompt"]
        new_prompt = (entry or {}).get("prompt")
        if new_prompt and str(prompt.value).strip() in ("", old_prompt):
            prompt.value = new_prompt
        if entry is not None:
            self.el["model-select"].value = str(self.models.index(entry))
            self.describe_selected()
        self.show_mode(bool(info.get("chat")))
        self.update_controls()
        js.document.body.dataset.model = "loaded"
