"""The chat page in headless Chromium on SwiftShader, with a small random-weight Llama model that
has a chat template: the page becomes a chat for it (and stays the plain prompt page for the
bundled character model), the model's generation_config defaults fill the settings, an empty
message is refused with a clear banner, three turns stream and each later turn prefills only its
new tokens (the KV cache of the conversation so far is reused), Regenerate redoes the last reply,
an edited system prompt reaches the model, Clear empties the conversation, Stop and Esc end a
reply midway, turns that no longer fit the context are dropped and the page says so, markup in a
message stays text, and the chat is labelled, keyboard-usable and fits a phone.

Every reply the page shows is checked against the same request made through
`pywebgpt.chat.completions.create` (greedy, or the same seed): the page sent the conversation,
the system prompt and the settings it claims to send."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat_model import CONTEXT, make_chat_model
from conftest import slow_tokens
from test_ui import (
    DESKTOP,
    PAYLOAD,
    PHONE,
    CspWatch,
    banner,
    loads,
    open_page,
    runs,
    settings,
    shot,
    wait_model,
    wait_run,
)

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return make_chat_model(tmp_path_factory.mktemp("chat"))


@pytest.fixture(scope="module")
def page(browser, site_url):
    context = browser.new_context(viewport=DESKTOP)
    page, guard = open_page(context, site_url)
    page.guard = guard
    wait_model(page)
    yield page
    events = CspWatch.events(page)
    problems = guard.unexpected()
    console = list(page.csp.console)
    context.close()
    assert not events, f"CSP violations: {events}"
    assert not console, f"CSP console errors: {console}"
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------ helpers


def chat_state(page) -> dict:
    return page.evaluate("""() => {
      const tokens = document.querySelector('#chat-tokens');
      const stats = document.querySelector('#chat-stats');
      return {
        state: document.body.dataset.gen,
        messages: [...document.querySelectorAll('#chat-log .msg')].map((m) => ({
          role: m.dataset.role, content: m.querySelector('.msg-text').textContent,
          dropped: m.classList.contains('dropped'),
          notes: [...m.querySelectorAll('.msg-note')].map((n) => n.textContent)})),
        tokens: tokens.textContent, used: tokens.dataset.used === undefined ? null : Number(tokens.dataset.used),
        stats: stats.innerText, finish: stats.dataset.finish || null,
        notices: [...document.querySelectorAll('#chat-notices li')].map((li) => li.textContent),
        banner: (b => b.hidden ? null : b.innerText)(document.querySelector('#error-banner')),
      };
    }""")


def prompt_figures(stats: str) -> tuple:
    """(prompt tokens, reused, new) from the stats line "Prompt: 61 tokens (40 reused, 21 new)"."""
    found = re.search(r"Prompt: ([\d,]+) tokens \(([\d,]+) reused, ([\d,]+) new\)", stats)
    assert found, stats
    return tuple(int(g.replace(",", "")) for g in found.groups())


def watch_stream(page) -> None:
    """Record the streaming reply's length at each change (window.__lengths)."""
    page.evaluate("""() => {
      window.__lengths = [];
      if (window.__streamWatch) window.__streamWatch.disconnect();
      const log = document.querySelector('#chat-log');
      window.__streamWatch = new MutationObserver(() => {
        const reply = log.querySelector('.msg.streaming .msg-text');
        if (reply) window.__lengths.push(reply.textContent.length);
      });
      window.__streamWatch.observe(log, {subtree: true, childList: true, characterData: true});
    }""")


def send(page, text: str | None, key: bool = False) -> dict:
    """Type a message (None: leave the box as it is), send it with the button or Enter, wait for
    the turn to end; the chat's state."""
    if text is not None:
        page.fill("#chat-input", text)
    before = runs(page)
    if key:
        page.locator("#chat-input").press("Enter")
    else:
        page.click("#chat-send")
    wait_run(page, before)
    return chat_state(page)


def api_reply(page, messages: list, **options) -> dict:
    """The same request made through the API, without streaming."""
    return page.evaluate("""async ([messages, options]) =>
      await pywebgpt.chat.completions.create({messages, ...options})""", [messages, options])


def conversation(state: dict, system: str | None) -> list:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": m["role"], "content": m["content"]} for m in state["messages"]]


def wait_reply_chars(page, n: int) -> None:
    page.wait_for_function("""(n) => { const r = document.querySelector('#chat-log .msg.streaming .msg-text');
                                       return r && r.textContent.length >= n; }""", arg=n)


# ------------------------------------------------------------------------------------ tests


def test_the_bundled_character_model_keeps_the_plain_prompt_page(page):
    assert page.evaluate("() => document.body.dataset.mode") == "prompt"
    assert page.evaluate("() => pywebgpt.info().model.chat") is False
    assert page.locator("#chat-panel").is_hidden()
    assert page.locator("#prompt-panel").is_visible() and page.locator("#output-panel").is_visible()
    before = runs(page)
    settings(page, max_new_tokens=4, greedy=True)
    page.click("#generate-button")
    wait_run(page, before)
    assert page.locator("#output-text .tok").count() == 4
    assert page.locator("#skip-link").get_attribute("href") == "#prompt"


def test_a_model_with_a_chat_template_turns_the_page_into_a_chat(page, chat_model):
    page.locator("#more-sources").evaluate("(d) => { d.open = true; }")
    before = loads(page)
    page.locator("#folder-input").set_input_files(chat_model)
    wait_model(page, before)
    assert banner(page) is None, banner(page)
    info = page.evaluate("() => pywebgpt.info().model")
    assert info["chat"] is True and info["context"] == CONTEXT
    assert page.evaluate("() => document.body.dataset.mode") == "chat"
    assert page.locator("#chat-panel").is_visible()
    assert page.locator("#prompt-panel").is_hidden() and page.locator("#output-panel").is_hidden()
    assert page.locator("#chat-tokens").inner_text() == "256-token context"
    assert page.locator("#skip-link").get_attribute("href") == "#chat-input"
    # generation_config.json's sampling defaults became the settings (the others kept the page's).
    values = {name: page.locator(f"#{name}").input_value() for name in ("temperature", "top-k", "top-p",
                                                                         "repetition-penalty")}
    assert values == {"temperature": "0.6", "top-k": "12", "top-p": "0.9", "repetition-penalty": "1"}
    assert page.locator("#chat-regenerate").is_disabled() and page.locator("#chat-clear").is_disabled()
    page.locator("#more-sources").evaluate("(d) => { d.open = false; }")


def test_an_empty_message_is_refused_with_a_clear_message(page):
    for text in ("", "   \n  "):
        state = send(page, text)
        assert state["state"] == "failed" and state["messages"] == []
        assert "The message is empty" in state["banner"], state["banner"]
        assert page.evaluate("() => document.activeElement.id") == "chat-input"
    page.click("#error-dismiss")


def test_three_turns_stream_and_reuse_the_conversations_cache(page):
    settings(page, greedy=True, max_new_tokens=12)
    page.fill("#system-prompt", "Answer briefly.")
    turns = ["Hello! Who are you?", "What is 2 + 2?", "Tell me a story about a cat."]
    figures, states = [], []
    for i, text in enumerate(turns):
        watch_stream(page)
        state = send(page, text, key=(i == 1))  # the second one is sent with Enter
        lengths = page.evaluate("() => window.__lengths")
        assert state["state"] == "done" and state["banner"] is None, state
        assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * (i + 1)
        assert state["messages"][-2]["content"] == text
        reply = state["messages"][-1]
        assert len(reply["content"]) == 12 and state["finish"] == "length", state  # one character per token
        assert len(set(lengths)) >= 4, lengths  # it streamed: the reply grew piece by piece
        assert page.locator("#chat-input").input_value() == ""
        prompt, reused, new = prompt_figures(state["stats"])
        assert reused + new == prompt
        assert state["used"] == prompt + 12 and state["tokens"] == f"{prompt + 12} / 256 tokens"
        figures.append((prompt, reused, new))
        states.append(state)
    print("turns (prompt, reused, new):", figures)
    for (prompt, _, _), (_, reused, new) in zip(figures, figures[1:]):
        # Everything up to the previous reply came from the cache; only the new turn was computed.
        assert reused >= prompt and new < prompt, figures
    shot(page, "chat-three-turns")
    # The replies are the model's to exactly this conversation, system prompt and settings.
    for state in states:
        messages = conversation(state, "Answer briefly.")
        expected = api_reply(page, messages[:-1], temperature=0, max_tokens=12)
        assert expected["choices"][0]["message"]["content"] == messages[-1]["content"]
        assert expected["usage"]["prompt_tokens"] == prompt_figures(state["stats"])[0]


def test_regenerate_redoes_the_last_reply_with_the_current_settings(page):
    before = chat_state(page)
    settings(page, greedy=False, temperature=1, top_k=0, top_p=1, seed=5, max_new_tokens=10)
    n = runs(page)
    page.click("#chat-regenerate")
    wait_run(page, n)
    after = chat_state(page)
    assert after["state"] == "done" and len(after["messages"]) == len(before["messages"])
    assert after["messages"][:-1] == before["messages"][:-1]
    assert len(after["messages"][-1]["content"]) == 10
    messages = conversation(after, "Answer briefly.")
    expected = api_reply(page, messages[:-1], temperature=1, top_k=0, top_p=1, repetition_penalty=1, seed=5,
                         max_tokens=10)
    assert expected["choices"][0]["message"]["content"] == after["messages"][-1]["content"]
    assert after["messages"][-1]["content"] != before["messages"][-1]["content"]


def test_an_edited_system_prompt_reaches_the_model(page):
    settings(page, greedy=True, max_new_tokens=8)
    first = chat_state(page)
    page.fill("#system-prompt", "Reply in one word.")
    state = send(page, "And now?")
    assert state["state"] == "done" and len(state["messages"]) == len(first["messages"]) + 2
    prompt, reused, new = prompt_figures(state["stats"])
    # The conversation changed from the system prompt on: almost nothing could be reused.
    assert reused < 20 and new > prompt - 20, (prompt, reused, new)
    messages = conversation(state, "Reply in one word.")
    expected = api_reply(page, messages[:-1], temperature=0, max_tokens=8)
    assert expected["choices"][0]["message"]["content"] == messages[-1]["content"]
    # Emptied, the model's own default system prompt applies (the template's).
    page.fill("#system-prompt", "")
    state = send(page, "Who are you now?")
    messages = conversation(state, None)
    expected = api_reply(page, messages[:-1], temperature=0, max_tokens=8)
    assert expected["choices"][0]["message"]["content"] == messages[-1]["content"]
    assert expected["usage"]["prompt_tokens"] == prompt_figures(state["stats"])[0]


def test_clear_empties_the_conversation(page):
    assert page.locator("#chat-clear").is_enabled()
    page.click("#chat-clear")
    state = chat_state(page)
    assert state["messages"] == [] and state["notices"] == [] and state["stats"] == ""
    assert state["tokens"] == "256-token context" and state["used"] is None
    assert page.locator("#chat-regenerate").is_disabled() and page.locator("#chat-clear").is_disabled()
    assert page.evaluate("() => document.activeElement.id") == "chat-input"
    state = send(page, "Hi again.")
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"]
    messages = conversation(state, None)
    expected = api_reply(page, messages[:-1], temperature=0, max_tokens=8)
    assert expected["usage"]["prompt_tokens"] == prompt_figures(state["stats"])[0]


def test_stop_and_escape_end_a_reply_midway(page):
    page.click("#chat-clear")
    settings(page, greedy=True, max_new_tokens=120)  # room for two of them in the 256-token context
    for how in ("button", "escape"):
        before = runs(page)
        page.fill("#chat-input", f"Say a lot ({how}).")
        with slow_tokens(page):  # so the reply still runs when the test looks at it and stops it
            page.click("#chat-send")
            wait_reply_chars(page, 3)
            assert page.locator("#chat-stop").is_enabled() and page.locator("#chat-send").is_disabled()
            assert page.locator("#chat-regenerate").is_disabled() and page.locator("#chat-clear").is_disabled()
            if how == "button":
                page.click("#chat-stop")
            else:
                page.keyboard.press("Escape")
            wait_run(page, before)
        state = chat_state(page)
        reply = state["messages"][-1]
        assert state["state"] == "done" and state["finish"] in ("abort", "cancelled"), state
        assert reply["role"] == "assistant" and 3 <= len(reply["content"]) < 120, reply
        assert reply["notes"] == ["Stopped."] and "stopped" in state["stats"]
        assert page.locator("#chat-send").is_enabled() and page.locator("#chat-stop").is_disabled()
    shot(page, "chat-stopped")
    # The stopped replies stay in the conversation as they were shown: the next turn sees them.
    settings(page, max_new_tokens=8)
    state = send(page, "Go on.")
    messages = conversation(state, None)
    expected = api_reply(page, messages[:-1], temperature=0, max_tokens=8)
    assert expected["choices"][0]["message"]["content"] == messages[-1]["content"]


def test_turns_that_no_longer_fit_are_dropped_and_the_page_says_so(page):
    page.click("#chat-clear")
    settings(page, greedy=True, max_new_tokens=16)
    for turn in range(4):
        state = send(page, f"Please remember sentence number {turn}: it is long on purpose, to fill the context. " * 2)
        if state["notices"]:
            break
    assert state["state"] == "done" and turn > 0, state
    dropped = [m for m in state["messages"] if m["dropped"]]
    # whole turns go, oldest first; the new message and its reply stay
    assert dropped and dropped == state["messages"][:len(dropped)] and len(dropped) % 2 == 0, state["messages"]
    assert not state["messages"][-2]["dropped"] and not state["messages"][-1]["dropped"]
    assert state["notices"], state  # the engine's notice: how many of the oldest messages were left out
    assert state["used"] is not None and state["used"] <= CONTEXT, state
    shot(page, "chat-dropped")
    # The API, given the whole conversation, drops the same turns and writes the same reply.
    messages = conversation(state, None)
    expected = api_reply(page, messages[:-1], temperature=0, max_tokens=16)
    assert expected["pywebgpt"]["dropped_messages"] == len(dropped)
    assert expected["choices"][0]["message"]["content"] == messages[-1]["content"]
    assert expected["usage"]["prompt_tokens"] == prompt_figures(state["stats"])[0]


def test_markup_in_messages_is_text(page):
    page.click("#chat-clear")
    settings(page, greedy=True, max_new_tokens=4)
    state = send(page, PAYLOAD)
    assert state["messages"][0]["content"] == PAYLOAD
    assert page.locator("#chat-log img, #chat-log script").count() == 0
    assert page.evaluate("() => [window.__xss, document.title.includes('pwned')]") == [None, False]


def test_the_chat_is_labelled_and_keyboard_usable(page):
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('#chat-panel :is(input, textarea, button)')]
      .filter((el) => !(el.labels && el.labels.length) && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 80))""")
    assert not unlabeled, unlabeled
    assert page.get_by_label("System prompt").count() == 1 and page.get_by_label("Message", exact=True).count() == 1
    log = page.get_by_role("log", name="Chat")
    assert log.count() == 1 and log.get_attribute("aria-live") == "polite"
    assert log.get_attribute("aria-busy") == "false"  # true only while a reply is written
    page.locator("#system-prompt").focus()
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => document.activeElement.id"))
    assert order[:5] == ["chat-log", "chat-input", "chat-send", "chat-regenerate", "chat-clear"], order


def test_the_chat_fits_a_phone(page):
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_function("() => !document.querySelector('#settings').open", timeout=10_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        for sel in ("#chat-log", "#chat-input", "#chat-send", "#chat-stop", "#chat-clear"):
            box = page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (sel, box)
        assert page.locator("#chat-send").bounding_box()["height"] >= 40
        ys = [page.locator(s).bounding_box()["y"] for s in ("#model-panel", "#chat-panel", "#settings-panel")]
        assert ys == sorted(ys), ys
        shot(page, "chat-phone")
    finally:
        page.set_viewport_size(DESKTOP)


def test_the_weights_option_quantizes_a_picked_model_while_loading(page, chat_model):
    """'Weights on the GPU: 4-bit' makes the picked Llama folder's matrices Q4_0 while loading (the
    model info and its notice say so); for the GPT-2 character model the same option is refused
    with a banner naming the model families it works for, and the loaded model stays."""
    page.locator("#more-sources").evaluate("(d) => { d.open = true; }")
    page.select_option("#quantize-select", "q4_0")
    try:
        before = loads(page)
        page.locator("#folder-input").set_input_files(chat_model)
        wait_model(page, before)
        assert banner(page) is None, banner(page)
        info = page.evaluate("() => pywebgpt.info().model")
        assert info["weight_formats"] == ["Q4_0"] and info["chat"] is True, info
        assert any("quantized to Q4_0" in n for n in info["notices"]), info["notices"]
        before = loads(page)
        page.select_option("#model-select", "0")
        page.click("#load-button")
        wait_model(page, before)
        assert "Llama-family" in (banner(page) or ""), banner(page)
        assert page.evaluate("() => pywebgpt.info().model.weight_formats") == ["Q4_0"]
        page.click("#error-dismiss")
    finally:
        page.select_option("#quantize-select", "")
        page.locator("#more-sources").evaluate("(d) => { d.open = false; }")


def test_back_to_the_character_model_brings_back_the_plain_page_and_its_settings(page):
    page.click("#reset-settings")  # the chat model's own defaults
    assert page.locator("#temperature").input_value() == "0.6" and page.locator("#top-k").input_value() == "12"
    before = loads(page)
    page.select_option("#model-select", "0")
    page.click("#load-button")
    wait_model(page, before)
    assert page.evaluate("() => document.body.dataset.mode") == "prompt"
    assert page.locator("#chat-panel").is_hidden() and page.locator("#prompt-panel").is_visible()
    values = [page.locator(f"#{n}").input_value() for n in ("temperature", "top-k", "top-p", "repetition-penalty")]
    assert values == ["0.8", "40", "1", "1"]
    assert page.locator("#prompt").input_value() == "ROMEO:"
