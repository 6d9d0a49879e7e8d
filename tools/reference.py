"""A plain numpy GPT-2 and Llama family (llama, mistral, qwen2, qwen3): the oracle the GPU engine
is tested against.

Readable rather than fast, in the spirit of nanoGPT's model.py. It reads the same folder
the page loads (config.json + model.safetensors or its shards, via app/config.py and
app/safetensors.py, so it also exercises the page's validation), computes in float32 like
transformers (or float64 on request), and offers a full causal recompute and an incremental
KV-cache decode. GPT-2 is below; the Llama family's forward pass is tools/reference_llama.py.

    python tools/reference.py --model DIR --prompt-ids 1,2,3 --max-new-tokens 8 [--json]
        [--dump-logits FILE.npy] [--float64]

Weights stored as F16 or BF16 are upcast to float32 exactly, so a test of f16 weights
compares against the same f16-rounded values.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.config import GPT2Config, LlamaConfig, config_from_json, match_tensors  # noqa: E402
from app.errors import ModelFormatError  # noqa: E402
from app.safetensors import read_header  # noqa: E402

TOOLS = str(Path(__file__).resolve().parent)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
from reference_llama import LlamaKVCacheModel  # noqa: E402

# ---------------------------------------------------------------------------------------------
# loading


def _tensor_to_f32(raw: np.ndarray, dtype: str, shape) -> np.ndarray:
    """Bytes of one tensor (a uint8 view) -> float32 array of `shape`."""
    if dtype == "F32":
        array = raw.view("<f4")
    elif dtype == "F16":
        array = raw.view("<f2").astype(np.float32)
    elif dtype == "BF16":  # bf16 is the top 16 bits of an f32
        array = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise ModelFormatError(f"dtype {dtype} is not supported")
    return np.array(array, dtype=np.float32).reshape(shape)  # a copy, detached from the file


def weight_files(folder: Path) -> list:
    """The safetensors files of a HF folder: one model.safetensors, or the shards of an index."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.exists():
        return [single]
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelFormatError(f"{index}: not a valid index (needs a 'weight_map' object)") from None
        return [folder / shard for shard in shards]
    if (folder / "pytorch_model.bin").exists():
        raise ModelFormatError(
            f"{folder}: has pytorch_model.bin but no model.safetensors; convert it first: "
            f"python tools/convert.py {folder} OUT_DIR"
        )
    raise ModelFormatError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def load_hf_folder(path):
    """Read a Hugging Face folder -> (GPT2Config or LlamaConfig, {canonical name: float32 array})."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: not a folder")
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ModelFormatError(f"{folder}: no config.json")
    cfg = config_from_json(config_path.read_bytes(), str(config_path))

    tensors, file_bytes = {}, {}
    for file in weight_files(folder):
        if not file.exists():
            raise ModelFormatError(f"{file}: listed in the index but missing")
        header = read_header(file)
        for key, info in header.tensors.items():
            if key in tensors:
                raise ModelFormatError(f"{file}: tensor {key!r} is also in {tensors[key].filename}")
            tensors[key] = info
        file_bytes[str(file)] = np.memmap(file, dtype=np.uint8, mode="r")
    mapping, _notices = match_tensors(cfg, tensors, str(folder))

    weights = {}
    for name, info in mapping.items():
        raw = file_bytes[info.filename][info.data_offset : info.data_offset + info.nbytes]
        weights[name] = _tensor_to_f32(raw, info.dtype, info.shape)
    return cfg, weights


# ---------------------------------------------------------------------------------------------
# the model


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased variance, as torch
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x, form):
    if form == "tanh":  # gelu_new: GPT-2's original approximation
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if form == "erf":  # exact GELU
        return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))).astype(x.dtype)
    raise ValueError(f"unknown GELU form {form!r}")


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def attention(x, w, prefix, cfg, cache):
    """Causal self-attention of the new rows x [T, E]; cache holds the earlier keys/values.

    cache is a dict {'k': [H, past, D], 'v': [H, past, D]} that is extended in place.
    """
    T, E = x.shape
    H, D = cfg.n_head, cfg.head_dim
    qkv = x @ w[prefix + "attn.c_attn.weight"] + w[prefix + "attn.c_attn.bias"]  # [T, 3E]
    q, k, v = np.split(qkv, 3, axis=-1)
    q, k, v = (m.reshape(T, H, D).transpose(1, 0, 2) for m in (q, k, v))  # [H, T, D]
    past = cache["k"].shape[1]
    k = cache["k"] = np.concatenate([cache["k"], k], axis=1)  # [H, past + T, D]
    v = cache["v"] = np.concatenate([cache["v"], v], axis=1)

    scores = (q @ k.transpose(0, 2, 1)) / math.sqrt(D)  # [H, T, past + T]
    # new row i sits at position past + i and may look at keys 0 .. past + i
    query_pos = past + np.arange(T)[:, None]
    key_pos = np.arange(past + T)[None, :]
    scores = np.where(key_pos <= query_pos, scores, -np.inf)
    y = softmax(scores) @ v  # [H, T, D]
    y = y.transpose(1, 0, 2).reshape(T, E)
    return y @ w[prefix + "attn.c_proj.weight"] + w[prefix + "attn.c_proj.bias"]


def mlp(x, w, prefix, cfg):
    h = gelu(x @ w[prefix + "mlp.c_fc.weight"] + w[prefix + "mlp.c_fc.bias"], cfg.gelu)
    return h @ w[prefix + "mlp.c_proj.weight"] + w[prefix + "mlp.c_proj.bias"]


def block(x, w, i, cfg, cache):
    prefix = f"h.{i}."
    eps = cfg.layer_norm_epsilon
    x = x + attention(layer_norm(x, w[prefix + "ln_1.weight"], w[prefix + "ln_1.bias"], eps), w, prefix, cfg, cache)
    x = x + mlp(layer_norm(x, w[prefix + "ln_2.weight"], w[prefix + "ln_2.bias"], eps), w, prefix, cfg)
    return x


class KVCacheModel:
    """Incremental decoding: feed tokens (a prompt, then one at a time), get their logits.

    Its logits equal forward() on the whole sequence so far (tests check it).
    """

    def __init__(self, weights, cfg: GPT2Config, dtype=np.float32):
        self.cfg = cfg
        self.dtype = dtype
        self.w = {name: array.astype(dtype, copy=False) for name, array in weights.items()}
        # transformers uses a stored lm_head.weight when present, else the tied wte
        self.lm_head = self.w.get("lm_head.weight", self.w["wte.weight"])
        self.reset()

    def reset(self):
        H, D = self.cfg.n_head, self.cfg.head_dim
        empty = np.zeros((H, 0, D), dtype=self.dtype)
        self.cache = [{"k": empty, "v": empty} for _ in range(self.cfg.n_layer)]
        self.pos = 0

    def feed(self, ids) -> np.ndarray:
        """Append tokens; returns their logits [len(ids), vocab] (float32)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        cfg, w = self.cfg, self.w
        if len(ids) == 0:
            raise ValueError("no tokens to feed")
        if self.pos + len(ids) > cfg.n_positions:
            raise ValueError(
                f"sequence of {self.pos + len(ids)} tokens exceeds the context ({cfg.n_positions})"
            )
        if ids.min() < 0 or ids.max() >= cfg.vocab_size:
            raise ValueError(f"token id out of range [0, {cfg.vocab_size})")
        positions = np.arange(self.pos, self.pos + len(ids))
        x = w["wte.weight"][ids] + w["wpe.weight"][positions]
        for i in range(cfg.n_layer):
            x = block(x, w, i, cfg, self.cache[i])
        x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], cfg.layer_norm_epsilon)
        self.pos += len(ids)
        return (x @ self.lm_head.T).astype(np.float32)


def new_kv_model(weights, cfg, dtype=np.float32):
    """The KV-cache model for this config: KVCacheModel (GPT-2) or LlamaKVCacheModel."""
    if isinstance(cfg, LlamaConfig):
        return LlamaKVCacheModel(weights, cfg, dtype)
    return KVCacheModel(weights, cfg, dtype)


def forward(weights, cfg, ids, dtype=np.float32) -> np.ndarray:
    """Logits [T, vocab] for every position of ids (a full causal recompute)."""
    return new_kv_model(weights, cfg, dtype).feed(ids)


def greedy(weights, cfg, prompt_ids, n_new, dtype=np.float32):
    """Greedy decoding with the KV cache -> (new ids, logits [n_new, vocab] each was chosen from)."""
    model = new_kv_model(weights, cfg, dtype)
    logits = model.feed(prompt_ids)[-1]
    new_ids, step_logits = [], []
    for step in range(n_new):
        next_id = int(np.argmax(logits))  # first maximum on ties, as torch.argmax
        new_ids.append(next_id)
        step_logits.append(logits)
        if step + 1 < n_new:
            logits = model.feed([next_id])[-1]
    return new_ids, np.array(step_logits, dtype=np.float32).reshape(n_new, cfg.vocab_size)


# ---------------------------------------------------------------------------------------------
# command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face folder (GPT-2, llama, mistral, qwen2, qwen3)")
    parser.add_argument("--prompt-ids", required=True, help="comma-separated token ids, e.g. 1,2,3")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--dump-logits", metavar="FILE.npy", help="write float32 [new_tokens, vocab]")
    parser.add_argument("--float64", action="store_true", help="compute in float64")
    args = parser.parse_args(argv)

    try:
        try:
            prompt_ids = [int(s) for s in args.prompt_ids.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--prompt-ids must be comma-separated integers, got {args.prompt_ids!r}") from None
        if not prompt_ids:
            raise ValueError("--prompt-ids is empty")
        if args.max_new_tokens < 0:
            raise ValueError("--max-new-tokens must be >= 0")
        cfg, weights = load_hf_folder(args.model)
        if len(prompt_ids) + max(args.max_new_tokens - 1, 0) > cfg.n_positions:
            raise ValueError(
                f"prompt ({len(prompt_ids)}) + new tokens ({args.max_new_tokens}) exceed the "
                f"context of {cfg.n_positions}"
            )
        bad = [i for i in prompt_ids if not 0 <= i < cfg.vocab_size]
        if bad:
            raise ValueError(f"prompt ids {bad[:5]} are outside the vocabulary [0, {cfg.vocab_size})")
        dtype = np.float64 if args.float64 else np.float32
        new_ids, logits = greedy(weights, cfg, prompt_ids, args.max_new_tokens, dtype)
    except (ValueError, OSError) as e:  # ModelFormatError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.dump_logits:
        np.save(args.dump_logits, logits)
    if args.json:
        print(json.dumps({"prompt_ids": prompt_ids, "tokens": new_ids}))
    else:
        print(",".join(str(i) for i in new_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
