"""The plain prompt page (models without a chat template): Generate, the streaming output (one
focusable span per token, text only), the run's figures, Copy, and the banners of a failed run.

A mixin of app/ui.py's UI: it reads `api`, `el`, `read_settings()`, `show_error()` and
`_recovering()`, and owns the run's state: `tokens` (one {"events", "text"} per span), `pending`
(events of a character not complete yet), `run_prompt`, `run_cleared`, `run_started`,
`first_token_at`."""

from __future__ import annotations

import asyncio
import time

import js
from pyodide.ffi import create_proxy

from .ui_dom import bump, empty, error_parts, fill_list, or_none, to_js_object, to_py
from .ui_text import (
    EMPTY_PROMPT,
    LOW_PROBABILITY,
    SETTINGS_HINT,
    chosen_probability,
    drop_chars,
    finish_text,
    generating_text,
    result_stats,
    run_error,
    settings_problem_text,
)


class OutputPanel:
    tokens: list
    pending: list
    run_prompt: str
    run_cleared: bool
    run_started: float
    first_token_at: float | None

    def _on_generate_submit(self, event) -> None:
        event.preventDefault()
        self.request_generate()

    def request_generate(self) -> None:
        if self.engine != "ready" or self.generating or self.loading or self.model is None:
            return
        self.generating = True  # at once: a second press before the run starts (a double click) is ignored
        self.spawn(self.chat_send() if self.chat_mode else self.generate())

    def clear_output(self, prompt: str) -> None:
        self.hide_popup()
        e = self.el
        e["output-prompt"].textContent = prompt
        empty(e["output-text"])
        self.tokens = []
        self.pending = []
        self.current = 0
        e["output"].dataset.empty = "false"
        fill_list(e["run-notices"], [])
        e["stats"].textContent = ""
        e["stats"].removeAttribute("data-finish")

    def check_run_settings(self):
        """The settings as generate() options, or None after saying what is wrong with them."""
        opts, problems = self.read_settings()
        if problems:
            self.show_error("Check the settings", settings_problem_text(problems), SETTINGS_HINT)
            self.el[problems[0][0]].focus()
            self._count_run("failed")
            return None
        return opts

    async def generate(self) -> None:
        self.generating = False  # request_generate's hold; set again below, with no await before it
        e = self.el
        opts = self.check_run_settings()
        if opts is None:
            return
        prompt = str(e["prompt"].value)
        if prompt == "":
            self.show_error(*EMPTY_PROMPT)
            e["prompt"].focus()
            self._count_run("failed")
            return
        if or_none(e["error-banner"].getAttribute("data-kind")) != "engine":
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
            result = to_py(await self._recovering(lambda: self.api.generate(prompt, to_js_object(opts), on_token)))
        except Exception as exc:  # noqa: BLE001 - shown in the banner; prompt and output stay
            banner = run_error(error_parts(exc))
            chars = banner["chars"]
            fix = ("Remove them and generate", lambda: self.drop_chars(chars)) if chars else None
            self.show_error(banner["title"], banner["message"], banner["hint"], fix=fix)
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
        js.document.body.dataset.gen = state
        bump("runs")

    def drop_chars(self, chars: list) -> None:
        prompt = self.el["prompt"]
        prompt.value = drop_chars(str(prompt.value), chars)
        self.request_generate()

    def token_span(self, index: int):
        return or_none(self.el["output-text"].querySelector(f'[data-i="{index}"]'))

    def _on_token(self, event) -> None:
        ev = to_py(event) or {}
        if not self.run_cleared:
            self.clear_output(self.run_prompt)
            self.run_cleared = True
            out_box = self.el["output"].getBoundingClientRect()
            if out_box.top > js.window.innerHeight - 60:  # off screen (phones): bring the output up
                self.el["output"].scrollIntoView(to_js_object({"block": "nearest"}))
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
            prob = chosen_probability(ev.get("top") or [], ev.get("token"))
            if prob is not None and prob < LOW_PROBABILITY:
                span.classList.add("low")
            span.dataset.i = str(index)
            span.tabIndex = 0 if index == 0 else -1
            span.textContent = text  # text only, never HTML
            holder.appendChild(span)
        if stick:
            out.scrollTop = out.scrollHeight
        n = sum(len(t["events"]) for t in self.tokens) + len(self.pending)
        now = time.perf_counter()
        self.el["run-state"].textContent = generating_text(n, now - self.run_started, now - self.first_token_at)
        self.el["copy-button"].disabled = False

    def show_result(self, r: dict) -> None:
        e = self.el
        box = e["stats"]
        empty(box)
        for label, value in result_stats(r):
            item = js.document.createElement("span")
            item.className = "stat"
            item.appendChild(js.document.createTextNode(label + ": "))
            b = js.document.createElement("b")
            b.textContent = value
            item.appendChild(b)
            box.appendChild(item)
        box.dataset.finish = str(r.get("finish_reason"))
        fill_list(e["run-notices"], list(r.get("notices") or []))
        e["run-state"].textContent = f"Done: {finish_text(r.get('finish_reason'))}."
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
