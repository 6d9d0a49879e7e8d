"""The models, as the GPU runs them: GPT-2 and the Llama family, each forward pass in a few lines,
in the spirit of nanoGPT's model.py.

    GPT-2                                                    kernels
    x = wte[ids] + wpe[pos]                                  embedding.wgsl
    for each block:
        q, k, v = LayerNorm_1(x) @ W_attn + b                linear.wgsl (k, v go to the KV cache;
                                                             layer_norm.wgsl in prefill)
        x = x + attention(q, K cache, V cache) @ W_proj + b  attention.wgsl, linear.wgsl
        x = x + gelu(LayerNorm_2(x) @ W_fc + b) @ W_mlp + b  linear.wgsl
    logits = LayerNorm_f(x[-1]) @ wte.T                      lm_head.wgsl
    top k of logits, log-sum-exp                             topk.wgsl

    Llama, Mistral, Qwen2, Qwen3
    x = embed[ids]                                           embedding.wgsl
    for each block:
        q, k, v = RMSNorm_1(x) @ [Wq; Wk; Wv].T (+ b)        linear.wgsl (rmsnorm.wgsl in prefill)
        q, k = rope(norm_qk(q, k), pos); k, v -> KV cache    rope.wgsl (Qwen3's per-head norms)
        x = x + attention(q, K cache, V cache) @ Wo.T (+ b)  attention.wgsl (grouped KV heads), linear.wgsl
        g, u = RMSNorm_2(x) @ [Wgate; Wup].T (+ b)           linear.wgsl
        x = x + (silu(g) * u) @ Wdown.T (+ b)                swiglu.wgsl (fused into the GEMV in decode)
    logits = RMSNorm_f(x[-1]) @ head.T                       lm_head.wgsl
    top k of logits, log-sum-exp                             topk.wgsl

This module is pure Python: it says which kernels run over which buffers in which order (lists of
Dispatch values, app/kernels.py) and which buffers exist (app/buffer_plan.py, app/graph.py).
app/runner.py puts that on the GPU: it allocates the buffers, uploads the weights, builds the
pipelines once and replays a decode step as one prepared list of dispatches.

A prompt is prefilled in chunks (tiled matrix products, one norm dispatch each, flash-attention-style
tiles on a GPU); every generated token is one decode step over the KV cache (matrix-vector products
with the norms fused in; on a GPU the attention is split over blocks of 64 cache positions that the
next projection merges as it reads them). A CPU adapter (SwiftShader) gets barrier-free variants of
the same kernels (app/shapes.py).

Weights stay in the format they are stored in (app/weights.py): matrices are read by the kernels as
f32, f16 or bf16 (widened to f32 in registers, exactly for bf16), or as GGUF's blocks and k-quant
super-blocks (app/weights.py BLOCK_FORMATS; dequantized in registers). A GGUF may mix formats, so each
Llama matrix has its own (`self.fmt(name)`); a fused q|k|v or gate|up whose parts are stored in
different formats (llama.cpp's Q4_K_M: attn_v in Q6_K in some layers) is one GPU matrix and dispatch
per run of parts of one format, each writing its columns of the shared output (`fused_weights`). The
small vectors (biases, norms) are f32. Every projection runs on linear.wgsl, which reads W as
nn.Linear's [out, in], one contiguous row per output: the Llama family's matrices as the checkpoint
stores them, GPT-2's Conv1D [in, out] transposed while loading (shaders/transpose.wgsl). A decode
GEMV reads each output's row front to back, which a GPU's warps and a CPU adapter's one invocation
per row both stream far faster than the columns of [in, out] (BENCH.md).
"""

from __future__ import annotations

import math
import struct

from .config import GPT2Config
from .config_llama import LlamaConfig
from .errors import ModelError
from .graph import ModelGraph, buffer, matrix, vector
from .kernels import Kernels
from .rope import rope_frequencies
from .shapes import KernelShapes

DEFAULT_CONTEXT = 2048  # the Llama family's default KV cache (their configs allow 32k-128k)


def conv1d(name: str, K: int, N: int, dtype: str):
    """A Conv1D weight, [K, N] (in, out) in the file, as the GPU keeps it: [N, K], transposed on load."""
    return matrix(name, N, K, dtype, transposed=True)


class GPT2(ModelGraph):
    """GPT-2's forward pass for one config on one adapter: weights, buffers and dispatches."""

    def __init__(self, cfg: GPT2Config, shapes: KernelShapes, limits: dict, *, matrix_dtype: str,
                 separate_head: bool = False, context: int | None = None):
        """`matrix_dtype`: how the matrices sit on the GPU (app/weights.matrix_dtype); `separate_head`:
        the file has its own lm_head.weight (else the head is the token table); `context`: fewer
        positions than the model's n_positions (a smaller KV cache)."""
        check_gpt2_shapes(cfg)
        self.cfg, self.shapes, self.limits, self.dtype = cfg, shapes, limits, matrix_dtype
        self.notices: list[str] = []
        want = max(1, min(cfg.n_positions, context or cfg.n_positions))
        self.n_ctx = self.fit_context(want, self._kernels)
        if self.n_ctx < cfg.n_positions and (context is None or context > self.n_ctx):
            self.notices.append(f"context limited to {self.n_ctx} tokens by this GPU's workgroup memory")
        self.chunk = max(1, min(shapes.prefill_chunk, self.n_ctx))
        self.k = self._kernels(self.n_ctx)
        self.split_attention = shapes.split_attention and not shapes.cpu
        self.tiled_attention = shapes.tiled_attention and not shapes.cpu and self.k.tiles_fit(self.workgroup_limit)
        self.token_tables("wte.weight", "lm_head.weight" if separate_head else None, cfg.vocab_size, cfg.n_embd)
        self.weights = self._weights()
        self.buffers = self._buffers()
        self.prefill = self.forward_prefill()
        self.decode = self.forward_decode()
        self.tail = self.head("ln_f.weight", "ln_f.bias")

    def forward_prefill(self) -> list:
        """The prompt rows of one chunk through every block (their K and V go to the cache)."""
        k, C, M = self.k, self.cfg.n_embd, self.cfg.d_mlp
        steps = [prefill for prefill, _ in self.embedding(positions="wpe.weight")]
        for i in range(self.cfg.n_layer):
            h, kv = f"h.{i}.", f"kv_cache[{i}]"
            steps += [
                k.layer_norm("layer_norm_1", step="step", x="x", gamma=h + "ln_1.weight", beta=h + "ln_1.bias", y="xn"),
                *k.linear("qkv", C, 3 * C, "qkv", step="step", x="xn", w=h + "attn.c_attn.weight",
                          bias=h + "attn.c_attn.bias", y="q", kv=kv),
                k.attention_prefill(self.tiled_attention, step="step", q="q", kv=kv, y="att"),
                *k.linear("attn_proj", C, C, "residual", step="step", x="att", w=h + "attn.c_proj.weight",
                          bias=h + "attn.c_proj.bias", y="x"),
                k.layer_norm("layer_norm_2", step="step", x="x", gamma=h + "ln_2.weight", beta=h + "ln_2.bias", y="xn"),
                *k.linear("mlp_fc", C, M, self.gelu, step="step", x="xn", w=h + "mlp.c_fc.weight",
                          bias=h + "mlp.c_fc.bias", y="h"),
                *k.linear("mlp_proj", M, C, "residual", step="step", x="h", w=h + "mlp.c_proj.weight",
                          bias=h + "mlp.c_proj.bias", y="x", scratch=self.scratch(M)),
            ]
        return steps

    def forward_decode(self) -> list:
        """One new token through every block, its LayerNorms fused into the projections after them."""
        k, C, M = self.k, self.cfg.n_embd, self.cfg.d_mlp
        att_out = "attention blocks" if self.split_attention else "att"
        steps = [decode for _, decode in self.embedding(positions="wpe.weight")]
        for i in range(self.cfg.n_layer):
            h, kv = f"h.{i}.", f"kv_cache[{i}]"
            ln_1, norm_1 = self.norm_input("layer_norm_1", h + "ln_1.weight", h + "ln_1.bias")
            ln_2, norm_2 = self.norm_input("layer_norm_2", h + "ln_2.weight", h + "ln_2.bias")
            steps += [
                *ln_1,
                k.linear_gemv(self.fused_name("ln_1", "qkv"), C, 3 * C, "qkv", step="step", w=h + "attn.c_attn.weight",
                              bias=h + "attn.c_attn.bias", y="q", kv=kv, **norm_1),
                k.attention_decode(self.split_attention, step="step", q="q", kv=kv, y=att_out),
                k.linear_gemv("attn_proj", C, C, "residual", att_input=self.split_attention, step="step", x=att_out,
                              w=h + "attn.c_proj.weight", bias=h + "attn.c_proj.bias", y="x"),
                *ln_2,
                k.linear_gemv(self.fused_name("ln_2", "mlp_fc"), C, M, self.gelu, step="step", w=h + "mlp.c_fc.weight",
                              bias=h + "mlp.c_fc.bias", y="h", **norm_2),
                k.linear_gemv("mlp_proj", M, C, "residual", step="step", x="h", w=h + "mlp.c_proj.weight",
                              bias=h + "mlp.c_proj.bias", y="x"),
            ]
        return steps

    @property
    def gelu(self) -> str:
        return {"tanh": "gelu_tanh", "erf": "gelu_erf"}[self.cfg.gelu]

    def _kernels(self, n_ctx: int) -> Kernels:
        cfg = self.cfg
        return Kernels(self.shapes, self.dtype, C=cfg.n_embd, n_head=cfg.n_head, head_dim=cfg.head_dim, n_ctx=n_ctx,
                       eps=cfg.layer_norm_epsilon)

    def _weights(self) -> list:
        cfg, dt = self.cfg, self.dtype
        C, M = cfg.n_embd, cfg.d_mlp
        out = self.table_weights() + [matrix("wpe.weight", cfg.n_positions, C, dt)]
        for i in range(cfg.n_layer):
            h = f"h.{i}."
            out += [vector(h + "ln_1.weight", C), vector(h + "ln_1.bias", C),
                    conv1d(h + "attn.c_attn.weight", C, 3 * C, dt), vector(h + "attn.c_attn.bias", 3 * C),
                    conv1d(h + "attn.c_proj.weight", C, C, dt), vector(h + "attn.c_proj.bias", C),
                    vector(h + "ln_2.weight", C), vector(h + "ln_2.bias", C),
                    conv1d(h + "mlp.c_fc.weight", C, M, dt), vector(h + "mlp.c_fc.bias", M),
                    conv1d(h + "mlp.c_proj.weight", M, C, dt), vector(h + "mlp.c_proj.bias", C)]
        return out + [vector("ln_f.weight", C), vector("ln_f.bias", C)]

    def _buffers(self) -> list:
        cfg, R = self.cfg, self.chunk
        C, M, NH, HD = cfg.n_embd, cfg.d_mlp, cfg.n_head, cfg.head_dim
        # K and V caches of each layer: [2, n_head, n_ctx, head_dim] f32
        out = [buffer(f"kv_cache[{i}]", 2 * NH * self.n_ctx * HD * 4, kind="kv_cache") for i in range(cfg.n_layer)]
        out += [buffer("x", R * C * 4), buffer("xn", R * C * 4), buffer("q", R * C * 4), buffer("att", R * C * 4),
                buffer("h", R * M * 4)]
        out += self.scratch_buffers(C, M)
        if self.split_attention:
            out.append(buffer("attention blocks", NH * self.k.att_splits * (HD + 2) * 4))
        return out + self.io_buffers()


class Llama(ModelGraph):
    """The Llama family's forward pass (llama, mistral, qwen2, qwen3) for one config on one adapter."""

    def __init__(self, cfg: LlamaConfig, shapes: KernelShapes, limits: dict, *, matrix_dtype: str,
                 separate_head: bool = False, context: int | None = None, formats: dict | None = None):
        """As GPT2's; `context` defaults to DEFAULT_CONTEXT (at most max_position_embeddings);
        `formats`: weight label (or tensor name) -> its format where it is not `matrix_dtype` (a GGUF's
        matrices stay as the file stores them: app/gguf_load.py weight_formats)."""
        check_llama_shapes(cfg)
        self.cfg, self.shapes, self.limits, self.dtype = cfg, shapes, limits, matrix_dtype
        self.formats = dict(formats or {})
        self.notices: list[str] = []
        want = max(1, min(cfg.max_position_embeddings, context or DEFAULT_CONTEXT))
        self.n_ctx = self.fit_context(want, self._kernels)
        if context is not None and context > self.n_ctx:
            self.notices.append(f"context limited to {self.n_ctx} tokens (asked for {context})")
        cfg.check_context(self.n_ctx)  # a sliding window shorter than the context is refused
        self.chunk = max(1, min(shapes.prefill_chunk, self.n_ctx))
        self.k = self._kernels(self.n_ctx)
        self.split_attention = shapes.split_attention and not shapes.cpu
        self.tiled_attention = shapes.tiled_attention and not shapes.cpu and self.k.tiles_fit(self.workgroup_limit)
        self.token_tables("model.embed_tokens.weight", "lm_head.weight" if separate_head else None, cfg.vocab_size,
                          cfg.hidden_size)
        self.weights = self._weights()
        self.buffers = self._buffers()
        self.prefill = self.forward_prefill()
        self.decode = self.forward_decode()
        self.tail = self.head("model.norm.weight", rms=True)

    def forward_prefill(self) -> list:
        """The prompt rows of one chunk through every block (their K and V go to the cache)."""
        k, cfg = self.k, self.cfg
        E, M, Q = cfg.hidden_size, cfg.intermediate_size, cfg.q_size
        steps = [prefill for prefill, _ in self.embedding()]
        for i in range(cfg.num_hidden_layers):
            L, kv = self.layer(i), f"kv_cache[{i}]"
            steps += [
                k.rms_norm("rms_norm_1", step="step", x="x", w=L["input_norm"], y="xn"),
                *self.projection(k.linear, "qkv", E, L["qkv"], "store", step="step", x="xn", bias=L["qkv_bias"],
                                 y="qkv"),
                k.rope(cfg.qk_norm, step="step", qkv="qkv", q="q", kv=kv, rope_table="rope.cos_sin",
                       q_norm_w=L["q_norm"], k_norm_w=L["k_norm"]),
                k.attention_prefill(self.tiled_attention, step="step", q="q", kv=kv, y="att"),
                *k.linear("o_proj", Q, E, "residual", self.fmt(L["o"]), step="step", x="att", w=L["o"],
                          bias=L["o_bias"], y="x", scratch=self.scratch(Q)),
                k.rms_norm("rms_norm_2", step="step", x="x", w=L["post_norm"], y="xn"),
                *self.projection(k.linear, "gate_up", E, L["gate_up"], "store", step="step", x="xn",
                                 bias=L["gate_up_bias"], y="gu"),
                k.swiglu(M, step="step", gu="gu", h="h"),
                *k.linear("down", M, E, "residual", self.fmt(L["down"]), step="step", x="h", w=L["down"],
                          bias=L["down_bias"], y="x", scratch=self.scratch(M)),
            ]
        return steps

    def forward_decode(self) -> list:
        """One new token through every block: the RMSNorms fused into the projections after them,
        the attention merged by o_proj as it reads it, silu(gate) * up computed by the gate|up GEMV."""
        k, cfg = self.k, self.cfg
        E, M, Q = cfg.hidden_size, cfg.intermediate_size, cfg.q_size
        att_out = "attention blocks" if self.split_attention else "att"
        steps = [decode for _, decode in self.embedding()]
        for i in range(cfg.num_hidden_layers):
            L, kv = self.layer(i), f"kv_cache[{i}]"
            norm_steps, norm = self.norm_input("rms_norm_1", L["input_norm"])
            steps += [
                *norm_steps,
                *self.projection(k.linear_gemv, self.fused_name("rms_norm_1", "qkv"), E, L["qkv"], "store",
                                 step="step", bias=L["qkv_bias"], y="qkv", **norm),
                k.rope(cfg.qk_norm, step="step", qkv="qkv", q="q", kv=kv, rope_table="rope.cos_sin",
                       q_norm_w=L["q_norm"], k_norm_w=L["k_norm"]),
                k.attention_decode(self.split_attention, step="step", q="q", kv=kv, y=att_out),
                k.linear_gemv("o_proj", Q, E, "residual", self.fmt(L["o"]), att_input=self.split_attention,
                              step="step", x=att_out, w=L["o"], bias=L["o_bias"], y="x"),
                *self.gate_up_decode(L),
                k.linear_gemv("down", M, E, "residual", self.fmt(L["down"]), step="step", x="h", w=L["down"],
                              bias=L["down_bias"], y="x"),
            ]
        return steps

    def projection(self, run, name: str, K: int, label: str, out: str, **buffers) -> list:
        """X @ W^T of the fused matrix `label` (q|k|v or gate|up) by `run` (Kernels.linear or
        linear_gemv): one dispatch, or one per part stored in its own format (self.fused), each
        writing its columns of the same output."""
        parts = self.fused[label]
        cols = sum(w.rows for w, _ in parts)
        steps = []
        for w, col0 in parts:
            more = dict(y_cols=cols, y_col0=col0) if len(parts) > 1 else {}
            d = run(name, K, w.rows, out, w.dtype, w=w.label, **more, **buffers)
            steps += d if isinstance(d, list) else [d]
        return steps

    def gate_up_decode(self, L: dict) -> list:
        """h = silu(gate) * up of the decode row: computed by the gate|up GEMV itself, or, when gate
        and up are stored in different formats, by swiglu.wgsl after one GEMV per format."""
        k, E, M = self.k, self.cfg.hidden_size, self.cfg.intermediate_size
        norm_steps, norm = self.norm_input("rms_norm_2", L["post_norm"])
        norm.update(step="step", bias=L["gate_up_bias"])
        name = self.fused_name("rms_norm_2", "gate_up")
        parts = self.fused[L["gate_up"]]
        if len(parts) == 1:
            w, _ = parts[0]
            return [*norm_steps, k.linear_gemv(name, E, M, "swiglu", w.dtype, w=w.label, y="h", **norm)]
        return [*norm_steps, *self.projection(k.linear_gemv, name, E, L["gate_up"], "store", y="gu", **norm),
                k.swiglu(M, step="step", gu="gu", h="h")]

    def fused_weights(self, label: str, sources: tuple, rows: tuple, cols: int, names: tuple, pattern: str) -> list:
        """The GPU matrices of a fused matrix (q|k|v, gate|up) of the tensors `sources` ([rows[i],
        cols] each), with the first output column each writes: [(WeightSpec, col0)]. One matrix
        `label` when the parts share a format; else one per run of consecutive parts of one format
        (llama.cpp's Q4_K_M keeps some layers' attn_v in Q6_K, their q and k in Q4_K), labelled
        `pattern` with the names of its parts (...self_attn.q_k_proj.weight, ...self_attn.v_proj.weight)."""
        kinds = [self.fmt(s) for s in sources]
        if label in self.formats or len(set(kinds)) == 1:
            return [(matrix(label, sum(rows), cols, self.formats.get(label, kinds[0]), sources), 0)]
        parts, start = [], 0
        for end in range(1, len(sources) + 1):
            if end == len(sources) or kinds[end] != kinds[start]:
                n = sum(rows[start:end])
                col0 = sum(rows[:start])
                part = matrix(pattern.format("_".join(names[start:end])), n, cols, kinds[start], sources[start:end])
                parts.append((part, col0))
                start = end
        return parts

    # ------------------------------------------------------------------------ what it runs on
    @property
    def qkv_width(self) -> int:
        return self.cfg.q_size + 2 * self.cfg.kv_size

    def layer(self, i: int) -> dict:
        """Buffer labels of block i (None where the family has no such weight)."""
        cfg, p = self.cfg, f"model.layers.{i}."
        return {
            "input_norm": p + "input_layernorm.weight", "post_norm": p + "post_attention_layernorm.weight",
            "qkv": p + "self_attn.qkv_proj.weight", "qkv_bias": p + "self_attn.qkv_proj.bias" if cfg.qkv_bias else None,
            "q_norm": p + "self_attn.q_norm.weight" if cfg.qk_norm else None,
            "k_norm": p + "self_attn.k_norm.weight" if cfg.qk_norm else None,
            "o": p + "self_attn.o_proj.weight", "o_bias": p + "self_attn.o_proj.bias" if cfg.o_proj_bias else None,
            "gate_up": p + "mlp.gate_up_proj.weight",
            "gate_up_bias": p + "mlp.gate_up_proj.bias" if cfg.mlp_bias else None,
            "down": p + "mlp.down_proj.weight", "down_bias": p + "mlp.down_proj.bias" if cfg.mlp_bias else None,
        }

    def _kernels(self, n_ctx: int) -> Kernels:
        cfg = self.cfg
        return Kernels(self.shapes, self.dtype, C=cfg.hidden_size, n_head=cfg.num_attention_heads,
                       head_dim=cfg.head_dim, n_ctx=n_ctx, eps=cfg.rms_norm_eps, kv_heads=cfg.num_key_value_heads,
                       workgroup_limit=self.workgroup_limit)

    def _weights(self) -> list:
        cfg = self.cfg
        E, M, D, Q, KV = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim, cfg.q_size, cfg.kv_size
        out = self.table_weights()
        self.fused = {}  # fused matrix label -> [(WeightSpec, first output column)]: see fused_weights
        for i in range(cfg.num_hidden_layers):
            p, L = f"model.layers.{i}.", self.layer(i)
            qkv = tuple(p + f"self_attn.{n}_proj.weight" for n in "qkv")
            gate_up = (p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight")
            self.fused[L["qkv"]] = self.fused_weights(L["qkv"], qkv, (Q, KV, KV), E, ("q", "k", "v"),
                                                      p + "self_attn.{}_proj.weight")
            self.fused[L["gate_up"]] = self.fused_weights(L["gate_up"], gate_up, (M, M), E, ("gate", "up"),
                                                          p + "mlp.{}_proj.weight")
            out += [vector(L["input_norm"], E), *(w for w, _ in self.fused[L["qkv"]])]
            if cfg.qkv_bias:
                out.append(vector(L["qkv_bias"], self.qkv_width, tuple(p + f"self_attn.{n}_proj.bias" for n in "qkv")))
            if cfg.qk_norm:
                out += [vector(L["q_norm"], D), vector(L["k_norm"], D)]
            out.append(matrix(L["o"], E, Q, self.fmt(L["o"])))
            if cfg.o_proj_bias:
                out.append(vector(L["o_bias"], E))
            out += [vector(L["post_norm"], E), *(w for w, _ in self.fused[L["gate_up"]]),
                    matrix(L["down"], E, M, self.fmt(L["down"]))]
            if cfg.mlp_bias:
                out += [vector(L["gate_up_bias"], 2 * M, (p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias")),
                        vector(L["down_bias"], E, (p + "mlp.down_proj.bias",))]
        out.append(vector("model.norm.weight", E))
        # cos and sin of every (position, frequency): [n_ctx, head_dim / 2] pairs
        out.append(matrix("rope.cos_sin", self.n_ctx, D, "F32"))
        return out

    def _buffers(self) -> list:
        cfg, R = self.cfg, self.chunk
        E, M, Q, KVH, HD = cfg.hidden_size, cfg.intermediate_size, cfg.q_size, cfg.num_key_value_heads, cfg.head_dim
        # K and V caches of each layer, the KV heads only: [2, kv_heads, n_ctx, head_dim] f32
        out = [buffer(f"kv_cache[{i}]", 2 * KVH * self.n_ctx * HD * 4, kind="kv_cache")
               for i in range(cfg.num_hidden_layers)]
        out += [buffer("x", R * E * 4), buffer("xn", R * E * 4), buffer("qkv", R * self.qkv_width * 4),
                buffer("q", R * Q * 4), buffer("att", R * Q * 4), buffer("gu", R * 2 * M * 4), buffer("h", R * M * 4)]
        out += self.scratch_buffers(E, Q, M)
        if self.split_attention:
            out.append(buffer("attention blocks", cfg.num_attention_heads * self.k.att_splits * (HD + 2) * 4))
        return out + self.io_buffers()

    def computed_tensors(self) -> dict:
        """The rotary table: for position p and frequency i, (cos, sin) of transformers' float32 angle
        p * inv_freq[i], rounded from f64 (see rope.wgsl for why not on the GPU)."""
        inv_freq, scaling = rope_frequencies(self.cfg)
        f32 = struct.Struct("<f")
        table = bytearray()
        for p in range(self.n_ctx):
            for inv in inv_freq:
                angle = f32.unpack(f32.pack(p * inv))[0]
                table += struct.pack("<ff", math.cos(angle) * scaling, math.sin(angle) * scaling)
        return {"rope.cos_sin": ComputedTensor("F32", (self.n_ctx, self.cfg.head_dim), bytes(table))}


class ComputedTensor:
    def __init__(self, dtype: str, shape: tuple, data: bytes):
        self.dtype, self.shape, self.data = dtype, shape, data


def check_gpt2_shapes(cfg: GPT2Config) -> None:
    """The kernels' own shape rules, checked before anything is downloaded or allocated."""
    if cfg.n_embd % 4:
        raise ModelError(f"n_embd={cfg.n_embd} is not a multiple of 4, which the kernels need")
    if cfg.head_dim > 256:
        raise ModelError(f"head size {cfg.head_dim} is over 256, the attention kernel's limit")
    if cfg.d_mlp % 4:
        raise ModelError(f"MLP width {cfg.d_mlp} is not a multiple of 4, which the kernels need")


def check_llama_shapes(cfg: LlamaConfig) -> None:
    for key, value in (("hidden_size", cfg.hidden_size), ("intermediate_size", cfg.intermediate_size),
                       ("head_dim", cfg.head_dim)):
        if value % 4:
            raise ModelError(f"{key}={value} is not a multiple of 4, which the kernels need")
    if cfg.head_dim > 256:
        raise ModelError(f"head_dim {cfg.head_dim} is over 256, the attention kernel's limit")


def model_graph(cfg, shapes: KernelShapes, limits: dict, **options) -> ModelGraph:
    """The graph of a config's family (GPT2Config or LlamaConfig)."""
    if isinstance(cfg, LlamaConfig):
        return Llama(cfg, shapes, limits, **options)
    return GPT2(cfg, shapes, limits, **options)
