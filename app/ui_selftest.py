"""The "Check this GPU" button in the model details: runs `pywebgpt.selfTest()` (app/selftest.py)
on the loaded model and shows the verdict and its figures, as text only (a golden record and token
texts come from the model's folder).

A mixin of app/ui.py's UI: it reads `api`, `el`, `model`, `loading`, `generating`, `spawn()`,
`update_controls()` and `_recovering()`, and owns `checking` (the check runs: the other controls
that start GPU work wait) and `selftest_source` (the model the result shown is about)."""

from __future__ import annotations

import js

from .selftest import describe
from .ui_dom import bump, empty, error_parts, to_py

STATE = {"pass": "loaded", "fail": "error", "error": "error"}  # .model-state colours: green, red


class SelfTestPanel:
    checking: bool
    selftest_source: str | None
    selftest_out: dict | None  # the last result, as pywebgpt.selfTest() gave it

    def bind_selftest(self) -> None:
        self.on(self.el["selftest-button"], "click", lambda ev: self.spawn(self.run_selftest()))
        self.on(js.document, "pywebgpt:model", lambda ev: self._selftest_model_changed())

    def update_selftest_controls(self, ready: bool, busy: bool) -> None:
        button = self.el["selftest-button"]
        button.disabled = not ready or busy or self.model is None
        button.setAttribute("aria-busy", "true" if self.checking else "false")

    def _selftest_model_changed(self) -> None:
        source = (self.model or {}).get("source")
        if self.selftest_source is not None and source != self.selftest_source and not self.checking:
            self.el["selftest-result"].hidden = True  # about another model now
            self.selftest_source = None

    async def run_selftest(self) -> None:
        if self.checking or self.loading or self.generating or self.model is None or self.engine != "ready":
            return
        self.checking = True
        self.selftest_source = self.model.get("source")
        self.update_controls()
        self.show_selftest(["Checking this GPU: a few short greedy generations against the model's golden "
                            "record…"], "running")
        out = None
        try:
            out = to_py(await self._recovering(lambda: self.api.selfTest()))
        except Exception as exc:  # noqa: BLE001 - a failed check is shown where the result goes
            err = error_parts(exc)
            self.show_selftest([f"The check could not run: {err['message']}"], "error")
        finally:
            self.checking = False
            self.update_controls()
        if out is not None:
            self.selftest_out = out
            self.show_selftest(describe(out), out["verdict"], out)
        bump("selftests")

    def show_selftest(self, lines: list, verdict: str, out: dict | None = None) -> None:
        box = self.el["selftest-result"]
        empty(box)
        for i, line in enumerate(lines):
            p = js.document.createElement("p")
            p.textContent = str(line)
            if i == 0:
                p.className = "model-state"
                if verdict in STATE:
                    p.dataset.state = STATE[verdict]
            else:
                p.className = "hint"
            box.appendChild(p)
        box.dataset.verdict = verdict
        if out is not None and out.get("max_abs_delta") is not None:
            box.dataset.maxAbsDelta = repr(float(out["max_abs_delta"]))
            box.dataset.idsAgree = "true" if out.get("ids_agree") else "false"
        else:
            box.removeAttribute("data-max-abs-delta")
            box.removeAttribute("data-ids-agree")
        box.hidden = False
