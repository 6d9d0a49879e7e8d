"""Chat: a conversation rendered by the model's own chat template (app/chat_template.py), fitted to
the context, and the OpenAI-style request and response shapes the JS API speaks.

    template = model_chat_template(tokenizer)           # None: the model has no chat template
    ids, dropped = fit_conversation(template, tokenizer, messages, context, max_new_tokens)

A conversation that would not leave room for the reply loses its oldest turns first (a system
message stays); the caller says how many messages were dropped. Each turn is rendered whole, as
transformers renders it, and the generation keeps the KV cache of the longest prefix the new
rendering shares with the previous one (app/generate.py reuse_cache): a template may rewrite earlier
turns (Qwen3 drops earlier reasoning), so appending the new turn's ids alone would not be safe.

Standard library only (jinja2 is imported by app/chat_template.py when a template is compiled).
"""

from __future__ import annotations

import time

from .errors import InputError

# our finish reasons -> OpenAI's (WebLLM's "abort" for a generation stopped by the caller)
FINISH_REASONS = {"length": "length", "eos": "stop", "stop": "stop", "cancelled": "abort", "error": "abort"}
# request keys -> Model.generate options; "model" is accepted and ignored (WebLLM passes a model id)
REQUEST_OPTIONS = {"max_tokens": "max_new_tokens", "max_completion_tokens": "max_new_tokens",
                   "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                   "repetition_penalty": "repetition_penalty", "seed": "seed", "stop": "stop"}
REQUEST_KEYS = set(REQUEST_OPTIONS) | {"messages", "stream", "model", "n", "stream_options"}


def model_chat_template(tokenizer):
    """The ChatTemplate of a tokenizer (HFTokenizer: tokenizer_config.json's chat_template or
    chat_template.jinja), or None when it has none."""
    source = getattr(tokenizer, "chat_template", None)
    if not source:
        return None
    from .chat_template import ChatTemplate  # noqa: PLC0415 - needs jinja2 only where chats happen

    config = dict(getattr(tokenizer, "tokenizer_config", None) or {})
    config["chat_template"] = source
    return ChatTemplate.from_config(config)


def fit_conversation(template, tokenizer, messages, context: int, max_new_tokens: int) -> tuple[list, int]:
    """(prompt ids of the conversation with the generation prompt, messages dropped) such that the
    prompt leaves max_new_tokens of room in the context, dropping the oldest turns (after a leading
    system message) while there is more than the last message; what still does not fit is left to
    the generation's own policy (it keeps the prompt's last tokens and says so)."""
    from .chat_template import check_messages  # noqa: PLC0415 - needs jinja2 only where chats happen

    messages = check_messages(messages)
    if not messages:
        raise InputError("messages is empty: give at least one message")
    system = messages[:1] if messages[0].get("role") == "system" else []
    turns = messages[len(system):]
    room = max(1, context - min(max_new_tokens, context - 1))
    dropped = 0
    while True:
        text = template.render(system + turns, add_generation_prompt=True)
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        if len(ids) <= room or len(turns) <= 1:
            return ids, dropped
        # drop the oldest turn: a user message and the assistant's reply to it
        cut = 2 if len(turns) > 2 and turns[0].get("role") == "user" and turns[1].get("role") == "assistant" else 1
        turns = turns[cut:]
        dropped += cut


def parse_request(request: dict) -> tuple[list, dict, bool]:
    """An OpenAI-style chat.completions request -> (messages, Model.generate options, stream).
    Unknown keys, n other than 1 and bad values are InputErrors naming the key."""
    if not isinstance(request, dict):
        raise InputError(f"the request must be an object with messages, got {type(request).__name__}")
    unknown = sorted(set(request) - REQUEST_KEYS)
    if unknown:
        raise InputError(f"unsupported request key(s) {', '.join(map(str, unknown))}; supported: "
                         f"{', '.join(sorted(REQUEST_KEYS))}")
    if request.get("n") not in (None, 1):
        raise InputError(f"n must be 1 (one reply per request), got {request.get('n')!r:.40}")
    if "messages" not in request:
        raise InputError("the request has no messages: give [{role, content}, ...]")
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise InputError(f"stream must be true or false, got {stream!r:.40}")
    options = {}
    for key, option in REQUEST_OPTIONS.items():
        value = request.get(key)
        if value is None:
            continue
        if option in options:
            raise InputError("give max_tokens or max_completion_tokens, not both")
        if key == "stop" and isinstance(value, str):
            value = [value]
        options[option] = value
    return request["messages"], options, stream


def completion_id() -> str:
    return f"chatcmpl-{time.time_ns():x}"


def usage(result) -> dict:
    prompt = len(result.prompt_ids) - result.dropped_prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": len(result.tokens),
            "total_tokens": prompt + len(result.tokens)}


def extras(result, dropped_messages: int) -> dict:
    """What PyWebGPT adds to a response: the KV cache reuse, dropped turns, notices, timings."""
    return {"reused_tokens": result.reused_tokens, "prefilled_tokens": result.prefilled_tokens,
            "dropped_messages": dropped_messages, "notices": list(result.notices), "timings": dict(result.timings)}


def completion(cid: str, created: int, model: str, result, dropped_messages: int) -> dict:
    """The ChatCompletion of a finished generation."""
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": FINISH_REASONS.get(result.finish_reason, "stop"), "logprobs": None}],
            "usage": usage(result), "pywebgpt": extras(result, dropped_messages)}


def chunk(cid: str, created: int, model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
