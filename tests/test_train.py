"""CPU smoke test of tools/train_char.py: a tiny config for a few dozen steps on a small
text; the loss goes down, the run is reproducible, and the folder it writes is what the page
loads: transformers.GPT2LMHeadModel.from_pretrained reads it, app/config.py + app/safetensors.py
+ app/tokenizer.py accept it (the loader's own checks, in CPython), and tools/reference.py agrees
with transformers on it."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys

import pytest

from app.config import GPT2Config, match_tensors
from app.safetensors import read_header
from app.tokenizer import CharTokenizer, load_tokenizer_from_texts
from conftest import ROOT
from reference import greedy, load_hf_folder

pytestmark = pytest.mark.slow

SMALL = ["--device", "cpu", "--compile", "off", "--iters", "60", "--n-layer", "2", "--n-head", "2",
         "--n-embd", "32", "--block-size", "32", "--batch-size", "8", "--dropout", "0.0", "--lr", "3e-3",
         "--min-lr", "3e-4", "--warmup-iters", "5", "--eval-interval", "20", "--eval-iters", "4",
         "--final-eval-iters", "4", "--sample-chars", "40", "--seed", "7", "--dtype-out", "float16",
         "--keep", "last"]


def small_text(n_chars: int = 24_000) -> str:
    """A few kilobytes of play-like text from a tiny grammar: learnable in a few dozen steps."""
    rng = random.Random(0)
    names = ["ROMEO", "JULIET", "NURSE", "FRIAR"]
    words = "the and of my thy love night day sweet fair heart death light is to be not".split()
    lines = []
    while sum(len(s) for s in lines) < n_chars:
        lines.append(f"{rng.choice(names)}:\n")
        for _ in range(rng.randint(1, 3)):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 8)))
            lines.append(line.capitalize() + rng.choice([".", ",", "!", "?"]) + "\n")
        lines.append("\n")
    return "".join(lines)


def train(tmp_path, name: str, text_file) -> tuple[dict, str]:
    out = tmp_path / name
    # one thread: a model this small spends most of its time synchronizing threads otherwise (10x
    # slower on a busy 2-CPU machine), and the results are the same
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools/train_char.py"), "--data", str(text_file),
                           "--out", str(out), *SMALL], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, proc.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    text = small_text()
    data = tmp / "text.txt"
    data.write_text(text, encoding="utf-8")
    summary, log = train(tmp, "model", data)
    return {"tmp": tmp, "data": data, "text": text, "out": tmp / "model", "summary": summary, "log": log}


def test_loss_goes_down_and_is_printed(run):
    evals = [(int(i), float(tr), float(va)) for i, tr, va in
             re.findall(r"iter\s+(\d+): train loss ([\d.]+), val loss ([\d.]+)", run["log"])]
    assert [i for i, _, _ in evals] == [0, 20, 40, 60], run["log"]
    vocab = len(set(run["text"]))
    first_train, first_val = evals[0][1], evals[0][2]
    assert abs(first_val - math.log(vocab)) < 0.5, "an untrained model is near-uniform"
    s = run["summary"]
    assert s["iters_done"] == 60 and s["kept"] == "last, iter 60"
    assert s["final_val"] < first_val - 1.0 and s["final_train"] < first_train - 1.0, (evals, s)
    assert evals[-1][2] < evals[1][2] < first_val
    assert abs(s["rt_val"] - s["final_val"]) < 0.02, "float16 weights lose almost nothing"


def test_the_folder_has_the_files_the_page_loads(run):
    out = run["out"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "char_vocab.json", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert (config["n_layer"], config["n_head"], config["n_embd"], config["n_positions"]) == (2, 2, 32, 32)
    vocab = json.loads((out / "char_vocab.json").read_text(encoding="utf-8"))
    assert vocab == {c: i for i, c in enumerate(sorted(set(run["text"])))}
    assert config["vocab_size"] == len(vocab)
    card = (out / "README.md").read_text(encoding="utf-8")
    for fact in ("60", "train_char.py", f"{run['summary']['final_val']:.4f}"):
        assert fact in card, fact


def test_the_app_loader_checks_accept_it(run):
    """The loader's own validation (app/config.py, app/safetensors.py, app/tokenizer.py) in CPython."""
    out = run["out"]
    cfg = GPT2Config.from_json((out / "config.json").read_text(), "config.json")
    header = read_header(out / "model.safetensors")
    mapping, notices = match_tensors(cfg, header.tensors, "model.safetensors")
    assert {info.dtype for info in mapping.values()} == {"F16"}
    assert "wte.weight" in mapping and "lm_head.weight" not in mapping, "tied embeddings: no separate head"
    assert cfg.gelu == "tanh" and cfg.eos_token_id is None
    tok = load_tokenizer_from_texts({"char_vocab.json": (out / "char_vocab.json").read_text(encoding="utf-8")})
    assert isinstance(tok, CharTokenizer) and tok.vocab_size == cfg.vocab_size
    assert tok.decode(tok.encode("ROMEO:\nLove")) == "ROMEO:\nLove"


def test_transformers_loads_it_and_agrees_with_the_reference(run):
    import torch
    from transformers import GPT2LMHeadModel

    out = run["out"]
    model = GPT2LMHeadModel.from_pretrained(out, dtype=torch.float32).eval()
    vocab = json.loads((out / "char_vocab.json").read_text(encoding="utf-8"))
    ids = [vocab[c] for c in "ROMEO:\n"]
    with torch.no_grad():
        hf = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, pad_token_id=0)[0, len(ids):]
    cfg, weights = load_hf_folder(out)
    ref, _ = greedy(weights, cfg, ids, 16)
    assert hf.tolist() == ref
    itos = {i: c for c, i in vocab.items()}
    text = "".join(itos[i] for i in ref)
    assert set(text) <= set(run["text"]) and len(text) == 16
    # the trained model predicts its text far better than chance
    sample = [vocab[c] for c in run["text"][-200:]]
    with torch.no_grad():
        loss = model(torch.tensor([sample[:32]]), labels=torch.tensor([sample[:32]])).loss.item()
    assert loss < math.log(len(vocab)) - 1.0


def test_same_seed_same_weights(run):
    _, _ = train(run["tmp"], "again", run["data"])
    a = (run["out"] / "model.safetensors").read_bytes()
    b = (run["tmp"] / "again" / "model.safetensors").read_bytes()
    assert a == b, "on CPU two runs with the same seed give the same weights"
