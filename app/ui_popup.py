"""The token popup of the plain prompt page: hover, click (pins it), focus or arrow keys on a
generated token show the five likeliest tokens at that step, as text in a table.

A mixin of app/ui.py's UI. It reads `el`, `tokens` (one {"events", "text"} per token span) and
`token_span(i)`, and owns `popup_index`, `popup_pinned` and `current` (the span that takes Tab
focus: a roving tabindex, so Tab reaches one token and the arrows move between them)."""

from __future__ import annotations

import js

from .ui_dom import empty, or_none
from .ui_text import candidate_rows, popup_notes, popup_title


class TokenPopup:
    popup_index: int | None
    popup_pinned: bool
    current: int

    @staticmethod
    def _token_index(event):
        target = or_none(event.target)
        if target is None or not hasattr(target, "closest"):
            return None
        span = or_none(target.closest(".tok"))
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
        related = or_none(event.relatedTarget)
        if related is not None and hasattr(related, "closest") and or_none(related.closest(".tok")) is not None:
            return
        active = or_none(js.document.activeElement)
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
        related = or_none(event.relatedTarget)
        if related is not None and hasattr(related, "closest") and or_none(related.closest(".tok")) is not None:
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
        empty(popup)
        doc = js.document
        title = doc.createElement("p")
        title.className = "popup-title"
        title.textContent = popup_title(index, record["text"])
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
        for cand in candidate_rows(top, chosen):
            row = doc.createElement("tr")
            if cand["chosen"]:
                row.className = "chosen"
            for cls, value in (("cand", cand["text"]), ("bar", None), ("prob", cand["prob"])):
                td = doc.createElement("td")
                td.className = cls
                if cls == "bar":
                    track = doc.createElement("span")
                    track.className = "bar-track"
                    track.setAttribute("aria-hidden", "true")
                    fill = doc.createElement("span")
                    fill.className = "bar-fill"
                    fill.style.setProperty("width", cand["width"])
                    track.appendChild(fill)
                    td.appendChild(track)
                else:
                    td.textContent = value
                    if cls == "cand" and cand["chosen"]:
                        td.setAttribute("aria-label", f"{cand['text']} (chosen)")
                row.appendChild(td)
            body.appendChild(row)
        table.appendChild(body)
        popup.appendChild(table)
        for text in popup_notes(top, chosen, len(record["events"])):
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
