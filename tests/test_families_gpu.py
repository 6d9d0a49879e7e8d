"""The Llama family (llama, mistral, qwen2, qwen3) on the GPU, in the page on SwiftShader, against
transformers in CPython on random-weight models made by transformers itself (tools/make_model.py):
greedy ids equal and every step's logits within 1e-3 of transformers' (f32 weights; bf16-stored
weights against transformers computing in f32 on the same bf16 values). Shapes: grouped KV heads
(3 of 6), multi-query (1), a head_dim that is not hidden / heads (Qwen3), head_dim 40 / 80 / 128,
llama3 and linear rope scaling, untied embeddings, Qwen2's q/k/v biases, Llama's attention and MLP
biases, Qwen3's q/k norms, hidden sizes not a multiple of 64, a sharded checkpoint; both kernel
shapes (the CPU adapter's and a GPU's, forced on SwiftShader), with prompts that cross prefill
chunks and decode steps that cross attention blocks. Also: the dispatch budget per decode step,
a refused sliding window, and tools/generate.py's CLI on one of them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from app.contract import decode_dispatch_limit
from conftest import ROOT, mounted_site_page, run_py
from tools.make_model import cached_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
MODELS = {  # name -> make_model arguments
    "llama-gqa": dict(model_type="llama", num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=3,
                      hidden_size=120, intermediate_size=200, max_position_embeddings=1024, vocab_size=500,
                      head_dim=40, rope_scaling=LLAMA3_ROPE, attention_bias=True, mlp_bias=True),
    "qwen3": dict(model_type="qwen3", num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  hidden_size=200, intermediate_size=136, max_position_embeddings=1024, vocab_size=400, head_dim=80,
                  tie_word_embeddings=False),
    "qwen2-mqa": dict(model_type="qwen2", num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=1,
                      hidden_size=384, intermediate_size=260, max_position_embeddings=1024, vocab_size=300,
                      dtype="bfloat16", shard_size="400KB"),
    "mistral": dict(model_type="mistral", num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                    hidden_size=256, intermediate_size=128, max_position_embeddings=1024, vocab_size=300,
                    head_dim=128, sliding_window=4096, rope_scaling={"rope_type": "linear", "factor": 2.0}),
}
PROMPT = [(37 * i + 11) % 290 for i in range(150)]  # > 128 rows: two prefill chunks on a CPU adapter
# A GPU's chunk holds 512 rows, so its kernels (slow on SwiftShader) get a shorter prompt whose
# decode steps still cross an attention block (64 positions).
GPU_PROMPT = PROMPT[:58]
NEW = 12


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    cache = tmp_path_factory.getbasetemp() / "models"
    return {name: cached_model(cache, **shape) for name, shape in MODELS.items()}


@pytest.fixture(scope="module")
def page(browser, site_server, models):
    root = next(iter(models.values())).parent
    # 404s: optional files a folder does not have (chat_template.jinja, ...)
    with mounted_site_page(browser, {"/families/": root}, allow=[r"status of 404"]) as page:
        yield page


_REF: dict = {}


def transformers_run(folder, prompt, new: int):
    """(greedy ids, logits [new, vocab]) of transformers in f32 (bf16-stored weights upcast)."""
    from transformers import AutoModelForCausalLM

    key = (str(folder), tuple(prompt), new)
    if key not in _REF:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=new, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
            ids = out[0, len(prompt):].tolist()
            logits = model(out[:, :-1]).logits[0, len(prompt) - 1:].numpy()
        _REF[key] = (ids, logits)
    return _REF[key]


def generate(page, ref: str, prompt, new: int) -> dict:
    return page.evaluate("""async ([ref, prompt, n]) => {
      await pywebgpt.load(ref, {cache: false});
      return await pywebgpt.generate('', {prompt_ids: prompt, max_new_tokens: n, temperature: 0,
                                          stop_on_eos: false, return_logits: true});
    }""", [ref, prompt, new])


def logits_of(result: dict) -> np.ndarray:
    import base64

    raw = np.frombuffer(base64.b64decode(result["logits_f32_b64"]), dtype="<f4")
    return raw.reshape(-1, result["vocab_size"])


@pytest.mark.parametrize("gpu_shapes", [False, True], ids=["cpu-shapes", "gpu-shapes"])
@pytest.mark.parametrize("name", list(MODELS))
def test_greedy_ids_and_logits_equal_transformers(page, models, name, gpu_shapes):
    run_py(page, f"engine.shape_overrides = {{'cpu': {not gpu_shapes}}}\nNone")
    prompt = GPU_PROMPT if gpu_shapes else PROMPT
    try:
        out = generate(page, f"/families/{models[name].name}/", prompt, NEW)
    finally:
        run_py(page, "engine.shape_overrides = {}\nNone")
    ids, want = transformers_run(models[name], prompt, NEW)
    assert out["tokens"] == ids, name
    got = logits_of(out)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) < 1e-3, (name, float(np.abs(got - want).max()))


def test_dispatches_per_decode_step_within_budget(page, models):
    """6 per block (q|k|v, rope, attention, o, gate|up with silu, down; 8 with the two RMSNorms as
    their own dispatches on a CPU adapter) + embedding, head, top-k: within app/contract.py
    decode_dispatch_limit on both kernel shapes, as counted from the plan the GPU replays."""
    for gpu_shapes in (False, True):
        run_py(page, f"engine.shape_overrides = {{'cpu': {not gpu_shapes}}}\nNone")
        try:
            info = page.evaluate("(ref) => pywebgpt.load(ref, {cache: false})",
                                 f"/families/{models['qwen2-mqa'].name}/")
        finally:
            run_py(page, "engine.shape_overrides = {}\nNone")
        n_layer = MODELS["qwen2-mqa"]["num_hidden_layers"]
        assert info["dispatches_per_decode_step"] <= decode_dispatch_limit(n_layer, fused_norms=gpu_shapes), info
        assert info["family"] == "qwen2" and info["dtype"] == "BF16"


def test_a_sliding_window_shorter_than_the_context_is_refused(page, models):
    """Mistral attends within a sliding window: a window at least as long as the context changes
    nothing (accepted), a shorter one would, so it is refused before any download."""
    folder = models["mistral"]
    load = """async (ref) => {
      try { await pywebgpt.load(ref, {cache: false, context: 8192}); return null; }
      catch (e) { return {code: e.code, message: e.message}; }
    }"""
    # max_position_embeddings is 1024: a context of 8192 is cut to 1024 <= the 4096 window
    assert page.evaluate(load, f"/families/{folder.name}/") is None
    small = folder.parent / "mistral-window-64"
    if not small.exists():
        small.mkdir()
        for f in folder.iterdir():
            if f.is_file():
                (small / f.name).write_bytes(f.read_bytes())
        cfg = json.loads((folder / "config.json").read_text())
        (small / "config.json").write_text(json.dumps({**cfg, "sliding_window": 64}))
    error = page.evaluate(load, f"/families/{small.name}/")
    assert error["code"] == "format" and "sliding_window" in error["message"] and "64" in error["message"], error


def test_generate_cli_on_a_family_model(models, tmp_path):
    """tools/generate.py --temperature 0 --dump-logits on Qwen3: transformers' ids, logits within 1e-3."""
    folder = models["qwen3"]
    prompt = PROMPT[:20]
    dump = tmp_path / "logits.npy"
    cmd = [sys.executable, str(ROOT / "tools/generate.py"), "--model", str(folder), "--prompt-ids",
           ",".join(map(str, prompt)), "--max-new-tokens", "6", "--temperature", "0", "--json", "--no-stop-on-eos",
           "--dump-logits", str(dump)]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    ids, want = transformers_run(folder, prompt, 6)
    assert out["tokens"] == ids
    assert float(np.abs(np.load(dump) - want).max()) < 1e-3
