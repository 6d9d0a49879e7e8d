"""GPT-2 on WebGPU: the forward pass as the GPU runs it, in the spirit of nanoGPT's model.py.

    x = wte[ids] + wpe[pos]                                  embedding.wgsl
    for each block:
        q, k, v = LayerNorm_1(x) @ W_attn + b                matmul.wgsl (k, v go to the KV cache)
        x = x + attention(q, K cache, V cache) @ W_proj + b  attention.wgsl, matmul.wgsl
        x = x + gelu(LayerNorm_2(x) @ W_fc + b) @ W_mlp + b  matmul.wgsl
    logits = LayerNorm_f(x[-1]) @ wte.T                      lm_head.wgsl
    top k of logits, log-sum-exp                             topk.wgsl

This module is pure Python: it says which kernels run over which buffers in which order (lists of
Dispatch values, app/kernels.py) and which buffers exist (app/buffer_plan.py). app/runner.py puts
that on the GPU: it allocates the buffers, uploads the weights, builds the pipelines once and
replays a decode step as one prepared list of dispatches.

A prompt is prefilled in chunks (the tiled matmul, one LayerNorm dispatch each, flash-attention-
style tiles on a GPU); every generated token is one decode step over the KV cache (matrix-vector
products with the LayerNorm fused in; on a GPU the attention is split over blocks of 64 cache
positions that the projection merges as it reads them: 5 dispatches per block). A CPU adapter
(SwiftShader) gets barrier-free variants of the same kernels (app/shapes.py).

Weights stay in the dtype they are stored in (app/weights.py): matrices are read by the kernels as
f32, f16 or bf16 (widened to f32 in registers); the small vectors (biases, LayerNorm) are f32.
"""

from __future__ import annotations

from .buffer_plan import BufferSpec, WeightSpec, split_rows
from .config import GPT2Config
from .contract import TOPK_OUTPUT_MAX_BYTES, TOPK_PARTIAL_WORDS, buffer_size, step_bytes, topk_groups
from .errors import ModelError
from .kernels import Kernels, cdiv
from .shapes import KernelShapes
from .weights import dtype_bytes


class GPT2:
    """GPT-2's forward pass for one config on one adapter: weights, buffers and dispatches."""

    def __init__(self, cfg: GPT2Config, shapes: KernelShapes, limits: dict, *, matrix_dtype: str,
                 separate_head: bool = False, context: int | None = None):
        """`matrix_dtype`: how the matrices sit on the GPU (app/weights.matrix_dtype); `separate_head`:
        the file has its own lm_head.weight (else the head is the token table); `context`: fewer
        positions than the model's n_positions (a smaller KV cache)."""
        check_shapes(cfg)
        self.cfg, self.shapes, self.limits, self.dtype = cfg, shapes, limits, matrix_dtype
        self.notices: list[str] = []
        self.n_ctx = self._context(context)
        self.chunk = max(1, min(shapes.prefill_chunk, self.n_ctx))
        self.k = self._kernels(self.n_ctx)
        wg_limit = int(limits.get("maxComputeWorkgroupStorageSize", 16384))
        self.split_attention = shapes.split_attention and not shapes.cpu
        self.tiled_attention = shapes.tiled_attention and not shapes.cpu and self.k.tiles_fit(wg_limit)
        self.mlp_split = self.k.split_k(cfg.d_mlp)
        self.weights = self._weights(separate_head)
        self.buffers = self._buffers()
        self.prefill = self.forward_prefill()
        self.decode = self.forward_decode()
        self.tail = self.head()

    # ------------------------------------------------------------------------ the forward pass
    def forward_prefill(self) -> list:
        """The prompt rows of one chunk through every block (their K and V go to the cache)."""
        k, C, M = self.k, self.cfg.n_embd, self.cfg.d_mlp
        steps = [prefill for prefill, _ in self.embedding()]
        for i in range(self.cfg.n_layer):
            h = f"h.{i}."
            kv = f"kv_cache[{i}]"
            steps += [
                k.layer_norm("layer_norm_1", step="step", x="x", gamma=h + "ln_1.weight", beta=h + "ln_1.bias", y="xn"),
                *k.matmul("qkv", C, 3 * C, "qkv", step="step", x="xn", w=h + "attn.c_attn.weight",
                          bias=h + "attn.c_attn.bias", y="q", kv=kv),
                k.attention_prefill(self.tiled_attention, step="step", q="q", kv=kv, y="att"),
                *k.matmul("attn_proj", C, C, "residual", step="step", x="att", w=h + "attn.c_proj.weight",
                          bias=h + "attn.c_proj.bias", y="x"),
                k.layer_norm("layer_norm_2", step="step", x="x", gamma=h + "ln_2.weight", beta=h + "ln_2.bias", y="xn"),
                *k.matmul("mlp_fc", C, M, self.gelu, step="step", x="xn", w=h + "mlp.c_fc.weight",
                          bias=h + "mlp.c_fc.bias", y="h"),
                *k.matmul("mlp_proj", M, C, "residual", step="step", x="h", w=h + "mlp.c_proj.weight",
                          bias=h + "mlp.c_proj.bias", y="x", scratch="split-K partial sums" if self.mlp_split > 1 else None),
            ]
        return steps

    def forward_decode(self) -> list:
        """One new token through every block, its LayerNorms fused into the projections after them."""
        k, C, M = self.k, self.cfg.n_embd, self.cfg.d_mlp
        att_out = "attention blocks" if self.split_attention else "att"
        steps = [decode for _, decode in self.embedding()]
        for i in range(self.cfg.n_layer):
            h = f"h.{i}."
            kv = f"kv_cache[{i}]"
            steps += [
                k.gemv("ln_1+qkv", C, 3 * C, "qkv", ln_input=True, step="step", x="x", w=h + "attn.c_attn.weight",
                       bias=h + "attn.c_attn.bias", y="q", kv=kv, ln_gamma=h + "ln_1.weight", ln_beta=h + "ln_1.bias"),
                k.attention_decode(self.split_attention, step="step", q="q", kv=kv, y=att_out),
                k.gemv("attn_proj", C, C, "residual", att_input=self.split_attention, step="step", x=att_out,
                       w=h + "attn.c_proj.weight", bias=h + "attn.c_proj.bias", y="x"),
                k.gemv("ln_2+mlp_fc", C, M, self.gelu, ln_input=True, step="step", x="x", w=h + "mlp.c_fc.weight",
                       bias=h + "mlp.c_fc.bias", y="h", ln_gamma=h + "ln_2.weight", ln_beta=h + "ln_2.bias"),
                k.gemv("mlp_proj", M, C, "residual", step="step", x="h", w=h + "mlp.c_proj.weight",
                       bias=h + "mlp.c_proj.bias", y="x"),
            ]
        return steps

    def embedding(self) -> list:
        """(prefill, decode) dispatches of x = wte[ids] + wpe[pos], one per split of the table."""
        return [self.k.embed(w.row0, w.rows, step="step", wte=w.label, wpe="wpe.weight", x="x", chain="topk out")
                for w in self.table]

    def head(self) -> list:
        """logits = LayerNorm_f(last row) @ head.T, then the top candidates: the end of the last
        prefill chunk and of every decode step."""
        steps = [self.k.lm_head(w.row0, w.rows, step="step", x="x", ln_gamma="ln_f.weight", ln_beta="ln_f.bias",
                                wte=w.label, logits="logits") for w in self.head_table]
        return steps + self.k.topk(self.cfg.vocab_size, step="step", logits="logits", part="topk partial",
                                   out="topk out")

    @property
    def gelu(self) -> str:
        return {"tanh": "gelu_tanh", "erf": "gelu_erf"}[self.cfg.gelu]

    # ------------------------------------------------------------------------ what it runs on
    def _kernels(self, n_ctx: int) -> Kernels:
        cfg = self.cfg
        return Kernels(self.shapes, self.dtype, C=cfg.n_embd, n_head=cfg.n_head, head_dim=cfg.head_dim, n_ctx=n_ctx,
                       eps=cfg.layer_norm_epsilon)

    def _context(self, context: int | None) -> int:
        """The KV cache's positions: the model's n_positions, or `context` if smaller, as far as
        the attention kernel that keeps a row of scores in workgroup memory allows."""
        cfg = self.cfg
        want = max(1, min(cfg.n_positions, context or cfg.n_positions))
        limit = int(self.limits.get("maxComputeWorkgroupStorageSize", 16384))

        def fits(n: int) -> bool:
            k = self._kernels(n)
            return all(d.kernel.workgroup_bytes() <= limit for d in (
                k.attention_prefill(False, step="step", q="q", kv="kv", y="y"),
                k.attention_decode(False, step="step", q="q", kv="kv", y="y")))

        lo, hi = 0, want
        while lo < hi:  # the largest n <= want that fits (the scores row grows with n)
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            raise ModelError(f"n_embd={cfg.n_embd} is too wide for this GPU's {limit} bytes of workgroup memory")
        if lo < cfg.n_positions and (context is None or context > lo):
            self.notices.append(f"context limited to {lo} tokens by this GPU's workgroup memory")
        return lo

    def _weights(self, separate_head: bool) -> list:
        cfg, dt = self.cfg, self.dtype
        C, M, V = cfg.n_embd, cfg.d_mlp, cfg.vocab_size
        per_buffer = min(int(self.limits.get("maxStorageBufferBindingSize", 1 << 27)),
                         int(self.limits.get("maxBufferSize", 1 << 28)))
        self.table = split_rows("wte", "wte.weight", V, C, dt, per_buffer)
        self.head_table = split_rows("lm_head", "lm_head.weight", V, C, dt, per_buffer) if separate_head else self.table

        def matrix(name, rows, cols):
            return WeightSpec(name, (name,), rows, cols, dt)

        def vector(name, n):
            return WeightSpec(name, (name,), 1, n, "F32")

        out = list(self.table) + (list(self.head_table) if separate_head else [])
        out.append(matrix("wpe.weight", cfg.n_positions, C))
        for i in range(cfg.n_layer):
            h = f"h.{i}."
            out += [vector(h + "ln_1.weight", C), vector(h + "ln_1.bias", C),
                    matrix(h + "attn.c_attn.weight", C, 3 * C), vector(h + "attn.c_attn.bias", 3 * C),
                    matrix(h + "attn.c_proj.weight", C, C), vector(h + "attn.c_proj.bias", C),
                    vector(h + "ln_2.weight", C), vector(h + "ln_2.bias", C),
                    matrix(h + "mlp.c_fc.weight", C, M), vector(h + "mlp.c_fc.bias", M),
                    matrix(h + "mlp.c_proj.weight", M, C), vector(h + "mlp.c_proj.bias", C)]
        out += [vector("ln_f.weight", C), vector("ln_f.bias", C)]
        return out

    def _buffers(self) -> list:
        cfg, R = self.cfg, self.chunk
        C, M, V, NH, HD = cfg.n_embd, cfg.d_mlp, cfg.vocab_size, cfg.n_head, cfg.head_dim

        def buf(label, nbytes, usage="storage", kind="activations", bound=True):
            return BufferSpec(label, buffer_size(nbytes), usage, kind, bound)

        # K and V caches of each layer: [2, n_head, n_ctx, head_dim] f32
        out = [buf(f"kv_cache[{i}]", 2 * NH * self.n_ctx * HD * 4, kind="kv_cache") for i in range(cfg.n_layer)]
        out += [buf("step", step_bytes(R)), buf("x", R * C * 4), buf("xn", R * C * 4), buf("q", R * C * 4),
                buf("att", R * C * 4), buf("h", R * M * 4)]
        if self.mlp_split > 1:
            out.append(buf("split-K partial sums", self.mlp_split * R * C * 4))
        if self.split_attention:
            out.append(buf("attention blocks", NH * self.k.att_splits * (HD + 2) * 4))
        out.append(buf("logits", V * 4, "storage_readable"))
        if not self.shapes.cpu:
            out.append(buf("topk partial", topk_groups(V) * TOPK_PARTIAL_WORDS * 4))
        out.append(buf("topk out", TOPK_OUTPUT_MAX_BYTES, "storage_readable"))
        # Two read-back buffers: a chained decode step is read while the next one runs.
        out += [buf(f"topk readback {i}", TOPK_OUTPUT_MAX_BYTES, "readback", bound=False) for i in range(2)]
        out.append(buf("logits readback", V * 4, "readback", bound=False))
        return out

    def all_dispatches(self) -> list:
        return self.prefill + self.decode + self.tail

    def decode_weight_bytes(self) -> int:
        """Bytes of weights one decode step reads: every weight its dispatches bind, except the
        embedding tables, of which it reads one row each (a token id falls in one split only)."""
        weights = {w.label: w for w in self.weights}
        steps = self.decode + self.tail
        full = {label for d in steps if d.name != "embedding" for _, label in d.bind if label in weights}
        rows = {weights[label].sources: weights[label].cols * dtype_bytes(weights[label].dtype)
                for d in steps if d.name == "embedding" for _, label in d.bind if label in weights}
        return sum(weights[label].nbytes for label in full) + sum(rows.values())

    @property
    def dispatches_per_decode_step(self) -> int:
        return sum(1 for d in self.decode + self.tail if all(d.counts()))


def check_shapes(cfg: GPT2Config) -> None:
    """The kernels' own shape rules, checked before anything is downloaded or allocated."""
    if cfg.n_embd % 4:
        raise ModelError(f"n_embd={cfg.n_embd} is not a multiple of 4, which the kernels need")
    if cfg.head_dim > 256:
        raise ModelError(f"head size {cfg.head_dim} is over 256, the attention kernel's limit")
    if cfg.d_mlp % 4:
        raise ModelError(f"MLP width {cfg.d_mlp} is not a multiple of 4, which the kernels need")


__all__ = ["GPT2", "check_shapes", "cdiv"]
