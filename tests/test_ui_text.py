"""The page's words, numbers and field parsing (app/ui_text.py, app/ui_chat_text.py) in CPython: sizes,
counts and durations on None, 0, negative, huge and NaN values; stop-string escapes; error
banners built from the engine's structured errors (code, chars), never from message text; the
models list, the load progress line, the model details; the Settings fields (bounds, NaN, Unicode
digits, greedy); the model's generation_config defaults and how they follow a model switch; a
run's figures and the token popup's rows; the chat's request (settings and system prompt into
chat.completions options), its token count against the context, a reply's
figures (reused vs new prompt tokens) and its error banner."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from app import ui_chat_text as c
from app import ui_text as t
from app.errors import GenerationBusy, LoadError, UnknownCharactersError

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("value, text", [
    (None, "?"), (NAN, "?"), (INF, "?"), (-INF, "?"), ("abc", "?"), (True, "?"), ([], "?"),
    (0, "0 B"), (999, "999 B"), (999.6, "1000 B"), (1000, "1 kB"), (21_550_536, "21.6 MB"),
    (549_604_455, "549.6 MB"), (1_521_484_284, "1.52 GB"), (2.5e12, "2.50 TB"), (10 ** 18, "1000000.00 TB"),
    (-1, "-1 B"), (-2e9, "-2.00 GB"), ("1234", "1 kB"),
])
def test_size_text(value, text):
    assert t.size_text(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "?"), (NAN, "?"), (INF, "?"), (0, "0"), (999, "999"), (1500, "1.5k"), (10_788_096, "10.8M"),
    (124_439_808, "124.4M"), (1_240_000_000, "1.24B"), (-1500, "-1.5k"), (1e15, "1000000.00B"),
])
def test_count_text(value, text):
    assert t.count_text(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "?"), (NAN, "?"), (-INF, "?"), (-5, "under a second"), (0, "under a second"), (0.999, "under a second"),
    (1, "1 s"), (89.4, "89 s"), (90, "2 min"), (3599, "60 min"), (3600, "1.0 h"), (1e9, "277777.8 h"),
])
def test_duration_text(value, text):
    assert t.duration_text(value) == text


@pytest.mark.parametrize("info, context, limit", [
    (None, 1024, 1023), ({}, 1024, 1023), ({"context": 256, "n_positions": 1024}, 256, 255),
    ({"n_positions": 128}, 128, 127), ({"context": 1}, 1, 1), ({"context": 0, "n_positions": 64}, 64, 63),
])
def test_context_and_the_max_new_tokens_bound(info, context, limit):
    assert t.context_of(info) == context and t.max_new_tokens_limit(info) == limit


# ------------------------------------------------------------------------------ text


def test_visible_shows_whitespace_and_keeps_everything_else():
    assert t.visible("") == "(part of a character)"
    assert t.visible(" a\tb\nc\r") == "\u2423a\u21e5b\u21b5c\u240d"
    assert t.visible("é😀<b>") == "é😀<b>"


@pytest.mark.parametrize("line, text", [
    ("", ""), ("END", "END"), (r"a\nb", "a\nb"), (r"\t", "\t"), (r"\\n", "\\n"), ("a\\", "a\\"),
    (r"\x", r"\x"), (r"\\\n", "\\\n"), ("ü\\n😀", "ü\n😀"),
])
def test_unescape_stop(line, text):
    assert t.unescape_stop(line) == text


def test_stop_strings_one_per_line_without_empty_ones():
    assert t.stop_strings("###\n\n\\n\\n\nEND\n") == ["###", "\n\n", "END"]
    assert t.stop_strings("") == []


@pytest.mark.parametrize("message, text", [
    ("", ""), ("   ", ""), ("x", "x"), ("the text has 2 characters", "The text has 2 characters"),
    ("config.json is missing", "config.json is missing"), ("  model.safetensors: bad  ", "model.safetensors: bad"),
    ("élan vital", "Élan vital"), ("HTTP 404 for x", "HTTP 404 for x"), ("3 files", "3 files"),
])
def test_sentence_capitalizes_a_leading_word_only(message, text):
    assert t.sentence(message) == text


def test_python_error_parts_keeps_the_engines_code_and_fields():
    err = t.python_error_parts(UnknownCharactersError(["é", "ü"], [(7, "é"), (13, "ü")]))
    assert err["name"] == "UnknownCharactersError" and err["code"] == "input"
    assert err["chars"] == ["é", "ü"] and err["positions"] == [[7, "é"], [13, "ü"]]
    assert t.python_error_parts(LoadError("config.json: HTTP 404", code="http"))["code"] == "http"
    assert t.python_error_parts(GenerationBusy("running"))["code"] == "busy"
    assert t.python_error_parts(ValueError()) == {"name": "ValueError", "message": "ValueError", "code": None}
    assert t.python_error_parts(KeyError("k"))["message"] == "'k'"


def test_drop_chars():
    assert t.drop_chars("ROMEO: é¿ and ü", ["é", "¿", "ü"]) == "ROMEO:  and "
    assert t.drop_chars("👍🏽x", ["🏽"]) == "👍x"
    assert t.drop_chars("", ["a"]) == "" and t.drop_chars("abc", []) == "abc"


# ------------------------------------------------------------------------------ error banners


def test_run_error_reads_the_structured_fields_not_the_message():
    err = UnknownCharactersError(["é", "¿"], [(7, "é"), (8, "¿")]).to_dict()
    banner = t.run_error(err)
    assert banner["title"] == "The prompt has characters this model does not know"
    assert banner["message"] == "This model's vocabulary does not contain 'é' '¿'."
    assert "Remove 'é' '¿' from the prompt" in banner["hint"] and banner["chars"] == ["é", "¿"]
    # The same words without the field are not an unknown-characters error.
    assert t.run_error({"message": err["message"], "code": "input"})["title"] == "Generation failed"
    busy = t.run_error({"name": "GenerationBusy", "code": "busy", "message": "a generation is already running"})
    assert busy["title"] == "A generation is already running" and busy["message"].startswith("A generation")
    assert busy["chars"] is None
    failed = t.run_error({"code": None, "message": None})
    assert failed["title"] == "Generation failed" and failed["message"] == "" and "kept" in failed["hint"]


def test_load_error_hint_by_code_and_the_model_still_loaded():
    banner = t.load_error({"code": "http", "message": "config.json: HTTP 404"}, "gpt2", "Shakespeare", False)
    assert banner == {"title": "Could not load gpt2", "message": "config.json: HTTP 404",
                      "hint": t.LOAD_HINTS["http"] + " Shakespeare is still loaded."}
    assert t.load_error({"code": "weird", "message": "x"}, "m", None, False)["hint"] == t.LOAD_HINT_OTHER
    assert t.load_error({"code": None, "message": "x"}, "m", None, False)["hint"] == t.LOAD_HINT_OTHER
    assert t.load_error({"code": "network", "message": "failed"}, "m", None, True)["hint"] == t.FOREIGN_HINT
    assert t.load_error({"code": "network", "message": "failed"}, "m", None, False)["hint"] == t.LOAD_HINTS["network"]
    csp = {"code": "engine", "message": "refused: violates the Content Security Policy"}
    assert t.load_error(csp, "m", None, False)["hint"] == t.FOREIGN_HINT
    payload = '<img src=x onerror="alert(1)">'
    title = t.load_error({"code": "format", "message": "x"}, payload, None, False)["title"]
    assert title == "Could not load " + payload


@pytest.mark.parametrize("ref, foreign", [
    ("https://example.com/models/gpt/", True), ("https://huggingface.co/openai-community/gpt2", False),
    ("https://cdn-lfs.huggingface.co/x", False), ("https://cas-bridge.xethub.hf.co/x", False),
    ("https://notahuggingface.co/x", True), ("https://hf.co.evil.net/x", True),
    ("https://huggingface.co@evil.com/", True),
    ("http://localhost:9000/m/", False), ("http://127.0.0.1:1/m/", False), ("http://site.test:8000/m/", False),
    ("http://site.test:8001/m/", True), ("weights/x/", False), ("openai-community/gpt2", False), (None, False),
    ("", False), ("ftp://example.com/", False),
])
def test_is_foreign_follows_the_pages_connect_src(ref, foreign):
    assert t.is_foreign(ref, "site.test:8000") is foreign


# ------------------------------------------------------------------------------ the models list


def test_models_from_json_keeps_entries_with_a_source_and_a_name():
    good = {"source": "weights/a/", "name": "A"}
    text = json.dumps([good, {"source": "", "name": "B"}, {"name": "C"}, "x", None, 5, {"source": "s", "name": "D"}])
    assert t.models_from_json(text) == [good, {"source": "s", "name": "D"}]
    assert t.models_from_json(json.dumps({"models": [good]})) == [good]
    assert t.models_from_json("[]") == [] and t.models_from_json("{}") == []
    for bad in ("null", '{"models": 5}', "7", '"text"'):
        with pytest.raises(ValueError, match="expected a list of models"):
            t.models_from_json(bad)
    with pytest.raises(ValueError):
        t.models_from_json("[{")


def test_the_bundled_models_json_is_readable_and_describes_each_entry():
    from conftest import ROOT

    models = t.models_from_json((ROOT / "weights" / "models.json").read_text(encoding="utf-8"))
    assert models[0]["source"] == "weights/shakespeare-char/"
    for entry in models:
        text = t.describe_entry(entry)
        assert entry["description"] in text and ("Download: " in text) == bool(entry.get("size_bytes"))


def test_describe_entry():
    entry = {"description": "Tiny.", "size_bytes": 21_550_536, "dtype": "F16", "tokenizer": "char"}
    assert t.describe_entry(entry) == "Tiny. Download: 21.6 MB (F16, char tokenizer)."
    assert t.describe_entry({"size_bytes": 1000}) == "Download: 1 kB (?, ? tokenizer)."
    assert t.describe_entry({"description": "d", "size_bytes": 0}) == "d" and t.describe_entry({}) == ""


def test_entry_for_source_matches_hub_ids_and_site_folders():
    page = "http://127.0.0.1:8000/repo/index.html"
    models = [{"source": "weights/shakespeare-char/"}, {"source": "openai-community/gpt2"}, {"source": "::bad::"}]

    def resolve(ref):
        if ref.startswith("::"):
            raise ValueError("not a URL")
        return urllib.parse.urljoin(page, ref)

    assert t.entry_for_source(models, "http://127.0.0.1:8000/repo/weights/shakespeare-char/", resolve) is models[0]
    assert t.entry_for_source(models, "http://127.0.0.1:8000/repo/weights/shakespeare-char", resolve) is models[0]
    hub = "https://huggingface.co/openai-community/gpt2/resolve/main/"
    assert t.entry_for_source(models, hub, resolve) is models[1]
    assert t.entry_for_source(models, "https://huggingface.co/other/gpt2/resolve/main/", resolve) is None
    assert t.entry_for_source([], hub, resolve) is None


# ------------------------------------------------------------------------------ loading


def test_progress_view_download():
    p = {"phase": "download", "file": "model.safetensors", "loaded": 5e6, "total": 20e6, "overall_loaded": 10e6,
         "overall_total": 20e6, "bytes_per_s": 2.5e6, "eta_s": 125, "file_count": 3, "file_index": 1}
    text, value, aria = t.progress_view(p)
    assert text == "model.safetensors: 5.0 MB of 20.0 MB (file 2 of 3) · 2.5 MB/s · about 2 min left"
    assert value == 0.5 and aria == f"50%: {text}"
    text, value, _ = t.progress_view({**p, "overall_loaded": 30e6, "overall_eta_s": 0.5, "from_cache": True,
                                      "file_count": None, "file_index": None, "file": None})
    assert value == 1.0 and text.startswith("weights: ") and text.endswith("less than a second left · from cache")
    # overall_eta_s present but unknown: no time left shown (eta_s is the file's, not the whole load's)
    assert "left" not in t.progress_view({**p, "overall_eta_s": None})[0]


@pytest.mark.parametrize("p, text, value", [
    ({"phase": "config"}, "Reading config.json…", None),
    ({"phase": "cache", "loaded": 1e6, "total": 4e6}, "Reading from the browser cache: 1.0 MB of 4.0 MB…", 0.25),
    ({"phase": "cache", "loaded": None, "total": 4e6}, "Reading from the browser cache: ? of 4.0 MB…", 0),
    ({"phase": "upload", "from_cache": True}, "Uploading the weights to the GPU (from cache)…", 1),
    ({"phase": "done"}, "Done", 1),
    ({"phase": "download", "overall_total": 0}, "download…", None),
    ({"phase": "weird"}, "weird…", None), ({}, "Loading…", None), ({"phase": None}, "Loading…", None),
])
def test_progress_view_phases(p, text, value):
    assert t.progress_view(p) == (text, value, text)


def test_model_rows_and_notices():
    info = {"parameters": 10_788_096, "n_layer": 6, "n_head": 6, "n_embd": 384, "context": 256, "vocab_size": 65,
            "tokenizer": "char", "dtype": "F16", "file_bytes": 21_550_536, "gpu_bytes": 2.2e7, "load_s": 1.26,
            "load": {"from_cache": True}, "source": "http://x/weights/shakespeare-char/",
            "notices": ["loaded from the browser cache (21.6 MB)", "context lowered to 256"]}
    rows = dict(t.model_rows(info, {"vendor": "google", "architecture": "swiftshader"}, "label"))
    assert rows == {"Parameters": "10.8M", "Shape": "6 layers × 6 heads × 384 wide", "Context": "256 tokens",
                    "Vocabulary": "65 tokens (char)", "Weights": "F16, 21.6 MB", "GPU memory": "22.0 MB",
                    "Adapter": "google / swiftshader", "Loaded in": "1.3 s from cache",
                    "Source": "http://x/weights/shakespeare-char/"}
    assert t.model_notices(info) == ["context lowered to 256"]
    bare = dict(t.model_rows({"vocab_size": 50257, "load_s": NAN}, None, "folder x"))
    assert bare["Vocabulary"] == "50,257 tokens (?)" and bare["Loaded in"] == "?" and bare["Source"] == "folder x"
    assert bare["Adapter"] == "WebGPU adapter" and bare["Parameters"] == "?" and bare["GPU memory"] == "?"
    assert dict(t.model_rows({"vocab_size": True}, {}, ""))["Vocabulary"] == "?"
    assert t.model_notices({"notices": None}) == [] and t.model_notices({}) == []
    assert t.loaded_text("GPT-2", True) == "GPT-2 is loaded (from the browser cache)."
    assert t.loaded_text("GPT-2", None) == "GPT-2 is loaded."


# ------------------------------------------------------------------------------ settings

DEFAULT_RAW = {k: v for k, v in t.DEFAULTS.items() if k != "greedy"}


def test_parse_settings_defaults():
    opts, problems = t.parse_settings(DEFAULT_RAW, False, 256, 65)
    assert problems == []
    assert opts == {"max_new_tokens": 200, "temperature": 0.8, "top_k": 40, "top_p": 1.0, "repetition_penalty": 1.0,
                    "stop": []}
    assert isinstance(opts["top_p"], float) and isinstance(opts["top_k"], int)


def test_parse_settings_greedy_leaves_out_the_sampling_fields_and_their_problems():
    raw = {**DEFAULT_RAW, "temperature": "nonsense", "top-k": "-1", "seed": "x", "stop-strings": "\\n\\n"}
    opts, problems = t.parse_settings(raw, True, 1024, 50257)
    assert problems == [] and opts == {"max_new_tokens": 200, "temperature": 0, "repetition_penalty": 1.0,
                                       "stop": ["\n\n"]}


@pytest.mark.parametrize("field, text, problem", [
    ("max-new-tokens", "256", "Max new tokens: from 1 to 255"),
    ("max-new-tokens", "0", "Max new tokens: from 1 to 255"),
    ("max-new-tokens", "1e3", "Max new tokens: a number from 1 to 255"),
    ("max-new-tokens", "12.5", "Max new tokens: a number from 1 to 255"),
    ("max-new-tokens", "", "Max new tokens: a number from 1 to 255"),
    ("temperature", "-1", "Temperature: from 0 to 2"), ("temperature", "nan", "Temperature: a number from 0 to 2"),
    ("temperature", "inf", "Temperature: a number from 0 to 2"), ("temperature", "2.0001", "Temperature: from 0 to 2"),
    ("top-k", "66", "Top-k: from 0 to 65"), ("top-k", "1.5", "Top-k: a number from 0 to 65"),
    ("top-p", "0", "Top-p: from 0.01 to 1"), ("top-p", "1e400", "Top-p: a number from 0.01 to 1"),
    ("repetition-penalty", "0.49", "Repetition penalty: from 0.5 to 2"),
    ("seed", str(2 ** 53), f"Seed: from 0 to {2 ** 53 - 1}"), ("seed", "-1", f"Seed: from 0 to {2 ** 53 - 1}"),
])
def test_parse_settings_names_the_wrong_field(field, text, problem):
    opts, problems = t.parse_settings({**DEFAULT_RAW, field: text}, False, 256, 65)
    assert problems == [(field, problem)]
    assert field.replace("-", "_") not in opts
    assert t.settings_problem_text(problems) == problem + "."


def test_parse_settings_accepts_what_python_reads_as_numbers():
    raw = {**DEFAULT_RAW, "top-k": "\u0665", "seed": f" {2 ** 53 - 1} ", "temperature": "0", "top-p": " .5"}
    opts, problems = t.parse_settings(raw, False, 1024, 50257)
    assert problems == [] and opts["top_k"] == 5 and opts["seed"] == 2 ** 53 - 1 and opts["top_p"] == 0.5
    assert opts["temperature"] == 0.0
    assert t.settings_problem_text([("a", "A: x"), ("b", "B: y")]) == "A: x; B: y."


def test_field_value_and_model_defaults():
    assert [t.field_value(v) for v in (0.7, 1.0, 20, 1e-05, -0.0)] == ["0.7", "1", "20", "1e-05", "0"]
    qwen = {"temperature": 0.7, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05}
    assert t.model_defaults(qwen, 151936) == {"temperature": "0.7", "top-k": "20", "top-p": "0.8",
                                              "repetition-penalty": "1.05"}
    # Values the fields would refuse keep the page's own default.
    odd = {"temperature": 5, "top_k": 100, "top_p": NAN, "repetition_penalty": True, "do_sample": False}
    assert t.model_defaults(odd, 65) == {}
    assert t.model_defaults({"top_k": 20.5, "temperature": INF}, 65) == {}
    assert t.model_defaults({"top_k": 64}, 65) == {"top-k": "64"}
    assert t.model_defaults(None) == {} and t.model_defaults({}) == {}


def test_settings_follow_the_models_defaults_unless_the_user_changed_them():
    qwen = {"temperature": "0.7", "top-k": "20", "top-p": "0.8", "repetition-penalty": "1.05"}
    page = {k: t.DEFAULTS[k] for k in ("temperature", "top-k", "top-p", "repetition-penalty")}
    # Page defaults -> a model with defaults: all four take them.
    assert t.settings_for_model(page, {}, qwen) == qwen
    # The user set top-k to 5 meanwhile: kept; back to a model without defaults: the rest revert.
    assert t.settings_for_model({**qwen, "top-k": "5"}, qwen, {}) == {"temperature": "0.8", "top-p": "1",
                                                                       "repetition-penalty": "1"}
    assert t.settings_for_model(page, {}, {}) == {}
    assert t.settings_for_model({**page, "temperature": " 0.8 "}, {}, {"temperature": "0.6"}) == {"temperature": "0.6"}


# ------------------------------------------------------------------------------ a run's output


def test_run_figures():
    r = {"prompt_ids": [0] * 7, "tokens": list(range(42)), "finish_reason": "length",
         "timings": {"ttft_ms": 120.4, "decode_ms_per_token": 9.5, "prefill_tokens_per_s": 60.0, "total_ms": 520.0}}
    assert t.result_stats(r) == [("Prompt", "7 tokens"), ("New", "42 tokens"), ("First token", "120 ms"),
                                 ("Speed", "105.3 tokens/s"), ("Prompt speed", "60 tokens/s"), ("Total", "0.52 s"),
                                 ("Finished", "reached the token limit")]
    slow = {"timings": {"prefill_tokens_per_s": 5.25, "decode_ms_per_token": 0}, "finish_reason": "weird"}
    assert t.result_stats(slow) == [("Prompt", "0 tokens"), ("New", "0 tokens"), ("Prompt speed", "5.2 tokens/s"),
                                    ("Finished", "weird")]
    assert t.result_stats({"timings": None, "prompt_ids": None})[-1] == ("Finished", "None")
    assert [t.finish_text(r) for r in ("eos", "stop", "cancelled", None)] == ["end of text", "stop string", "stopped",
                                                                             "None"]


def test_generating_text():
    assert t.generating_text(1, 0.42, 0.0) == "Generating… 1 tokens in 0.4 s"
    assert t.generating_text(11, 2.5, 2.0) == "Generating… 11 tokens in 2.5 s · 5.0 tokens/s"
    assert t.generating_text(11, 2.5, 0.0) == "Generating… 11 tokens in 2.5 s"
    assert t.generating_text(11, 2.5, None) == "Generating… 11 tokens in 2.5 s"


def test_chosen_probability():
    top = [{"id": 3, "prob": 0.6}, {"id": 9, "prob": 0.05}, {"id": 4}]
    assert t.chosen_probability(top, 9) == 0.05 and t.chosen_probability(top, 4) is None
    assert t.chosen_probability(top, 7) is None and t.chosen_probability([], 3) is None


def test_popup_rows_and_notes():
    assert t.popup_title(0, " ") == "Token 1: “\u2423”"
    top = [{"id": 1, "prob": 0.5, "text": "a b"}, {"id": 2, "prob": None, "text": ""}, {"id": 3, "prob": NAN},
           {"id": 4, "prob": 1.5, "text": "<i>"}, {"id": 5, "prob": -0.1, "text": "\n"}]
    rows = t.candidate_rows(top, 4)
    assert rows == [
        {"text": "a\u2423b", "chosen": False, "prob": "50.0%", "width": "50.0%"},
        {"text": "(part of a character)", "chosen": False, "prob": "n/a", "width": "0.0%"},
        {"text": "(part of a character)", "chosen": False, "prob": "n/a", "width": "0.0%"},
        {"text": "<i>", "chosen": True, "prob": "150.0%", "width": "100.0%"},
        {"text": "\u21b5", "chosen": False, "prob": "-10.0%", "width": "0.0%"},
    ]
    assert t.popup_notes(top, 4, 1) == []
    unknown = [{"id": 1, "prob": None}, {"id": 2, "prob": None}]
    notes = t.popup_notes(unknown, 7, 3)
    assert len(notes) == 3 and "temperature 1" in notes[0] and "id 7" in notes[1] and "3 tokens" in notes[2]
    assert t.popup_notes([], None, 1) == [] and t.popup_notes([], 5, 1) == [
        "The sampled token (id 5) was not among these."]


# ------------------------------------------------------------------------------ the chat


def test_chat_request_from_the_settings_and_the_conversation():
    opts = {"max_new_tokens": 64, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.1,
            "seed": 3, "stop": ["\n\n"]}
    turns = [{"role": "user", "content": "Hi <b>"}, {"role": "assistant", "content": "Hello", "extra": 1}]
    request = c.chat_request(opts, "Be brief.", turns)
    assert request == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>"},
                                    {"role": "assistant", "content": "Hello"}],
                       "stream": True, "max_tokens": 64, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
                       "repetition_penalty": 1.1, "seed": 3, "stop": ["\n\n"]}
    # A blank system prompt is left out (the template's own default applies); its text is sent as typed.
    for blank in ("", "  \n\t"):
        assert c.chat_request({"max_new_tokens": 1, "stop": []}, blank, turns)["messages"][0]["role"] == "user"
    assert c.chat_request({}, " x ", [])["messages"] == [{"role": "system", "content": " x "}]
    greedy = c.chat_request({"max_new_tokens": 5, "temperature": 0, "stop": []}, "", [])
    assert greedy == {"messages": [], "stream": True, "max_tokens": 5, "temperature": 0}


@pytest.mark.parametrize("used, context, text", [
    (1234, 2048, "1,234 / 2,048 tokens"), (0, 256, "0 / 256 tokens"), (None, 8192, "8,192-token context"),
    (NAN, 256, "256-token context"), (5, None, "5 tokens"), (None, None, ""),
    (10 ** 9, 32768, "1,000,000,000 / 32,768 tokens"),
])
def test_token_count_text(used, context, text):
    assert c.token_count_text(used, context) == text


def test_tokens_used_is_the_prompt_plus_the_reply():
    assert c.tokens_used({"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}) == 48
    assert c.tokens_used({"prompt_tokens": 40}) == 40
    assert c.tokens_used({"completion_tokens": 8}) is None and c.tokens_used(None) is None
    assert c.tokens_used({"prompt_tokens": NAN, "completion_tokens": 1}) is None


def test_chat_stats_say_how_much_of_the_prompt_was_reused():
    usage = {"prompt_tokens": 1234, "completion_tokens": 16, "total_tokens": 1250}
    extra = {"reused_tokens": 1200, "prefilled_tokens": 34, "timings": {"decode_ms_per_token": 25.0, "ttft_ms": 80.2}}
    assert c.chat_stats(usage, extra, "stop") == [("Prompt", "1,234 tokens (1,200 reused, 34 new)"),
                                                  ("Reply", "16 tokens"), ("Speed", "40.0 tokens/s"),
                                                  ("First token", "80 ms"), ("Finished", "end of the reply")]
    assert c.chat_stats({"prompt_tokens": 9}, {"reused_tokens": 0}, "length") == [
        ("Prompt", "9 tokens"), ("Finished", "reached the token limit")]
    assert c.chat_stats(None, None, "abort") == [("Finished", "stopped")]
    assert c.chat_stats({}, {"timings": {"decode_ms_per_token": NAN}}, None) == [("Finished", "None")]
    assert [c.chat_finish_text(r) for r in ("cancelled", "eos", "weird")] == ["stopped", "end of the reply", "weird"]


def test_chat_error():
    busy = c.chat_error({"code": "busy", "message": "a generation is already running on this model"})
    assert busy["title"] == "A reply is already being written" and busy["message"].startswith("A generation")
    failed = c.chat_error({"code": "input", "message": "messages must not be empty"})
    assert failed["title"] == "The reply failed" and failed["message"] == "Messages must not be empty"
    assert "back in the box" in failed["hint"]
    assert c.chat_error({})["message"] == ""
