"""The chat's words and numbers (app/ui_chat.py puts them on the page): the request made from the
page's settings and conversation, the token count against the context, a reply's figures and its
error banner. Standard library only, no `js`: CPython imports it (tests/test_ui_text.py)."""

from __future__ import annotations

from .ui_text import finite, sentence

EMPTY_MESSAGE = ("The message is empty", "Write a message for the model to answer.",
                 "Type in the Message box, then press Send (or Enter).")
CHAT_FINISH_TEXT = {"stop": "end of the reply", "eos": "end of the reply", "length": "reached the token limit",
                    "abort": "stopped", "cancelled": "stopped"}
# A note under a reply that did not end by itself.
CHAT_FINISH_NOTE = {"length": "The reply reached the Max new tokens setting.", "abort": "Stopped.",
                    "cancelled": "Stopped."}
CHAT_ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def chat_finish_text(reason) -> str:
    return CHAT_FINISH_TEXT.get(reason, str(reason))


def chat_request(opts: dict, system: str, messages: list) -> dict:
    """The page's generation options and conversation as a chat.completions.create request
    (stream: true): max_new_tokens becomes max_tokens, the other sampling options keep their names,
    a system prompt that is not blank goes first, and an empty stop list is left out."""
    request = {"messages": ([{"role": "system", "content": system}] if system.strip() else [])
               + [{"role": m["role"], "content": m["content"]} for m in messages], "stream": True}
    for key, value in opts.items():
        if key == "max_new_tokens":
            request["max_tokens"] = value
        elif key == "stop":
            if value:
                request["stop"] = list(value)
        else:
            request[key] = value
    return request


def token_count_text(used, context) -> str:
    """The conversation's size against the model's context: "1,234 / 2,048 tokens"; before the
    first reply (or when unknown) only the context: "2,048-token context"."""
    context = finite(context)
    used = finite(used)
    if context is None:
        return "" if used is None else f"{used:,.0f} tokens"
    if used is None:
        return f"{context:,.0f}-token context"
    return f"{used:,.0f} / {context:,.0f} tokens"


def tokens_used(usage: dict | None):
    """The tokens a conversation holds after a reply: its prompt plus the reply (None if unknown)."""
    usage = usage or {}
    prompt, completion = finite(usage.get("prompt_tokens")), finite(usage.get("completion_tokens"))
    if prompt is None:
        return None
    return int(prompt + (completion or 0))


def chat_stats(usage: dict | None, extra: dict | None, finish_reason) -> list:
    """A finished reply's figures: [(label, value), ...]: the prompt (how much of it was reused
    from the previous turn's cache and how much computed), the reply, its speed, how it ended."""
    usage, extra = usage or {}, extra or {}
    timings = extra.get("timings") or {}
    stats = []
    prompt = finite(usage.get("prompt_tokens"))
    if prompt is not None:
        reused, prefilled = finite(extra.get("reused_tokens")), finite(extra.get("prefilled_tokens"))
        detail = ""
        if reused is not None and prefilled is not None:
            detail = f" ({reused:,.0f} reused, {prefilled:,.0f} new)"
        stats.append(("Prompt", f"{prompt:,.0f} tokens{detail}"))
    completion = finite(usage.get("completion_tokens"))
    if completion is not None:
        stats.append(("Reply", f"{completion:,.0f} tokens"))
    decode = finite(timings.get("decode_ms_per_token"))
    if decode:
        stats.append(("Speed", f"{1000 / decode:.1f} tokens/s"))
    ttft = finite(timings.get("ttft_ms"))
    if ttft is not None:
        stats.append(("First token", f"{ttft:.0f} ms"))
    stats.append(("Finished", chat_finish_text(finish_reason)))
    return stats


def chat_error(err: dict) -> dict:
    """The banner for a reply that failed: {title, message, hint}."""
    message = sentence(str(err.get("message") or ""))
    if err.get("code") == "busy":
        return {"title": "A reply is already being written", "message": message,
                "hint": "Wait for it or press Stop (Esc)."}
    return {"title": "The reply failed", "message": message,
            "hint": "Your message is back in the box and the conversation is kept: press Send to try again. "
                    "After a lost GPU, Send restarts it and reloads the model."}
