"""The Llama family (llama, mistral, qwen2, qwen3) in CPython, against transformers 5.24 itself:
app/config.py reads config.json as transformers does (defaults, rope spellings, biases, norms) and
refuses what the engine cannot run with a message naming the key; app/rope.py gives transformers'
float32 inverse frequencies; tools/reference.py's numpy forward pass gives transformers' logits and
greedy ids on random models from tools/make_model.py of awkward shapes, f32 and bf16-stored."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_rope_utils import _compute_linear_scaling_rope_parameters, _compute_llama3_parameters
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from app.config import (
    GPT2Config,
    LlamaConfig,
    config_from_json,
    expected_tensor_shapes,
    match_tensors,
    param_count,
)
from app.errors import ModelFormatError
from app.rope import default_inverse_frequencies, linear_scaled, llama3_scaled, rope_frequencies
from reference import forward, greedy, load_hf_folder
from tools.make_model import main as make_model_main
from tools.make_model import make_model

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SMALL = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=1, intermediate_size=40, vocab_size=50)


def ulps(a, b) -> np.ndarray:
    """Distance in float32 units in the last place (positive floats)."""
    a = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    b = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
    return np.abs(a - b)


def hf_config(tmp_path, d):
    """transformers' own reading of a config.json with these keys."""
    (tmp_path / "config.json").write_text(json.dumps(d))
    return AutoConfig.from_pretrained(tmp_path)


def ours(d) -> LlamaConfig:
    return config_from_json(json.dumps(d), "config.json")


# ---------------------------------------------------------------------------------------------
# config.json, as transformers reads it

AS_TRANSFORMERS = {
    "llama plain": dict(SMALL, model_type="llama"),
    "llama biases, llama3 rope (v4 spelling, no original length)": dict(
        SMALL, model_type="llama", attention_bias=True, mlp_bias=True, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
        max_position_embeddings=4096, tie_word_embeddings=True, eos_token_id=[2, 7, 9]),
    "llama linear rope, old 'type' key": dict(SMALL, model_type="llama", rope_scaling={"type": "linear", "factor": 4}),
    "llama v5 rope_parameters": dict(
        SMALL, model_type="llama", num_key_value_heads=1,
        rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "rope_scaling wins over rope_parameters; its theta over the top-level one": dict(
        SMALL, model_type="llama", rope_theta=123.0, rope_parameters={"rope_type": "default", "rope_theta": 7.0},
        rope_scaling={"rope_type": "linear", "factor": 2.0, "rope_theta": 999.0}),
    "rope type 'default' with stray keys is plain rope": dict(
        SMALL, model_type="llama", rope_scaling={"rope_type": "default", "factor": 3.0}),
    "mistral defaults: 8 KV heads, sliding window 4096": dict(SMALL, model_type="mistral", num_attention_heads=8),
    "mistral without a window": dict(SMALL, model_type="mistral", num_key_value_heads=2, sliding_window=None),
    "qwen2 defaults: 32 KV heads, q/k/v biases": dict(SMALL, model_type="qwen2", num_attention_heads=32),
    "qwen2 null KV heads mean all heads; window off": dict(
        SMALL, model_type="qwen2", num_key_value_heads=None, use_sliding_window=False, sliding_window=32768,
        max_window_layers=21, rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=151643,
        eos_token_id=151645, vocab_size=151936),
    "qwen2 window on for the layers from max_window_layers": dict(
        SMALL, model_type="qwen2", num_key_value_heads=2, num_hidden_layers=3, use_sliding_window=True,
        sliding_window=48, max_window_layers=2),
    "qwen2 window on but no layer past max_window_layers": dict(
        SMALL, model_type="qwen2", num_key_value_heads=2, use_sliding_window=True, sliding_window=48),
    "qwen2 explicit head_dim": dict(SMALL, model_type="qwen2", num_key_value_heads=2, head_dim=24),
    "qwen3 default head_dim is 128": dict(SMALL, model_type="qwen3", num_attention_heads=32),
    "qwen3 head_dim 40, attention_bias": dict(
        SMALL, model_type="qwen3", hidden_size=200, num_attention_heads=5, num_key_value_heads=1, head_dim=40,
        attention_bias=True, rms_norm_eps=1e-5),
}


@pytest.mark.parametrize("d", AS_TRANSFORMERS.values(), ids=AS_TRANSFORMERS.keys())
def test_config_reads_as_transformers(tmp_path, d):
    """Every field of LlamaConfig equals what transformers makes of the same config.json, and the tensor
    map (names and shapes, biases and q/k norms included) is exactly the model transformers builds."""
    cfg, hf = ours(d), hf_config(tmp_path, json.loads(json.dumps(d)))
    hf_head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    assert (cfg.num_key_value_heads, cfg.head_dim) == (hf.num_key_value_heads, hf_head_dim)
    assert (cfg.rms_norm_eps, cfg.max_position_embeddings, cfg.tie_word_embeddings) == (
        hf.rms_norm_eps, hf.max_position_embeddings, hf.tie_word_embeddings)
    rope = hf.rope_parameters
    assert cfg.rope_theta == rope["rope_theta"]
    if cfg.rope_scaling is None:
        assert rope["rope_type"] == "default"
    else:
        assert cfg.rope_scaling.rope_type == rope["rope_type"]
        for key, value in vars(cfg.rope_scaling).items():
            if key != "rope_type" and value is not None:
                assert value == rope[key], key
    assert cfg.bos_token_id == hf.bos_token_id
    hf_eos = hf.eos_token_id if isinstance(hf.eos_token_id, list) else [hf.eos_token_id] * (hf.eos_token_id is not None)
    assert list(cfg.eos_token_ids) == hf_eos
    hf_window = getattr(hf, "sliding_window", None)
    if getattr(hf, "layer_types", None) is not None and "sliding_attention" not in hf.layer_types:
        hf_window = None
    assert cfg.sliding_window == hf_window

    model = AutoModelForCausalLM.from_config(hf)
    built = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if hf.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight
        del built["lm_head.weight"]  # save_pretrained does not write it
    assert expected_tensor_shapes(cfg) == built
    assert param_count(cfg) == model.num_parameters()
    inv_freq, scaling = rope_frequencies(cfg)
    assert scaling == model.model.rotary_emb.attention_scaling
    assert ulps(inv_freq, model.model.rotary_emb.inv_freq.numpy()).max() <= 4


def test_one_entry_point_for_every_model_type():
    """config_from_json returns GPT2Config for gpt2 (or no model_type) and LlamaConfig for the four families;
    GPT2Config.from_json is unchanged."""
    gpt2 = dict(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=10)
    assert isinstance(config_from_json(json.dumps(dict(gpt2, model_type="gpt2"))), GPT2Config)
    assert isinstance(config_from_json(json.dumps(gpt2).encode()), GPT2Config)
    assert GPT2Config.from_json(json.dumps(gpt2)).n_embd == 8
    for model_type in ("llama", "mistral", "qwen2", "qwen3"):
        cfg = config_from_json(json.dumps(dict(SMALL, model_type=model_type, num_key_value_heads=4)))
        assert isinstance(cfg, LlamaConfig) and cfg.model_type == model_type
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions) == (
            cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size, cfg.max_position_embeddings)


REFUSED = {
    "gemma": ({"model_type": "gemma"}, "'model_type' is 'gemma', which is not supported; supported: gpt2, llama, "
                                       "mistral, qwen2, qwen3"),
    "mixtral (MoE)": ({"model_type": "mixtral"}, "'mixtral', which is not supported; supported: gpt2, llama"),
    "phi3": ({"model_type": "phi3"}, "'phi3', which is not supported"),
    "KV heads not dividing heads": ({"num_key_value_heads": 3}, "'num_attention_heads' (4) is not a multiple of "
                                                                "'num_key_value_heads' (3)"),
    "qwen2's default of 32 KV heads": ({"model_type": "qwen2"}, "(no 'num_key_value_heads': transformers' qwen2 "
                                                                "default is 32) 'num_attention_heads' (4)"),
    "head size not dividing": ({"model_type": "mistral", "hidden_size": 66, "num_key_value_heads": 2},
                               "'hidden_size' (66) is not a multiple of 'num_attention_heads' (4) and there is no "
                               "'head_dim'"),
    "llama's own divisibility rule": ({"hidden_size": 66, "head_dim": 16}, "which transformers' LlamaConfig requires"),
    "odd head size": ({"model_type": "qwen3", "num_key_value_heads": 4, "head_dim": 33},
                      "rotary embeddings need an even head size"),
    "qwen3 null head_dim": ({"model_type": "qwen3", "num_key_value_heads": 4, "head_dim": None},
                            "'head_dim' must be an integer for qwen3"),
    "yarn": ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
             "'rope_scaling' has rope type 'yarn', which is not supported; supported: default, linear, llama3"),
    "dynamic (old 'type' key)": ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope type 'dynamic'"),
    "longrope in v5's rope_parameters": ({"rope_parameters": {"rope_type": "longrope"}},
                                         "'rope_parameters' has rope type 'longrope'"),
    "su": ({"rope_scaling": {"type": "su"}}, "rope type 'su', which is not supported"),
    "linear without factor": ({"rope_scaling": {"rope_type": "linear"}}, "missing key 'rope_scaling' 'factor'"),
    "llama3 without low_freq_factor": ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                         "high_freq_factor": 4.0}},
                                       "missing key 'rope_scaling' 'low_freq_factor'"),
    "llama3 with high <= low": ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                                                  "high_freq_factor": 4.0}},
                                "'high_freq_factor' (4.0) must be greater than 'low_freq_factor' (4.0)"),
    "rope_theta text": ({"rope_theta": "10000"}, "'rope_theta' must be a positive number, got '10000'"),
    "partial rotary": ({"partial_rotary_factor": 0.5}, "'partial_rotary_factor' is 0.5; only rotary embeddings"),
    "per-layer rope": ({"rope_parameters": {"full_attention": {"rope_type": "default"}}},
                       "separate settings per layer type (full_attention)"),
    "gelu": ({"hidden_act": "gelu"}, "'hidden_act' 'gelu' is not supported; the llama MLP here takes only 'silu'"),
    "missing size": ({"hidden_size": None}, "'hidden_size' must be an integer, got None"),
    "bool bias": ({"attention_bias": "yes"}, "'attention_bias' must be true or false, got 'yes'"),
    "bad eos": ({"eos_token_id": [1, "x"]}, "'eos_token_id' must be an integer, a list of integers or null"),
    "layer_types": ({"model_type": "qwen3", "num_key_value_heads": 2, "layer_types": ["full_attention"] * 3},
                    "'layer_types' must list 1 of 'full_attention', 'sliding_attention'"),
}


@pytest.mark.parametrize("change, message", REFUSED.values(), ids=REFUSED.keys())
def test_refusals_name_the_key(change, message):
    """What the engine cannot run exactly is refused with a ModelFormatError naming config.json and the key."""
    with pytest.raises(ModelFormatError) as err:
        ours({**SMALL, "model_type": "llama", **change})
    assert str(err.value).startswith("config.json: ") and message in str(err.value), str(err.value)


def test_file_level_refusals():
    """Bytes that are not a config at all say so, as for GPT-2."""
    for text, message in ((b"\xff\xfe", "not UTF-8"), ("version https://git-lfs.github.com/spec/v1", "LFS pointer"),
                          ("{", "not valid JSON"), ("[1]", "must be a JSON object, got list")):
        with pytest.raises(ModelFormatError, match=message):
            config_from_json(text, "config.json")


def test_sliding_window_shorter_than_the_context_is_refused():
    """A window at least as long as the context changes nothing; a shorter one is refused when the context is
    chosen, naming the window."""
    cfg = ours(dict(SMALL, model_type="mistral", num_key_value_heads=2, sliding_window=64))
    cfg.check_context(64)
    with pytest.raises(ModelFormatError, match="'sliding_window' is 64, shorter than the context of 65 tokens"):
        cfg.check_context(65)
    ours(dict(SMALL, model_type="llama", sliding_window=4)).check_context(10_000)  # llama has no window


def test_out_of_vocabulary_ids_are_dropped_with_a_notice():
    """eos may be a list: every id is kept; one outside the vocabulary is dropped with a notice, as GPT-2's."""
    cfg = ours(dict(SMALL, model_type="llama", eos_token_id=[3, 50256, 4], bos_token_id=None))
    assert cfg.eos_token_ids == (3, 4) and cfg.eos_token_id == 3 and cfg.bos_token_id is None
    assert any("'eos_token_id' 50256 is outside the vocabulary" in n for n in cfg.notices)


def info(shape, dtype="F32"):
    return SimpleNamespace(shape=shape, dtype=dtype, filename="")


def test_match_tensors_errors():
    """Missing, transposed, doubly stored and unsupported tensors are refused naming the tensor; names
    without 'model.' are accepted; old rotary buffers are skipped; unknown tensors become a notice."""
    cfg = ours(dict(SMALL, model_type="qwen2", num_key_value_heads=2, max_position_embeddings=64))
    full = {name: info(shape) for name, shape in expected_tensor_shapes(cfg).items()}
    mapping, notices = match_tensors(cfg, full)
    assert set(mapping) == set(full) and notices == []

    short = {name.removeprefix("model."): value for name, value in full.items()}
    short["model.layers.0.self_attn.rotary_emb.inv_freq"] = info((8,))
    short["extra.weight"] = info((1,))
    mapping, notices = match_tensors(cfg, short)
    assert set(mapping) == set(full) and "ignored 1 tensor that qwen2 does not use: 'extra.weight'" in notices[0]

    missing = dict(full)
    del missing["model.layers.0.self_attn.k_proj.bias"]
    with pytest.raises(ModelFormatError, match=r"missing tensor 'model.layers.0.self_attn.k_proj.bias' .*"
                                               r"model_type qwen2.*q/k/v biases yes, o_proj bias no"):
        match_tensors(cfg, missing)
    transposed = dict(full, **{"model.layers.0.mlp.up_proj.weight": info((64, 40))})
    with pytest.raises(ModelFormatError, match=r"tensor 'model.layers.0.mlp.up_proj.weight' has shape \[64, 40\] "
                                               r"but config.json \(hidden_size=64.*needs \[40, 64\] \(transposed"):
        match_tensors(cfg, transposed)
    twice = dict(full, **{"norm.weight": info((64,))})
    with pytest.raises(ModelFormatError, match="'model.norm.weight' is stored twice"):
        match_tensors(cfg, twice)
    with pytest.raises(ModelFormatError, match="has dtype I8; supported: F32, F16, BF16"):
        match_tensors(cfg, dict(full, **{"model.norm.weight": info((64,), "I8")}))


# ---------------------------------------------------------------------------------------------
# rotary inverse frequencies

ROPE_CASES = [(10000.0, 64), (500000.0, 128), (1000000.0, 80), (10000.0, 40), (12345.5, 96), (100.0, 6)]


@pytest.mark.parametrize("theta, head_dim", ROPE_CASES)
def test_rope_default_frequencies(theta, head_dim):
    """Each value is a float32 within 2 float32 ulps of transformers' (torch's float32 pow is not correctly
    rounded, so bit equality cannot be promised), and most are bit for bit the same."""
    config = SimpleNamespace(rope_parameters={"rope_theta": theta}, head_dim=head_dim)
    hf, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    values = default_inverse_frequencies(head_dim, theta)
    assert len(values) == head_dim // 2 and all(struct.unpack("f", struct.pack("f", v))[0] == v for v in values)
    distance = ulps(values, hf.numpy())
    assert distance.max() <= 2 and (distance == 0).mean() > 0.8


@pytest.mark.parametrize("theta, head_dim", ROPE_CASES)
@pytest.mark.parametrize("factor", [2.0, 8.0, 3.7])
def test_rope_scaling_is_transformers_bit_for_bit(theta, head_dim, factor):
    """Given transformers' default frequencies, linear and llama3 scaling reproduce transformers' float32
    results exactly: every torch operation, its float32 rounding and its order are replayed. The llama3
    cases include frequencies in the blended band."""
    config = transformers.LlamaConfig(
        hidden_size=2 * head_dim, num_attention_heads=2, head_dim=head_dim, max_position_embeddings=1 << 17,
        rope_parameters={"rope_type": "linear", "factor": factor, "rope_theta": theta})
    default, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    hf, _ = _compute_linear_scaling_rope_parameters(config)
    assert linear_scaled(default.tolist(), factor) == hf.tolist()
    for low, high, original in ((1.0, 4.0, 8192), (1.0, 4.0, 64), (0.5, 3.0, 1000)):
        config.rope_parameters = {"rope_type": "llama3", "factor": factor, "rope_theta": theta,
                                  "low_freq_factor": low, "high_freq_factor": high,
                                  "original_max_position_embeddings": original}
        hf, _ = _compute_llama3_parameters(config)
        assert llama3_scaled(default.tolist(), factor, low, high, original) == hf.tolist()
    blended = llama3_scaled(default.tolist(), factor, 1.0, 4.0, 64)
    divided = linear_scaled(default.tolist(), factor)
    assert any(b not in (d, low) for b, d, low in zip(blended, default.tolist(), divided))


# ---------------------------------------------------------------------------------------------
# the numpy reference against transformers, on random models

MODELS = {
    "llama GQA 3 KV heads, head_dim 40, llama3 rope, untied, attention and MLP biases": dict(
        model_type="llama", hidden_size=240, num_attention_heads=6, num_key_value_heads=3, intermediate_size=200,
        rope_theta=500000.0, max_position_embeddings=256, tie_word_embeddings=False, attention_bias=True,
        mlp_bias=True, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "llama MQA, hidden 200, head_dim 40, linear rope, tied": dict(
        model_type="llama", hidden_size=200, num_attention_heads=5, num_key_value_heads=1, intermediate_size=136,
        rope_scaling={"rope_type": "linear", "factor": 2.0}),
    "mistral head_dim 80, window as long as the context": dict(
        model_type="mistral", hidden_size=160, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=300, sliding_window=128, tie_word_embeddings=False),
    "qwen2 head_dim 128, MQA, biases, theta 1e6, sharded f16": dict(
        model_type="qwen2", hidden_size=256, num_attention_heads=2, num_key_value_heads=1, intermediate_size=96,
        rope_theta=1e6, dtype="float16", shard_size="100KB"),
    "qwen3 head_dim 80 != 200 / 4, q/k norms, attention_bias, untied": dict(
        model_type="qwen3", hidden_size=200, num_attention_heads=4, num_key_value_heads=2, head_dim=80,
        intermediate_size=120, attention_bias=True, tie_word_embeddings=False, rms_norm_eps=1e-5),
    "qwen3 head_dim 128 on hidden 96, 3 KV heads, bf16-stored": dict(
        model_type="qwen3", hidden_size=96, num_attention_heads=6, num_key_value_heads=3, head_dim=128,
        intermediate_size=64, dtype="bfloat16", num_hidden_layers=3),
    "llama GQA 3 KV heads bf16-stored": dict(
        model_type="llama", hidden_size=192, num_attention_heads=6, num_key_value_heads=3, intermediate_size=160,
        dtype="bfloat16", tie_word_embeddings=False),
}
PROMPT = [5, 17, 3, 42, 8, 8, 90, 1, 33, 64, 2, 71]
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {name: make_model(root / str(i), init_std=0.2, seed=i, **shape)
            for i, (name, shape) in enumerate(MODELS.items())}


@pytest.mark.parametrize("name", MODELS)
def test_reference_equals_transformers(made, name):
    """Logits within 1e-4 at every position of a prompt (f32 compute; a bf16-stored model computed in f32 by
    both on the same bf16 weights, transformers via model.float()), the same greedy ids, and the KV cache
    equal to a full recompute."""
    folder = made[name]
    cfg, weights = load_hf_folder(folder)
    assert isinstance(cfg, LlamaConfig) and cfg.model_type == MODELS[name]["model_type"]
    if "shard_size" in MODELS[name]:
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) >= 2
    stored = MODELS[name].get("dtype", "float32")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, stored)).float().eval()
    with torch.no_grad():
        expected = model(torch.tensor([PROMPT])).logits[0].numpy()
        generated = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                   pad_token_id=0)[0, len(PROMPT):].tolist()
    np.testing.assert_allclose(forward(weights, cfg, PROMPT), expected, rtol=0, atol=1e-4)
    ids, step_logits = greedy(weights, cfg, PROMPT, NEW_TOKENS)
    assert ids == generated
    recomputed = forward(weights, cfg, PROMPT + ids[:-1])[len(PROMPT) - 1:]
    np.testing.assert_allclose(step_logits, recomputed, rtol=0, atol=1e-4)
    top2 = np.sort(step_logits, axis=-1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-3, "decisive logits: no greedy step is a near-tie"


def test_make_model_command_line(tmp_path):
    """The command line makes a family model with the asked-for shape, in a folder transformers loads; a small
    vocabulary gets a char_vocab.json and no bos/eos."""
    out = tmp_path / "q3"
    assert make_model_main([str(out), "--model-type", "qwen3", "--n-layer", "1", "--n-head", "4", "--n-embd", "96",
                            "--n-positions", "32", "--vocab-size", "60", "--kv-heads", "2", "--head-dim", "40",
                            "--attention-bias", "--untied", "--rope-scaling",
                            '{"rope_type": "linear", "factor": 3.0}', "--dtype", "bfloat16"]) == 0
    cfg = config_from_json((out / "config.json").read_text())
    assert (cfg.model_type, cfg.num_key_value_heads, cfg.head_dim, cfg.qkv_bias, cfg.o_proj_bias, cfg.qk_norm,
            cfg.tie_word_embeddings, cfg.rope_scaling.factor, cfg.eos_token_ids) == (
        "qwen3", 2, 40, True, True, True, False, 3.0, ())
    assert len(json.loads((out / "char_vocab.json").read_text())) == 60
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16 and model.lm_head.weight is not model.model.embed_tokens.weight


def test_gpt2_tokenizer_stands_in_for_a_large_vocabulary(tmp_path):
    """With a vocabulary of 50257 or more, GPT-2's vocab.json + merges.txt come with the model, and bos/eos are
    GPT-2's <|endoftext|> (50256)."""
    out = make_model(tmp_path / "big", model_type="llama", vocab_size=50257, hidden_size=16, num_attention_heads=2,
                     num_hidden_layers=1, intermediate_size=16)
    cfg = config_from_json((out / "config.json").read_text())
    assert (out / "vocab.json").exists() and (out / "merges.txt").exists() and not (out / "char_vocab.json").exists()
    assert (cfg.bos_token_id, cfg.eos_token_ids) == (50256, (50256,))
