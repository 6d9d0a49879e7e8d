"""The bundled model: weights/shakespeare-char is listed first in weights/models.json,
its model card states the files as they are, transformers loads it, and in the browser it is the
page's default model and generates, greedily from `ROMEO:`, exactly what tools/reference.py does
on the same weights; also through the Python API's example page (examples/python-api/)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from app.config import GPT2Config, match_tensors, param_count
from app.safetensors import read_header
from conftest import BOOT_TIMEOUT_MS, ROOT, SHAKESPEARE, ConsoleGuard
from reference import greedy, load_hf_folder

FOLDER = ROOT / "weights" / "shakespeare-char"
MODEL_FILES = ("config.json", "model.safetensors", "char_vocab.json")
PROMPT = "ROMEO:"
N_NEW = 48


def card() -> str:
    return (FOLDER / "README.md").read_text(encoding="utf-8")


def vocab() -> dict:
    return json.loads((FOLDER / "char_vocab.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference_text() -> str:
    """Greedy continuation of ROMEO: by the numpy oracle (float32 on the stored float16 weights)."""
    cfg, weights = load_hf_folder(FOLDER)
    stoi = vocab()
    itos = {i: c for c, i in stoi.items()}
    ids, _ = greedy(weights, cfg, [stoi[c] for c in PROMPT], N_NEW)
    return "".join(itos[i] for i in ids)


# ------------------------------------------------------------------------------------ files


def test_models_list_puts_the_bundled_model_first():
    models = json.loads((ROOT / "weights" / "models.json").read_text(encoding="utf-8"))
    first = models[0]
    assert first["source"] == "weights/shakespeare-char/" and first["tokenizer"] == "char"
    assert first["size_bytes"] == sum((FOLDER / f).stat().st_size for f in MODEL_FILES)
    dtypes = {t.dtype for t in read_header(FOLDER / "model.safetensors").tensors.values()}
    assert dtypes == {first["dtype"]} == {"F16"}
    for entry in models:
        assert {"name", "source", "size_bytes", "tokenizer"} <= set(entry), entry
    sources = [m["source"] for m in models]
    for hub_id in ("openai-community/gpt2", "distilbert/distilgpt2", "openai-community/gpt2-medium"):
        assert hub_id in sources


def test_model_card_states_the_files_as_they_are():
    text = card()
    for name in MODEL_FILES:
        m = re.search(rf"\| `{re.escape(name)}` \| ([\d,]+) \|", text)
        assert m, f"{name} is not in the card's file table"
        assert int(m.group(1).replace(",", "")) == (FOLDER / name).stat().st_size, name
    total = sum(p.stat().st_size for p in FOLDER.iterdir())
    assert total <= 24_000_000, f"{total:,} bytes: the bundled model must stay within 24 MB"

    cfg = GPT2Config.from_json((FOLDER / "config.json").read_text(), "config.json")
    match_tensors(cfg, read_header(FOLDER / "model.safetensors").tensors)  # the loader's checks
    params = int(re.search(r"\| parameters \| ([\d,]+) \|", text).group(1).replace(",", ""))
    assert params == param_count(cfg)
    layers = re.search(r"\| n_layer / n_head / n_embd \| (\d+) / (\d+) / (\d+) \|", text).groups()
    assert tuple(map(int, layers)) == (cfg.n_layer, cfg.n_head, cfg.n_embd) == (6, 6, 384)
    assert f"| n_positions (context) | {cfg.n_positions} |" in text
    assert f"| vocab_size | {cfg.vocab_size} |" in text and len(vocab()) == cfg.vocab_size == 65
    assert cfg.eos_token_id is None and cfg.bos_token_id == vocab()["\n"] == 0 and cfg.gelu == "tanh"
    row = re.search(r"\| float16 \(`model.safetensors`, as loaded\) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text)
    assert row and float(row.group(2)) <= 1.50 and float(row.group(3)) <= 1.50, \
        "the bundled model must reach a val loss <= 1.50"
    # the data the card names
    digest = hashlib.sha256(SHAKESPEARE.read_bytes()).hexdigest()
    assert digest in text and f"{len(SHAKESPEARE.read_text(encoding='utf-8')):,} characters" in text


def test_transformers_loads_it_and_agrees_with_the_reference(reference_text):
    import torch
    from transformers import GPT2LMHeadModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small CPU work on a busy machine: one thread is the fastest
    try:
        check_with_transformers(torch, GPT2LMHeadModel, reference_text)
    finally:
        torch.set_num_threads(threads)


def check_with_transformers(torch, GPT2LMHeadModel, reference_text):
    model = GPT2LMHeadModel.from_pretrained(FOLDER, dtype=torch.float32).eval()
    assert sum(p.numel() for p in model.parameters()) == 10_770_816
    stoi = vocab()
    ids = torch.tensor([[stoi[c] for c in PROMPT]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=0)[0, ids.shape[1]:]
    itos = {i: c for c, i in stoi.items()}
    assert "".join(itos[int(i)] for i in out) == reference_text[:16]
    # trained, not random: a sample of the validation split is predicted well
    text = SHAKESPEARE.read_text(encoding="utf-8")
    val = [stoi[c] for c in text[int(0.9 * len(text)):]]
    starts = [i * (len(val) - 257) // 7 for i in range(8)]
    x = torch.tensor([val[s:s + 256] for s in starts])
    y = torch.tensor([val[s + 1:s + 257] for s in starts])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(x).logits.reshape(-1, 65), y.reshape(-1)).item()
    assert loss < 1.7, loss  # 8 windows only (a uniform guess: ln 65 = 4.17)


# ------------------------------------------------------------------------------------ browser


@pytest.mark.browser
def test_the_page_loads_it_by_default_and_greedy_equals_the_reference(booted_page, reference_text):
    page = booted_page
    page.wait_for_function("() => { const i = pywebgpt.info(); return i.model && i.model.source; }",
                           timeout=BOOT_TIMEOUT_MS)
    info = page.evaluate("() => pywebgpt.info().model")
    assert info["source"].endswith("/weights/shakespeare-char/"), info["source"]
    assert info["parameters"] == 10_770_816 and info["dtype"] == "F16" and info["context"] == 256
    first = json.loads((ROOT / "weights" / "models.json").read_text(encoding="utf-8"))[0]
    assert page.evaluate("() => document.querySelector('#model-select option').textContent") == first["name"]
    r = page.evaluate("(p) => pywebgpt.generate(p, {max_new_tokens: %d, temperature: 0})" % N_NEW, PROMPT)
    assert r["finish_reason"] == "length" and len(r["tokens"]) == N_NEW
    assert r["text"] == reference_text


@pytest.mark.browser
def test_the_python_api_example_page(context, site_url, reference_text):
    """examples/python-api/: PyScript + `from pywebgpt import load_model` on the bundled model."""
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    guard = ConsoleGuard(page)
    page.goto(site_url + "examples/python-api/")
    page.wait_for_function("() => ['ready', 'error'].includes(document.getElementById('status').dataset.state)")
    assert page.get_attribute("#status", "data-state") == "ready", page.text_content("#status")
    assert "10,770,816 parameters" in page.text_content("#status")
    page.fill("#temperature", "0")
    page.fill("#max-new-tokens", "24")
    page.click("#generate")
    page.wait_for_function("() => ['done', 'error'].includes(document.getElementById('status').dataset.state)")
    assert page.get_attribute("#status", "data-state") == "done", page.text_content("#status")
    assert page.text_content("#output-prompt") == PROMPT
    assert page.text_content("#output-text") == reference_text[:24]
    assert page.text_content("#stats").startswith("24 tokens, length")
    # sampling with the page's defaults (temperature 0.8, top-k 40) writes text too, and Stop works
    page.fill("#temperature", "0.8")
    page.fill("#max-new-tokens", "200")
    page.click("#generate")
    # the click handler runs asynchronously: wait until it has cleared the previous output
    page.wait_for_function("() => document.getElementById('status').dataset.state === 'generating'")
    page.wait_for_function("() => document.getElementById('output-text').textContent.length >= 3")
    page.click("#stop")
    page.wait_for_function("() => ['done', 'error'].includes(document.getElementById('status').dataset.state)")
    assert "cancelled" in page.text_content("#stats")
    assert 3 <= len(page.text_content("#output-text")) < 200
    assert not guard.unexpected(), guard.unexpected()
    page.close()
