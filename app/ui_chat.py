"""The chat, for models whose info says `chat: true` (a chat template): a message list, an editable
system prompt, replies streamed from `pywebgpt.chat.completions.create({..., stream: true})`,
Stop (and Esc), Regenerate, Clear, and the conversation's size against the context.

The page keeps the conversation (`messages`, without the system prompt, which is read from its box
at each turn) and sends all of it every turn; the engine reuses its KV cache for the part it has
already seen and drops the oldest turns when the context would overflow (the reply's `pywebgpt`
section says how many tokens were reused and how many messages were dropped). Every message is
put on the page as text, never HTML: model output may contain markup.

A mixin of app/ui.py's UI: it reads `api`, `el`, `model`, `lost_shown`, `check_run_settings()`,
`show_error()` and `_count_run()`, and owns `chat_mode`, `messages`, `bubbles` (the element of
each message) and `chat_abort` (the AbortController of the reply being written)."""

from __future__ import annotations

import time

import js

from .ui_chat_text import (
    CHAT_FINISH_NOTE,
    CHAT_ROLE_NAMES,
    EMPTY_MESSAGE,
    chat_error,
    chat_finish_text,
    chat_request,
    chat_stats,
    token_count_text,
    tokens_used,
)
from .ui_dom import empty, error_parts, fill_list, or_none, to_js_object, to_py
from .ui_text import context_of, sentence

ABORTED = ("AbortError",)  # how an aborted fetch-like call rejects, as in WebLLM and OpenAI's client
STOPPED = ("abort", "cancelled")  # finish reasons of a reply that Stop (or Esc) ended


class ChatPanel:
    chat_mode: bool
    messages: list
    bubbles: list
    chat_abort: object

    # ------------------------------------------------------------------------ mode

    def show_mode(self, chat: bool) -> None:
        """The chat for a model with a chat template; the plain prompt page for any other."""
        self.chat_mode = chat
        e = self.el
        e["prompt-panel"].hidden = chat
        e["output-panel"].hidden = chat
        e["chat-panel"].hidden = not chat
        skip = e["skip-link"]
        skip.href = "#chat-input" if chat else "#prompt"
        skip.textContent = "Skip to the message box" if chat else "Skip to the prompt"
        js.document.body.dataset.mode = "chat" if chat else "prompt"
        if chat:  # a conversation kept from another model: its size and dropped turns are unknown here
            self.show_token_count(None)
            self.mark_dropped(0)

    def update_chat_controls(self, ready: bool, busy: bool) -> None:
        e = self.el
        can_run = ready and not busy and self.model is not None
        e["chat-send"].disabled = not can_run
        e["chat-send"].setAttribute("aria-busy", "true" if self.generating and self.chat_mode else "false")
        e["chat-stop"].disabled = not self.generating
        e["chat-regenerate"].disabled = not can_run or not self.messages
        e["chat-clear"].disabled = self.generating or not self.messages

    def show_token_count(self, used) -> None:
        box = self.el["chat-tokens"]
        box.textContent = token_count_text(used, context_of(self.model) if self.model else None)
        if used is None:
            box.removeAttribute("data-used")
        else:
            box.dataset.used = str(used)

    # ------------------------------------------------------------------------ messages

    def add_bubble(self, role: str, text: str):
        """A message's element at the end of the list: its role, then its text (as text)."""
        doc = js.document
        bubble = doc.createElement("div")
        bubble.className = f"msg msg-{role}"
        bubble.dataset.role = role
        name = doc.createElement("p")
        name.className = "msg-role"
        name.textContent = CHAT_ROLE_NAMES.get(role, role)
        body = doc.createElement("div")
        body.className = "msg-text"
        body.textContent = text
        bubble.appendChild(name)
        bubble.appendChild(body)
        log = self.el["chat-log"]
        log.appendChild(bubble)
        log.dataset.empty = "false"
        log.scrollTop = log.scrollHeight
        return bubble

    def add_message(self, role: str, text: str) -> None:
        self.messages.append({"role": role, "content": text})
        self.bubbles.append(self.add_bubble(role, text))

    def pop_message(self) -> dict:
        self.bubbles.pop().remove()
        message = self.messages.pop()
        if not self.messages:
            self.el["chat-log"].dataset.empty = "true"
        return message

    def mark_dropped(self, dropped: int) -> None:
        """The oldest messages the model did not see for the last reply are shown as such."""
        for i, bubble in enumerate(self.bubbles):
            if i < dropped:
                bubble.classList.add("dropped")
                bubble.setAttribute("aria-description", "not in the model's context any more")
            else:
                bubble.classList.remove("dropped")
                bubble.removeAttribute("aria-description")

    @staticmethod
    def add_note(bubble, text: str) -> None:
        note = js.document.createElement("p")
        note.className = "msg-note"
        note.textContent = text
        bubble.appendChild(note)

    def clear_chat(self) -> None:
        if self.generating:
            return
        self.messages = []
        self.bubbles = []
        log = self.el["chat-log"]
        empty(log)
        log.dataset.empty = "true"
        fill_list(self.el["chat-notices"], [])
        self.el["chat-stats"].textContent = ""
        self.el["chat-stats"].removeAttribute("data-finish")
        self.el["chat-state"].textContent = "Conversation cleared."
        self.show_token_count(None)
        self.update_controls()
        self.el["chat-input"].focus()

    # ------------------------------------------------------------------------ events

    def _on_chat_submit(self, event) -> None:
        event.preventDefault()
        self.request_generate()

    def _on_chat_input_key(self, event) -> None:
        """Enter sends, Shift+Enter starts a new line (Ctrl+Enter sends too, as on the plain page)."""
        if (str(event.key) == "Enter" and not (event.shiftKey or event.ctrlKey or event.metaKey or event.altKey)
                and not event.isComposing):
            event.preventDefault()
            self.request_generate()

    def request_regenerate(self) -> None:
        if self.engine != "ready" or self.generating or self.loading or self.model is None or not self.messages:
            return
        self.generating = True
        self.spawn(self.chat_send(regenerate=True))

    def stop_chat(self) -> None:
        if self.chat_abort is not None:
            self.chat_abort.abort()

    # ------------------------------------------------------------------------ a turn

    async def chat_send(self, regenerate: bool = False) -> None:
        """One turn: the message in the box (or, to regenerate, the conversation without its last
        reply) is answered by a streamed reply."""
        self.generating = False  # request_generate's hold; set again below, with no await before it
        e = self.el
        opts = self.check_run_settings()
        if opts is None:
            return
        text = str(e["chat-input"].value)
        if not regenerate and text.strip() == "":
            self.show_error(*EMPTY_MESSAGE)
            e["chat-input"].focus()
            self._count_run("failed")
            return
        if or_none(e["error-banner"].getAttribute("data-kind")) != "engine":
            self.hide_error()
        previous = None
        if regenerate:
            if self.messages[-1]["role"] == "assistant":
                previous = self.pop_message()
        else:
            self.add_message("user", text)
            e["chat-input"].value = ""
        request = chat_request(opts, str(e["system-prompt"].value), self.messages)
        reply = self.add_bubble("assistant", "")
        reply.classList.add("streaming")
        reply_text = reply.querySelector(".msg-text")
        self.generating = True
        js.document.body.dataset.gen = "running"
        e["chat-log"].setAttribute("aria-busy", "true")
        e["chat-state"].textContent = "Writing the reply…"
        e["chat-state"].dataset.state = "running"
        self.chat_abort = js.AbortController.new()
        self.update_controls()
        request["signal"] = self.chat_abort.signal
        reply_state = {"content": [], "finish": None, "usage": None, "extra": None}
        failure = None
        started = time.perf_counter()
        try:
            await self.stream_reply(to_js_object(request), reply_text, reply_state)
        except Exception as exc:  # noqa: BLE001 - shown in the banner; the conversation stays
            err = error_parts(exc)
            if err.get("name") in ABORTED or err.get("code") == "cancelled":
                reply_state["finish"] = reply_state["finish"] if reply_state["finish"] in STOPPED else "abort"
            else:
                failure = err
        finally:
            self.chat_abort = None
            self.generating = False
            reply.classList.remove("streaming")
            e["chat-log"].setAttribute("aria-busy", "false")
            e["chat-state"].dataset.state = "idle"
        if failure is not None:
            self.chat_failed(failure, reply, regenerate, text, previous)
        else:
            self.chat_done(reply, "".join(reply_state["content"]), reply_state["finish"], reply_state["usage"],
                           reply_state["extra"], time.perf_counter() - started)
        self.update_controls()

    async def stream_reply(self, request, holder, state: dict) -> None:
        """Run the request (stream: true) and put each piece of the reply in holder as it comes;
        state collects the text, finish_reason, usage and the pywebgpt section. create() gives the
        chunks' async iterator (or, as OpenAI's client does, a promise of it); after a device loss
        already shown, its one 'device_lost' failure is expected and the request is made again."""
        for attempt in range(2):
            stream = self.api.chat.completions.create(request)
            if hasattr(stream, "then"):
                stream = await stream
            try:
                async for chunk in stream:
                    chunk = to_py(chunk) or {}
                    choice = (chunk.get("choices") or [{}])[0]
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        self.append_reply(holder, piece)
                        state["content"].append(piece)
                    state["finish"] = choice.get("finish_reason") or state["finish"]
                    state["usage"] = chunk.get("usage") or state["usage"]
                    state["extra"] = chunk.get("pywebgpt") or state["extra"]
            except Exception as exc:  # noqa: BLE001 - anything but the expected device loss goes up
                if attempt or state["content"] or not (self.lost_shown and error_parts(exc)["code"] == "device_lost"):
                    raise
                self.lost_shown = False
                continue
            self.lost_shown = False
            return

    def append_reply(self, holder, piece: str) -> None:
        log = self.el["chat-log"]
        stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 24
        holder.appendChild(js.document.createTextNode(piece))  # text only, never HTML
        if stick:
            log.scrollTop = log.scrollHeight

    def chat_done(self, reply, text: str, finish, usage, extra, seconds: float) -> None:
        e = self.el
        if text == "" and finish in STOPPED:
            reply.remove()  # stopped before any text: no empty turn in the conversation
        else:
            self.messages.append({"role": "assistant", "content": text})
            self.bubbles.append(reply)
            note = CHAT_FINISH_NOTE.get(finish)
            if note:
                self.add_note(reply, note)
            if text == "":
                self.add_note(reply, "(The reply is empty.)")
        extra = extra or {}
        dropped = int(extra.get("dropped_messages") or 0)
        self.mark_dropped(dropped)
        fill_list(e["chat-notices"], [sentence(str(n)) for n in extra.get("notices") or []])
        stats = e["chat-stats"]
        empty(stats)
        for label, value in chat_stats(usage, extra, finish):
            item = js.document.createElement("span")
            item.className = "stat"
            item.appendChild(js.document.createTextNode(label + ": "))
            b = js.document.createElement("b")
            b.textContent = value
            item.appendChild(b)
            stats.appendChild(item)
        stats.dataset.finish = str(finish)
        self.show_token_count(tokens_used(usage))
        e["chat-state"].textContent = f"Done in {seconds:.1f} s: {chat_finish_text(finish)}."
        self._count_run("done")

    def chat_failed(self, err: dict, reply, regenerate: bool, text: str, previous) -> None:
        """Nothing of a failed turn stays: the reply goes, the message goes back into the box (or,
        for Regenerate, the previous reply comes back)."""
        reply.remove()
        if regenerate:
            if previous is not None:
                self.add_message(previous["role"], previous["content"])
        else:
            self.pop_message()
            box = self.el["chat-input"]
            if str(box.value) == "":
                box.value = text
        banner = chat_error(err)
        self.show_error(banner["title"], banner["message"], banner["hint"])
        self.el["chat-state"].textContent = "Failed: see the message above."
        self._count_run("failed")
