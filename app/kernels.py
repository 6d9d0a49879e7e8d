"""The kernels as the model graph uses them: one function per kernel family that picks its entry
point and constants for the adapter's KernelShapes and says how many workgroups it runs.

Standard library only. A `Dispatch` names its buffers by binding name (`x="xn", w="h.0.attn..."`);
the names are checked against the .wgsl file's own declarations (app/wgsl.py) when the graph is
built, in CPython as in the browser, and bindings an entry point uses but the graph leaves unbound
(a LayerNorm input of a GEMV that has none) get small dummy buffers when the GPU side binds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import wgsl
from .contract import ATT_BLOCK, epilogue, topk_groups
from .shapes import KernelShapes
from .weights import BLOCK_FORMATS

DEFAULT_WORKGROUP_BYTES = 16384  # WebGPU's default maxComputeWorkgroupStorageSize
STAGED_FORMATS = ("Q8_0", "Q4_1")  # block formats the staged GEMV reads (linear.wgsl STAGE_BLOCKS)
SPLIT_K_MAX = 4  # K splits of a prefill projection at most: the scratch is SPLIT_K x the output


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Kernel:
    """One compute pipeline: an entry point of a .wgsl file, its weight format and constants."""

    shader: str
    entry: str
    weights: str        # the weight format (app/weights.py WEIGHT_FORMATS): the module's weight snippet
    constants: tuple    # ((name, value), ...) sorted by name
    wide: bool = False  # F16 / BF16 bound as blocks of 8 (app/wgsl.py WIDE_SNIPPETS)
    fixed: tuple = ()   # ((binding, elements), ...): bound arrays declared with their length (wgsl.module_source)

    @property
    def values(self) -> dict:
        return dict(self.constants)

    @property
    def label(self) -> str:
        return f"{self.shader}:{self.entry}"

    @property
    def snippet(self) -> str:
        return (wgsl.WIDE_SNIPPETS if self.wide else wgsl.WEIGHT_SNIPPETS)[self.weights]

    def source(self) -> str:
        return wgsl.module_source(self.shader, self.snippet, self.values, self.fixed)

    def fixed_bytes(self) -> dict:
        """binding name -> bytes a buffer bound there must hold (bindings declared with a length)."""
        return wgsl.fixed_binding_bytes(self.shader, self.snippet, self.fixed)

    def bindings(self) -> dict:
        return wgsl.entry_bindings(self.shader, self.entry)

    def workgroup_bytes(self) -> int:
        return wgsl.workgroup_bytes(self.shader, self.entry, self.values, self.snippet)


def kernel(shader: str, entry: str, weights: str, wide: bool = False, fixed: tuple = (), **values) -> Kernel:
    wgsl.check_constants(shader, values)
    wgsl.entry_bindings(shader, entry)  # the entry point exists
    return Kernel(shader, entry, weights, tuple(sorted(values.items())), wide, tuple(fixed))


Groups = tuple | Callable[[int], tuple]


@dataclass(frozen=True)
class Dispatch:
    """One kernel run: what it computes (`name`, for profiles), its buffers by binding name, and
    its workgroup counts (x, y, z), fixed or a function of the rows of a prefill run."""

    name: str
    kernel: Kernel
    bind: tuple          # ((binding name, buffer label), ...)
    groups: Groups

    def counts(self, rows: int = 1) -> tuple:
        return tuple(self.groups(rows)) if callable(self.groups) else tuple(self.groups)


def dispatch(name: str, k: Kernel, groups: Groups, **buffers) -> Dispatch:
    bindings = k.bindings()
    unknown = sorted(set(buffers) - set(bindings))
    if unknown:
        raise wgsl.ShaderContractError(f"{k.label} has no binding {', '.join(unknown)} (it uses "
                                       f"{', '.join(sorted(bindings))})")
    return Dispatch(name, k, tuple(sorted((n, b) for n, b in buffers.items() if b is not None)), groups)


class Kernels:
    """The kernel families for one model on one adapter: model dimensions and shapes in, Dispatch
    values out. `C` is the residual width, `n_ctx` the KV cache positions, `weights` the format
    of the model's matrices; `kv_heads` (grouped-query attention) defaults to `n_head`."""

    def __init__(self, shapes: KernelShapes, weights: str, *, C: int, n_head: int, head_dim: int, n_ctx: int,
                 eps: float, kv_heads: int | None = None, workgroup_limit: int = DEFAULT_WORKGROUP_BYTES):
        self.shapes, self.weights, self.workgroup_limit = shapes, weights, workgroup_limit
        self.C, self.NH, self.HD, self.n_ctx, self.eps = C, n_head, head_dim, n_ctx, eps
        self.KVH = kv_heads or n_head
        self.att_splits = cdiv(n_ctx, ATT_BLOCK)

    def groups(self, blocks: int) -> int:
        """Workgroups for a dispatch over `blocks` blocks of work: one per block on a GPU; on a
        CPU adapter a few, each looping over many blocks (a workgroup costs ~1 ms there)."""
        return min(blocks, self.shapes.cpu_groups) if self.shapes.cpu else blocks

    # -------------------------------------------------------------------------- embedding
    def embed(self, row0: int, rows: int, fmt: str, **buffers) -> tuple:
        """x[t] = wte[ids[t]] (+ wpe[pos0 + t] when a position table is bound) for the ids in one
        split of the token table stored as `fmt`: (the prefill dispatch, the decode dispatch)."""
        k = kernel("embedding.wgsl", "embed", fmt, C4=self.C // 4, ROW0=row0, ROWS=rows,
                   POSITIONS=buffers.get("wpe") is not None)
        packs = cdiv(self.C // 4, 64)
        return (dispatch("embedding", k, lambda r: (packs, self.groups(r), 1), **buffers),
                dispatch("embedding", k, (packs, 1, 1), **buffers))

    # -------------------------------------------------------------------------- LayerNorm
    def layer_norm(self, name: str, **buffers) -> Dispatch:
        cpu = self.shapes.cpu
        k = kernel("layer_norm.wgsl", "layer_norm_rows" if cpu else "layer_norm", self.weights, C=self.C,
                   C4=self.C // 4, EPS=self.eps)
        return dispatch(name, k, (lambda r: (cdiv(r, 64), 1, 1)) if cpu else (lambda r: (r, 1, 1)), **buffers)

    # -------------------------------------------------------------------------- attention
    def _attention_kernel(self, entry: str) -> Kernel:
        return kernel("attention.wgsl", entry, self.weights, C=self.NH * self.HD, NH=self.NH, KVH=self.KVH, HD=self.HD,
                      N_CTX=self.n_ctx, SCALE=1.0 / self.HD ** 0.5, ATT_GROUPS=self.groups(self.NH),
                      ATT_SPLITS=self.att_splits)

    def tiles_fit(self, workgroup_limit: int) -> bool:
        return self._attention_kernel("attention_tiled").workgroup_bytes() <= workgroup_limit

    def attention_prefill(self, tiled: bool, **buffers) -> Dispatch:
        """Causal attention of a prefill run's rows against the cache."""
        NH = self.NH
        if self.shapes.cpu:  # one invocation per (row, head): see attention.wgsl
            return dispatch("attention", self._attention_kernel("attention_rows"),
                            lambda r: (cdiv(r * NH, 64), 1, 1), **buffers)
        if tiled:  # flash-attention-style tiles of 16 rows
            return dispatch("attention", self._attention_kernel("attention_tiled"),
                            lambda r: (NH, cdiv(r, 16), 1), **buffers)
        return dispatch("attention", self._attention_kernel("attention"), lambda r: (self.groups(NH), r, 1),
                        **buffers)

    def attention_decode(self, split: bool, **buffers) -> Dispatch:
        """Attention of one row; `split` over blocks of ATT_BLOCK positions (merged by the next
        projection as it reads them)."""
        if split:
            return dispatch("attention", self._attention_kernel("attention_split"), (self.NH, self.att_splits, 1),
                            **buffers)
        if self.shapes.cpu:
            return dispatch("attention", self._attention_kernel("attention_rows"), (cdiv(self.NH, 64), 1, 1),
                            **buffers)
        return dispatch("attention", self._attention_kernel("attention"), (self.groups(self.NH), 1, 1), **buffers)

    # -------------------------------------------------------------------------- head
    def lm_head(self, row0: int, rows: int, fmt: str, rms: bool = False, **buffers) -> Dispatch:
        """logits[row0 + v] = LayerNorm (or RMSNorm) of the last row of x . table[v] for one split of
        the table (stored as `fmt`)."""
        lanes = self.shapes.head_lanes
        tile = self.shapes.row_tile(fmt) if lanes == 1 else 1
        groups = self.gemv_groups(rows, 256 // lanes, tile)
        k = kernel("lm_head.wgsl", "lm_head", fmt, self.wide(fmt, self.C), C=self.C, C4=self.C // 4, EPS=self.eps,
                   ROW0=row0, ROWS=rows, HEAD_LANES=lanes, HEAD_GROUPS=groups, RMS=rms, HEAD_ROW_TILE=tile,
                   HEAD_UNROLL=self.gemv_unroll(fmt),
                   Q4_0_STREAM=fmt == "Q4_0" and not self.shapes.cpu and self.C % 256 == 0 and 32 % lanes == 0
                   and lanes >= 8)
        return dispatch("ln_f+lm_head", k, (groups, 1, 1), **buffers)

    def topk(self, vocab_size: int, step: str, logits: str, part: str, out: str, seen: str) -> list:
        """The k best logits (after the repetition penalty on the `seen` tokens), the log-sum-exp and
        the GPU's choice of the next token."""
        groups = topk_groups(vocab_size)

        def k(entry):
            return kernel("topk.wgsl", entry, self.weights, V=vocab_size, GROUPS=groups)

        if self.shapes.cpu:  # one workgroup of a few lanes, two barriers: see topk.wgsl
            return [dispatch("topk_serial", k("topk_serial"), (1, 1, 1), step=step, logits=logits, out=out, seen=seen)]
        return [dispatch("topk_partial", k("topk_partial"), (groups, 1, 1), step=step, logits=logits, part=part,
                         seen=seen),
                dispatch("topk_merge", k("topk_merge"), (1, 1, 1), step=step, logits=logits, part=part, out=out,
                         seen=seen)]

    # -------------------------------------------------------------------------- the Llama family
    def rms_norm(self, name: str, **buffers) -> Dispatch:
        cpu = self.shapes.cpu
        k = kernel("rmsnorm.wgsl", "rms_norm_rows" if cpu else "rms_norm", self.weights, C=self.C, C4=self.C // 4,
                   EPS=self.eps)
        return dispatch(name, k, (lambda r: (cdiv(r, 64), 1, 1)) if cpu else (lambda r: (r, 1, 1)), **buffers)

    # ------------------------------------------------- projections, linear.wgsl (GEMV variants on a GPU)
    def gemv_unroll(self, fmt: str, two_rows: bool = False, q4_0_stream: bool = False) -> int:
        """Packs or segments a GPU lane loads before multiplying them (1 on a CPU adapter). A Q4_0
        row read as one stream (linear.wgsl Q4_0_STREAM: two words a segment) takes the full
        gemv_unroll even for gate|up: Llama-1B Q4_0's pass 1.09 -> 1.05 ms on the H200 (2026-12-04),
        where 8 loads of each of two F16 rows took 1.18 -> 1.74."""
        if self.shapes.cpu:
            return 1
        if q4_0_stream:
            return self.shapes.gemv_unroll
        if two_rows or fmt in BLOCK_FORMATS:
            return min(self.shapes.gemv_unroll, self.shapes.gemv_unroll_paired)
        return self.shapes.gemv_unroll

    def wide(self, fmt: str, K: int) -> bool:
        """Whether a GPU decode kernel reads this F16 / BF16 matrix (rows of K) as blocks of 8."""
        return not self.shapes.cpu and self.shapes.gemv_wide_f16 and fmt in wgsl.WIDE_SNIPPETS and K % 8 == 0

    def _linear_kernel(self, entry: str, K: int, N: int, out: str, bias: bool, fmt: str | None, *,
                       rms_input=False, ln_input=False, att_input=False, y_cols: int | None = None, y_col0: int = 0,
                       copy_input=False, stage_blocks: int = 0, wide: bool = False, row_tile: int = 1,
                       split_k: int = 1) -> Kernel:
        rows = self.shapes.linear_gemv_rows
        prepared = rms_input or ln_input or att_input or copy_input
        deep = K > self.shapes.deep_gemv_k and not prepared and row_tile == 1
        if entry == "gemv" and not self.shapes.cpu and self.shapes.gemv_deep_rows and deep:
            rows = self.shapes.gemv_deep_rows
        fmt = fmt or self.weights
        if out == "swiglu" and (y_col0 or (y_cols or N) != N):
            raise wgsl.ShaderContractError("linear.wgsl's swiglu epilogue writes whole rows of Y: Y_COL0 must be 0 "
                                           "and Y_COLS N")
        q4_0_stream = (entry == "gemv" and fmt == "Q4_0" and not self.shapes.cpu and K % 256 == 0
                       and (256 // rows) % 32 == 0 and row_tile == 1 and not stage_blocks)
        row_words = stage_words = 1
        if stage_blocks:  # the words stage_blocks blocks span from any 2-byte offset, and the 2 bytes past
            row_words = cdiv(stage_blocks * BLOCK_FORMATS[fmt][1] + 8, 4)
            stage_words = row_words * rows * (2 if out == "swiglu" else 1)
        fixed = ()
        if entry == "gemv" and self.shapes.cpu and fmt == "F32":
            # SwiftShader reads a binding declared with its length 3-6% faster (the 117M f32 step's
            # GEMVs 92.4 / 94.8 -> 89.5 / 88.5 ms, BENCH.md): each load's bound is a constant. Exactly
            # what gemv reads: N_W rows of K4 packs, and input row 0 (the split attention's blocks are
            # longer than a row).
            fixed = (("w", N * (2 if out == "swiglu" else 1) * (K // 4)),) + ((("x", K // 4),) if not att_input else ())
        return kernel("linear.wgsl", entry, fmt, wide, fixed, K=K, K4=K // 4, N=N, EPILOGUE=epilogue(out),
                      HAS_BIAS=bias, RMS_INPUT=rms_input, LN_INPUT=ln_input, ATT_INPUT=att_input,
                      ATT_SPLITS=self.att_splits, C=self.C, NH=self.NH, HD=self.HD, N_CTX=self.n_ctx, EPS=self.eps,
                      GEMV_ROWS=rows, GEMV_GROUPS=self.gemv_groups(N, rows, row_tile),
                      GEMV_ROW_TILE=row_tile,
                      XN4_LEN=K // 4 if rms_input or ln_input or att_input or copy_input else 1, COPY_INPUT=copy_input,
                      GEMV_UNROLL=self.gemv_unroll(fmt, two_rows=out == "swiglu", q4_0_stream=q4_0_stream),
                      Y_COLS=y_cols or N, Y_COL0=y_col0,
                      STAGE_BLOCKS=stage_blocks, STAGE_ROW_WORDS=row_words, STAGE_WORDS=stage_words,
                      Q4_0_STREAM=q4_0_stream,
                      SPLIT_K=split_k, SPLIT_KS=cdiv(cdiv(K, split_k), 16) * 16)

    def gemv_groups(self, N: int, rows: int, row_tile: int = 1) -> int:
        """Workgroups of a GEMV (or the LM head) of N outputs, `rows` per workgroup: one per block of
        rows on a GPU; on a CPU adapter a few, which one invocation per `row_tile` rows (rows = 256)
        keeps equally busy by taking the tiles in turn (linear.wgsl, lm_head.wgsl)."""
        if self.shapes.cpu and rows == 256:
            return min(cdiv(N, row_tile), self.shapes.cpu_groups)
        return self.groups(cdiv(N, rows * row_tile))

    def split_k(self, K: int) -> int:
        """K splits of a prefill projection on a GPU (1 on a CPU adapter)."""
        return 1 if self.shapes.cpu else max(1, min(SPLIT_K_MAX, K // self.shapes.split_k_depth))

    def linear(self, name: str, K: int, N: int, out: str, fmt: str | None = None, *, y_cols: int | None = None,
               y_col0: int = 0, **buffers) -> list:
        """Y = out(X @ W^T + b), W [N, K] stored as `fmt` (default: the model's), over the rows of a
        prefill run; `y_cols` / `y_col0`: Y has y_cols columns, of which this writes N from y_col0 (one
        part of a fused matrix whose parts are stored in different formats). With a `scratch` buffer
        (self.split_k(K) x rows x N floats) a long K on a GPU runs split: partial sums to the scratch,
        then a pass that adds them up, so it may be two dispatches."""
        scratch = buffers.pop("scratch", None)
        bias = buffers.get("bias") is not None
        cols = dict(y_cols=y_cols, y_col0=y_col0)
        if self.shapes.cpu:
            k = self._linear_kernel("linear_rows", K, N, out, bias, fmt, **cols)
            return [dispatch(name, k, lambda r: (cdiv(N, 64), cdiv(r, 4), 1), **buffers)]
        splits = self.split_k(K) if scratch is not None else 1
        k = self._linear_kernel("linear_tiled", K, N, out, bias, fmt, **cols, split_k=splits)
        if splits == 1:
            return [dispatch(name, k, lambda r: (cdiv(N, 64), cdiv(r, 64), 1), **buffers)]
        if out == "swiglu":
            raise wgsl.ShaderContractError("linear.wgsl's split K does not take the swiglu epilogue")
        y = buffers.pop("y")
        total = self._linear_kernel("linear_split_k_sum", K, N, out, bias, fmt, **cols, split_k=splits)
        return [dispatch(name, k, lambda r: (cdiv(N, 64), cdiv(r, 64), splits), **buffers, y=scratch),
                dispatch(name + "_sum", total, lambda r: (cdiv(N, 64), r, 1), step=buffers["step"], x=scratch,
                         bias=buffers.get("bias"), y=y, kv=buffers.get("kv"))]

    def linear_gemv(self, name: str, K: int, N: int, out: str, fmt: str | None = None, *, rms_input=False,
                    ln_input=False, att_input=False, y_cols: int | None = None, y_col0: int = 0,
                    **buffers) -> Dispatch:
        """y = out(x @ W^T + b) for one row (decode), the input RMS-normalized (rms_input: norm_w) or
        LayerNormed (ln_input: norm_w, norm_b) first; `swiglu`: N outputs from 2N rows of W; `y_cols` /
        `y_col0` as in `linear`."""
        fmt = fmt or self.weights
        gpu = not self.shapes.cpu
        row_tile = self.shapes.row_tile(fmt)
        opts = dict(rms_input=rms_input, ln_input=ln_input, att_input=att_input, wide=self.wide(fmt, K),
                    y_cols=y_cols, y_col0=y_col0, row_tile=row_tile)
        bias = buffers.get("bias") is not None
        k = self._linear_kernel("gemv", K, N, out, bias, fmt, **opts)
        if gpu and self.shapes.gemv_copy_input and not (rms_input or ln_input or att_input):
            copied = self._linear_kernel("gemv", K, N, out, bias, fmt, **opts, copy_input=True)
            if copied.workgroup_bytes() <= self.workgroup_limit:
                k, opts = copied, dict(opts, copy_input=True)
        # several rows per lane (row_tile > 1): never staged
        stage = min(self.shapes.gemv_stage_blocks, K // 32) if gpu and fmt in STAGED_FORMATS and row_tile == 1 else 0
        while stage:  # the most blocks per chunk, up to the shape's, that fit this adapter's workgroup memory
            staged = self._linear_kernel("gemv", K, N, out, bias, fmt, **opts, stage_blocks=stage)
            if staged.workgroup_bytes() <= self.workgroup_limit:
                k = staged
                break
            stage //= 2
        return dispatch(name, k, (k.values["GEMV_GROUPS"], 1, 1), **buffers)

    def rope(self, qk_norm: bool, **buffers) -> Dispatch:
        """Rotate this run's q and k heads (RMS-normalized first with qk_norm), keys and values to the
        cache."""
        slots = self.NH + 2 * self.KVH
        cpu = self.shapes.cpu
        k = kernel("rope.wgsl", "rope_rows" if cpu else "rope", self.weights, NH=self.NH, KVH=self.KVH, HD=self.HD,
                   N_CTX=self.n_ctx, QK_NORM=qk_norm, EPS=self.eps)
        groups = (lambda r: (cdiv(r * slots, 64), 1, 1)) if cpu else (lambda r: (slots, r, 1))
        return dispatch("rope", k, groups, **buffers)

    def swiglu(self, M: int, **buffers) -> Dispatch:
        k = kernel("swiglu.wgsl", "swiglu", self.weights, M=M)
        return dispatch("swiglu", k, lambda r: (cdiv(M, 64), r, 1), **buffers)
