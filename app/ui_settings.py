"""The Settings panel: reading and checking the sampling fields, marking the wrong ones, Greedy,
Reset to defaults, the model's bounds (max new tokens, top-k) and its own sampling defaults
(generation_config.json, through info().model.generation_defaults). The plain prompt page and the
chat read the same fields.

A mixin of app/ui.py's UI: it reads `el` and `model` (the loaded model's info) and owns
`setting_defaults` (field id -> the current model's default, where it has one)."""

from __future__ import annotations

import js

from .ui_dom import by_id
from .ui_text import (
    DEFAULT_VOCAB,
    DEFAULTS,
    NUMBER_FIELDS,
    context_of,
    max_new_tokens_limit,
    model_defaults,
    parse_settings,
    settings_for_model,
)


class SettingsPanel:
    setting_defaults: dict

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
        for name, value in {**DEFAULTS, **self.setting_defaults}.items():
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
        limit = max_new_tokens_limit(self.model)
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

    def apply_model_defaults(self) -> None:
        """A model was loaded: the fields still at the previous model's defaults take this one's
        (a field the user changed stays as it is)."""
        new = model_defaults((self.model or {}).get("generation_defaults"), (self.model or {}).get("vocab_size"))
        current = {name: str(self.el[name].value) for name in NUMBER_FIELDS}
        for name, value in settings_for_model(current, self.setting_defaults, new).items():
            self.el[name].value = value
            self._clear_invalid(self.el[name])
        self.setting_defaults = new

    def _clear_invalid(self, field) -> None:
        field.removeAttribute("aria-invalid")
        note = by_id(f"{field.id}-error")
        if note is not None:
            note.remove()

    def _mark_invalid(self, name: str, message: str) -> None:
        field = self.el[name]
        field.setAttribute("aria-invalid", "true")
        if by_id(f"{name}-error") is None:
            note = js.document.createElement("p")
            note.id = f"{name}-error"
            note.className = "error-text"
            field.parentElement.appendChild(note)
            field.setAttribute("aria-describedby", f"{name}-hint {name}-error")
        js.document.getElementById(f"{name}-error").textContent = message

    def read_settings(self) -> tuple:
        """(options for generate(), [(field, problem), ...]); the wrong fields are marked."""
        e = self.el
        for name in NUMBER_FIELDS:
            self._clear_invalid(e[name])
        raw = {name: str(e[name].value) for name in (*NUMBER_FIELDS, "stop-strings")}
        model = self.model or {}
        opts, problems = parse_settings(raw, bool(e["greedy"].checked), context_of(model),
                                        int(model.get("vocab_size") or DEFAULT_VOCAB))
        for name, message in problems:
            self._mark_invalid(name, message)
        return opts, problems
