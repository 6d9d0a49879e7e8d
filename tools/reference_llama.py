"""A plain numpy Llama-family forward pass (llama, mistral, qwen2, qwen3): the oracle for those models.

tools/reference.py loads the folder and picks this model for a LlamaConfig; this file is only the
math, written to follow transformers' modeling_llama.py / modeling_qwen3.py line by line:

    x = embed_tokens[ids]
    per layer:
        h = RMSNorm(x) * input_layernorm                     (mean of squares, + eps, rsqrt)
        q, k, v = h Wq^T (+ bq), h Wk^T (+ bk), h Wv^T (+ bv)  split into heads of head_dim
        q, k = RMSNorm per head * q_norm, k_norm             (qwen3 only, before the rotation)
        q, k = q cos + rotate_half(q) sin, ...               (half-split layout: dims i and i + D/2)
        append k, v to the cache (KV heads only)
        each group of num_attention_heads / num_key_value_heads query heads attends, causally,
        to its KV head (repeat_kv), scores scaled by head_dim ** -0.5
        x = x + attn Wo^T (+ bo)
        h = RMSNorm(x) * post_attention_layernorm
        x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T               (+ biases with mlp_bias)
    logits = (RMSNorm(x) * norm) lm_head^T                   (lm_head.weight when stored, else embed_tokens)

It computes in float32 like transformers' float32 models, or float64 on request. Either way the rotary
angles are transformers' own: float32(position) * inv_freq as one float32 product, with inv_freq
from app/rope.py (transformers' float32 values); cos and sin are then taken in the compute dtype.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.rope import rope_frequencies  # noqa: E402


def rms_norm(x, weight, eps):
    variance = (x * x).mean(axis=-1, keepdims=True)
    return weight * (x * (1.0 / np.sqrt(variance + eps)))  # x * rsqrt(mean(x^2) + eps), as torch


def silu(x):
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x << 0, and x / inf is the right 0
        return x / (1.0 + np.exp(-x))


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


class LlamaKVCacheModel:
    """Incremental decoding of a Llama-family model: feed tokens, get their logits.

    weights: HF name -> array (app/config.py's match_tensors names); cfg: a LlamaConfig.
    Its logits equal a full recompute of the whole sequence so far (tests check it).
    """

    def __init__(self, weights, cfg, dtype=np.float32):
        self.cfg = cfg
        self.dtype = dtype
        self.w = {name: array.astype(dtype, copy=False) for name, array in weights.items()}
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        inv_freq, self.attention_scaling = rope_frequencies(cfg)
        self.inv_freq = np.array(inv_freq, dtype=np.float32)
        self.reset()

    def reset(self):
        empty = np.zeros((self.cfg.num_key_value_heads, 0, self.cfg.head_dim), dtype=self.dtype)
        self.cache = [{"k": empty, "v": empty} for _ in range(self.cfg.num_hidden_layers)]
        self.pos = 0

    def rotary(self, positions):
        """cos, sin [T, head_dim] for these positions, as LlamaRotaryEmbedding makes them."""
        angles = positions.astype(np.float32)[:, None] * self.inv_freq[None, :]  # one float32 product
        angles = np.concatenate([angles, angles], axis=-1).astype(self.dtype)
        return np.cos(angles) * self.attention_scaling, np.sin(angles) * self.attention_scaling

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        bias = self.w.get(name + ".bias")
        return y if bias is None else y + bias

    def attention(self, x, i, cos, sin):
        cfg, w, cache = self.cfg, self.w, self.cache[i]
        p = f"model.layers.{i}.self_attn."
        T, H, KV, D = x.shape[0], cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = self.linear(x, p + "q_proj").reshape(T, H, D)
        k = self.linear(x, p + "k_proj").reshape(T, KV, D)
        v = self.linear(x, p + "v_proj").reshape(T, KV, D)
        if cfg.qk_norm:
            q = rms_norm(q, w[p + "q_norm.weight"], cfg.rms_norm_eps)
            k = rms_norm(k, w[p + "k_norm.weight"], cfg.rms_norm_eps)
        q, k, v = (m.transpose(1, 0, 2) for m in (q, k, v))  # [heads, T, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin

        past = cache["k"].shape[1]
        k = cache["k"] = np.concatenate([cache["k"], k], axis=1)  # [KV, past + T, D]
        v = cache["v"] = np.concatenate([cache["v"], v], axis=1)

        groups = q.reshape(KV, H // KV, T, D)  # query head h uses KV head h // (H / KV): repeat_kv
        scores = (groups @ k[:, None].transpose(0, 1, 3, 2)) * (D ** -0.5)  # [KV, H/KV, T, past + T]
        query_pos = past + np.arange(T)[:, None]
        key_pos = np.arange(past + T)[None, :]
        scores = np.where(key_pos <= query_pos, scores, -np.inf)
        y = softmax(scores) @ v[:, None]  # [KV, H/KV, T, D]
        y = y.reshape(H, T, D).transpose(1, 0, 2).reshape(T, H * D)
        return self.linear(y, p + "o_proj")

    def mlp(self, x, i):
        p = f"model.layers.{i}.mlp."
        return self.linear(silu(self.linear(x, p + "gate_proj")) * self.linear(x, p + "up_proj"), p + "down_proj")

    def feed(self, ids) -> np.ndarray:
        """Append tokens; returns their logits [len(ids), vocab] (float32)."""
        cfg, w = self.cfg, self.w
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            raise ValueError("no tokens to feed")
        end = self.pos + len(ids)
        if end > cfg.max_position_embeddings:
            raise ValueError(f"sequence of {end} tokens exceeds the context ({cfg.max_position_embeddings})")
        cfg.check_context(end)  # windowed attention would differ past the window: not modelled
        if ids.min() < 0 or ids.max() >= cfg.vocab_size:
            raise ValueError(f"token id out of range [0, {cfg.vocab_size})")
        cos, sin = self.rotary(np.arange(self.pos, end))
        x = w["model.embed_tokens.weight"][ids]
        eps = cfg.rms_norm_eps
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            x = x + self.attention(rms_norm(x, w[p + "input_layernorm.weight"], eps), i, cos, sin)
            x = x + self.mlp(rms_norm(x, w[p + "post_attention_layernorm.weight"], eps), i)
        x = rms_norm(x, w["model.norm.weight"], eps)
        self.pos = end
        return (x @ self.lm_head.T).astype(np.float32)

