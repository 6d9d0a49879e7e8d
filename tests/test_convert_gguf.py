"""tools/convert.py on GGUF files: the Hugging Face folder it writes holds the original weights
(F32 round trips of random llama / qwen2 / qwen3 models written the way llama.cpp's converter
writes them, Q/K permutation included), gives transformers' own GGUF loading
(`from_pretrained(dir, gguf_file=...)`) for every supported tensor type, and, on the real
SmolLM2-135M-Instruct Q4_1 file, the same logits and greedy ids and English text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import gguf_files as gf  # noqa: E402
from tools.convert import convert, main  # noqa: E402
from tools.make_gguf import hf_folder_to_gguf, set_version  # noqa: E402

torch.set_num_threads(2)

BASE = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=256)
MODELS = {
    "llama-gqa": ("llama", dict(num_attention_heads=4, num_key_value_heads=2)),
    "llama-3kv-untied-llama3-rope": ("llama", dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3,
                                                   tie_word_embeddings=False, max_position_embeddings=4096,
                                                   rope_theta=500000.0,
                                                   rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                 "low_freq_factor": 1.0, "high_freq_factor": 16.0,
                                                                 "original_max_position_embeddings": 1024})),
    "llama-head-dim-48-linear-rope": ("llama", dict(num_attention_heads=2, num_key_value_heads=1, head_dim=48,
                                                    rope_scaling={"rope_type": "linear", "factor": 2.0})),
    "llama-mqa-biases": ("llama", dict(num_attention_heads=4, num_key_value_heads=1, attention_bias=True,
                                       mlp_bias=True)),
    "qwen2": ("qwen2", dict(num_attention_heads=4, num_key_value_heads=2)),
    "qwen3": ("qwen3", dict(num_attention_heads=2, num_key_value_heads=1, head_dim=128)),
    # rows of whole k-quant super-blocks (256 weights)
    "llama-256": ("llama", dict(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)),
}
PROMPT = torch.tensor([[1, 5, 9, 2, 77, 3, 41, 60]])


def quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def random_hf_model(folder: Path, name: str) -> Path:
    """A random model with decisive logits (std 0.2 weights, norms around 1), saved by transformers."""
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet()
    model_type, shape = MODELS[name]
    config = AutoConfig.for_model(model_type, **{**BASE, **shape})
    torch.manual_seed(sum(map(ord, name)))
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for key, parameter in model.named_parameters():
            parameter.normal_(1.0 if "norm" in key else 0.0, 0.2)
    model.save_pretrained(folder)
    return folder


def load(folder: Path, gguf_file: str | None = None):
    from transformers import AutoModelForCausalLM

    quiet()
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kwargs).eval()


def logits(model, ids=PROMPT) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0]


def state(model) -> dict:
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_f32_gguf_round_trips_to_the_original_weights(tmp_path, name):
    """HF -> GGUF (F32, as llama.cpp writes it: renamed, Q/K permuted for llama, llama3 rope as
    rope_freqs.weight) -> tools/convert.py gives back every original tensor bit for bit, a config
    transformers reads as the original (rope scaling, head_dim, biases, tying), and the same logits."""
    hf = random_hf_model(tmp_path / "hf", name)
    gguf_path = hf_folder_to_gguf(hf, tmp_path / "m.gguf", "F32")
    out = convert(gguf_path, tmp_path / "out")
    original, converted = load(hf), load(out)
    assert type(converted) is type(original)
    a, b = state(original), state(converted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    want, got = original.config, converted.config
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "tie_word_embeddings",
                "max_position_embeddings", "vocab_size", "intermediate_size", "num_hidden_layers"):
        expected = getattr(want, key, None)
        if key == "head_dim" and expected is None:  # Qwen2Config has no head_dim: it is hidden / heads
            expected = want.hidden_size // want.num_attention_heads
        assert getattr(got, key) == expected, key
    assert got.rope_parameters == want.rope_parameters
    assert torch.equal(logits(converted), logits(original))
    written = json.loads((out / "config.json").read_text())
    assert written["dtype"] == "float32" and written["model_type"] == MODELS[name][0]


@pytest.mark.parametrize("model,type_name", [("llama-gqa", t) for t in ("F16", "BF16", "Q8_0", "Q4_0", "Q4_1")]
                         + [("qwen2", "Q4_1"), ("qwen3", "Q8_0"), ("qwen3", "Q4_0")]
                         + [("llama-256", "Q6_K"), ("llama-256", "Q4_K_M"), ("llama-256", "Q5_K_M"),
                            ("llama-gqa", "Q4_K_M"), ("llama-gqa", "Q5_K_M")])
def test_each_tensor_type_gives_transformers_gguf_loading(tmp_path, model, type_name):
    """For every supported type (the k-quants on a model whose rows are whole super-blocks of 256; the
    mixes also on a 64-wide one, whose rows llama.cpp's rule writes as Q5_0 / Q5_1 and Q8_0), the
    converted folder's weights equal what transformers dequantizes from the same GGUF, bit for bit, and the
    logits and greedy ids are the same. (transformers' GGUF loading drops llama's biases and rope scaling, so
    those models are checked against their original weights above instead.)"""
    hf = random_hf_model(tmp_path / "hf", model)
    gguf_path = hf_folder_to_gguf(hf, tmp_path / "m.gguf", type_name)
    reference = load(tmp_path, "m.gguf")
    converted = load(convert(gguf_path, tmp_path / "out"))
    a, b = state(reference), state(converted)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (logits(reference) - logits(converted)).abs().max().item() < 1e-4
    greedy = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(reference.generate(PROMPT, **greedy), converted.generate(PROMPT, **greedy))
    if type_name != "F16":  # quantized tensors are really quantized: not the original weights
        key = "model.layers.0.mlp.up_proj.weight"
        assert not torch.equal(b[key], state(load(hf))[key])


def test_version_2_and_output_dtypes(tmp_path):
    """A version 2 file converts exactly as its version 3 twin; --dtype float16 and bfloat16 write the
    float32 values rounded to that type."""
    from safetensors.torch import load_file

    hf = random_hf_model(tmp_path / "hf", "llama-gqa")
    v3 = hf_folder_to_gguf(hf, tmp_path / "v3.gguf", "Q4_1")
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(v3.read_bytes())
    set_version(v2, 2)
    f32 = load_file(convert(v3, tmp_path / "f32") / "model.safetensors")
    from_v2 = load_file(convert(v2, tmp_path / "from_v2") / "model.safetensors")
    assert all(torch.equal(f32[k], from_v2[k]) for k in f32)
    for dtype in ("float16", "bfloat16"):
        out = convert(v3, tmp_path / dtype, dtype)
        tensors = load_file(out / "model.safetensors")
        assert all(t.dtype == getattr(torch, dtype) and torch.equal(t, f32[k].to(t.dtype)) for k, t in tensors.items())
        assert json.loads((out / "config.json").read_text())["dtype"] == dtype


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    """Unsupported tensor types (named with the tensor), truncated files, values beyond float16 and
    --dtype bfloat16 for a GPT-2 source: exit status 2 and one line `error: ...`."""
    q3k = gf.build(gf.llama_metadata(), [("blk.0.ffn_up.weight", (256, 2), "Q3_K", 0)], data=bytes(220))
    (tmp_path / "q3k.gguf").write_bytes(q3k)
    hf = random_hf_model(tmp_path / "hf", "llama-gqa")
    whole = hf_folder_to_gguf(hf, tmp_path / "whole.gguf", "F32").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[:len(whole) - 100])
    big = hf_folder_to_gguf(hf, tmp_path / "big.gguf", "F32")
    data = bytearray(big.read_bytes())
    from app.gguf import read_gguf_header

    info = read_gguf_header(big).tensors["blk.0.ffn_up.weight"]
    data[info.data_offset:info.data_offset + 4] = np.float32(1e6).tobytes()
    big.write_bytes(bytes(data))
    cases = [
        ([tmp_path / "q3k.gguf", tmp_path / "o1"], "tensor 'blk.0.ffn_up.weight' is of type Q3_K"),
        ([tmp_path / "cut.gguf", tmp_path / "o2"], "past the end of the file"),
        ([big, tmp_path / "o3", "--dtype", "float16"], "not finite in float16"),
        ([hf, tmp_path / "o4", "--dtype", "bfloat16"], "bfloat16 is for GGUF sources"),
    ]
    for args, expected in cases:
        assert main([str(a) for a in args]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line and not line.startswith("note: ")]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
        assert not (Path(args[1]) / "model.safetensors").exists()


# ------------------------------------------------------------------------------ the real model


PROMPTS = ["The capital of France is",
           "<|im_start|>user\nWhat is the largest planet in the solar system?<|im_end|>\n<|im_start|>assistant\n",
           "def fibonacci(n):"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The real file converted once, and transformers' own load of the same file, once per module."""
    folder = tmp_path_factory.mktemp("smollm2")
    (folder / "smollm2.gguf").symlink_to(gf.smollm2_gguf())
    out = convert(folder / "smollm2.gguf", folder / "converted")
    return load(folder, "smollm2.gguf"), load(out), out


@pytest.mark.slow
def test_smollm2_converted_equals_transformers_gguf(smollm2):
    """SmolLM2-135M-Instruct Q4_1: every converted weight equals transformers' dequantized GGUF
    weight, the logits agree within 1e-4 and the greedy ids are the same on three prompts, and the
    text reads as English (France's capital is Paris; the chat answer repeats the question's words)."""
    from transformers import AutoTokenizer

    reference, converted, out = smollm2
    a, b = state(reference), state(converted)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    texts = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert (logits(reference, ids) - logits(converted, ids)).abs().max().item() < 1e-4
        greedy = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        want, got = reference.generate(ids, **greedy), converted.generate(ids, **greedy)
        assert torch.equal(want, got)
        texts.append(tokenizer.decode(got[0, ids.shape[1]:], skip_special_tokens=True))
    assert "Paris" in texts[0], texts
    assert "largest planet" in texts[1], texts  # (a 4-bit 135M model: it says Neptune)
    assert all(sum(c.isascii() for c in text) == len(text) and any(c.isalpha() for c in text) for text in texts)


@pytest.mark.slow
def test_smollm2_folder_files(smollm2):
    """The folder: config.json (llama, tied, 30 layers, GQA 9/3), generation_config.json's ids,
    tokenizer_config.json's special tokens and chat template, and world-readable weights."""
    _, _, out = smollm2
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["tie_word_embeddings"]) == ("llama", 30, 9, 3, True)
    assert json.loads((out / "generation_config.json").read_text()) == {"bos_token_id": 1, "eos_token_id": 2,
                                                                        "pad_token_id": 2}
    settings = json.loads((out / "tokenizer_config.json").read_text())
    assert settings["eos_token"] == "<|im_end|>" and settings["add_bos_token"] is False
    assert settings["chat_template"].startswith("{% for message in messages %}")
    assert (out / "model.safetensors").stat().st_mode & 0o044 == 0o044
