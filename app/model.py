"""GPT-2 on WebGPU: the whole model in one file, in the spirit of nanoGPT's model.py.

    x = wte[ids] + wpe[pos]                                  embedding.wgsl
    for each block:
        q, k, v = LayerNorm_1(x) @ W_attn + b                matmul.wgsl (k, v go to the KV cache)
        x = x + attention(q, K cache, V cache) @ W_proj + b  attention.wgsl, matmul.wgsl
        x = x + gelu(LayerNorm_2(x) @ W_fc + b) @ W_mlp + b  matmul.wgsl
    logits = LayerNorm_f(x[-1]) @ wte.T                      lm_head.wgsl
    top k of logits, log-sum-exp                             topk.wgsl

A prompt is prefilled in chunks (the tiled matmul, one LayerNorm dispatch each, flash-attention-style
tiles on a GPU); every generated token is one decode step over the KV cache (matrix-vector products
with the LayerNorm fused in; on a GPU the attention is split over blocks of 64 cache positions that
the projection merges as it reads them: 5 dispatches per block). A CPU adapter (SwiftShader) gets
barrier-free variants of the same kernels (see GPU.is_cpu and the shaders' headers). Buffers,
pipelines, bind groups and the dispatch lists are built once per model; a decode step writes one
small `Step` buffer, replays a prepared dispatch list and reads back the top candidates (a few
hundred bytes), never the 50,257 logits unless asked to.

Weights stay in the dtype they are stored in: 2-D matrices are read by the kernels as f32, f16 or
bf16 (widened to f32 in registers); the small vectors (biases, LayerNorm) are widened to f32 at load.
"""

from __future__ import annotations

import math
import struct
import time
from array import array
from dataclasses import dataclass

from .config import GPT2Config
from .gpu import GPU, GPUError, shader_source

KMAX = 64          # most candidates a step can return (top-k on the GPU)
CHAIN_ID = 0xFFFFFFFF  # token id meaning "the token the previous step chose, read on the GPU"
F32_MAX = 3.4028234663852886e38
F32_MIN_NORMAL = 1.1754943508222875e-38
TOPK_CHUNK = 2048  # logits per workgroup in topk_partial (8 KB of workgroup memory)
PREFILL_CHUNK = 128      # prompt rows per prefill run on a CPU adapter (Stop is checked between runs)
PREFILL_CHUNK_GPU = 512  # on a GPU: fewer round trips, and enough output tiles to fill the chip
ATT_BLOCK = 64       # cache positions per block of the split decode attention (common.wgsl)
CPU_GROUPS = 4       # workgroups per decode dispatch on a CPU adapter (see GPU.is_cpu)
# Kernel-shape overrides for experiments (tools/bench.py --tuning): {"cpu": bool, "gemv_cols4": int,
# "gemv_cols4_narrow": int (projections with N = n_embd), "head_lanes": int, "cpu_groups": int,
# "prefill_chunk": int, "split_k_depth": int, "no_split_attention": bool, "no_tiled_attention": bool}.
# Empty in normal use: the shapes follow the adapter.
TUNING: dict = {}

_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


class ModelError(ValueError):
    """A model this engine cannot run on this GPU, with a message for the user."""


@dataclass(frozen=True)
class GpuChoice:
    """How a step chooses, on the GPU, the token a chained step after it is fed (topk.wgsl
    choose_token): top-k and top-p over its candidates at the step's temperature (<= 0: the best
    candidate), and `draw`, the uniform number in [0, 1) the CPython sampler will draw for the same
    choice. No repetition penalty: it can lift a token from outside the candidates."""

    top_k: int = 0
    top_p: float = 1.0
    draw: float = 0.0


GREEDY = GpuChoice()


@dataclass
class StepResult:
    """What one prefill or decode step returns: the top-k candidates, best first."""

    ids: list            # candidate token ids
    logits: list         # their logits
    max_logit: float     # M: log-sum-exp over the whole vocabulary is M / T + log(S)
    sum_exp: float       # S = sum(exp((l - M) / T))
    temperature: float   # T used for max_logit / sum_exp (1 when sampling greedily)
    choice: int = -1     # the token the GPU chose (GpuChoice): what a chained step after it was fed
    full_logits: array | None = None  # all logits (array('f')), only when asked for

    def log_normalizer(self) -> float:
        return self.max_logit / self.temperature + math.log(self.sum_exp)


def _as_bytes(data) -> memoryview:
    """Tensor bytes as a Python memoryview, whether they arrived as bytes or a JS Uint8Array."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).cast("B")
    return memoryview(data.to_bytes())


def _vector_f32(data, dtype: str) -> bytes:
    """A small 1-D tensor widened to little-endian f32 bytes."""
    raw = _as_bytes(data)
    if dtype == "F32":
        return bytes(raw)
    if dtype == "F16":
        n = len(raw) // 2
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", raw))
    if dtype == "BF16":
        halves = array("H", bytes(raw))
        widened = array("I", (h << 16 for h in halves))
        return widened.tobytes()
    raise ModelError(f"unsupported dtype {dtype}")


def _consts(**values) -> str:
    lines = []
    for name, value in values.items():
        if isinstance(value, bool):
            lines.append(f"const {name}: bool = {'true' if value else 'false'};")
        elif isinstance(value, int):
            lines.append(f"const {name}: u32 = {value}u;")
        else:
            lines.append(f"const {name}: f32 = {float(value)!r};")
    return "\n".join(lines) + "\n"


class GPT2:
    """A GPT-2-family model resident on the GPU, with its KV cache."""

    def __init__(self, gpu: GPU, cfg: GPT2Config, tensors: dict, context: int | None = None,
                 prefill_chunk: int | None = None):
        """`tensors` maps canonical names (see app/config.py) to objects with .dtype, .shape and
        .data (bytes-like, or a JS Uint8Array that goes to the GPU without a copy through wasm)."""
        self.gpu = gpu
        self.cfg = cfg
        C, nh = cfg.n_embd, cfg.n_head
        if C % 4 != 0:
            raise ModelError(f"n_embd={C} is not a multiple of 4, which the kernels need")
        if cfg.head_dim > 256:
            raise ModelError(f"head size {cfg.head_dim} is over 256, the attention kernel's limit")
        if cfg.d_mlp % 4 != 0:
            raise ModelError(f"MLP width {cfg.d_mlp} is not a multiple of 4, which the kernels need")
        wg_bytes = gpu.limits.get("maxComputeWorkgroupStorageSize", 16384)
        # The LayerNorm-fused GEMV keeps the normalized row in workgroup memory beside 5 KB of its own.
        if C * 4 + 5 * 1024 > wg_bytes:
            raise ModelError(f"n_embd={C} is too wide for this GPU's {wg_bytes} bytes of workgroup memory")
        # Attention keeps one row of scores in workgroup memory: that bounds the context.
        max_ctx = (wg_bytes - 2 * 256 * 4) // 4
        self.n_ctx = min(cfg.n_positions, max_ctx, context or cfg.n_positions)
        self.notices: list[str] = []
        if self.n_ctx < cfg.n_positions and (context is None or context > self.n_ctx):
            self.notices.append(f"context limited to {self.n_ctx} tokens by this GPU's workgroup memory")
        self.pos = 0  # tokens currently in the KV cache
        self.last_readback_bytes = 0
        self.cpu = TUNING.get("cpu", gpu.is_cpu)  # kernel shapes for a CPU adapter (see shaders/)
        if prefill_chunk is None:
            prefill_chunk = TUNING.get("prefill_chunk", PREFILL_CHUNK if self.cpu else PREFILL_CHUNK_GPU)
        self.chunk = max(1, min(prefill_chunk, self.n_ctx))
        self.buffers: list = []
        self.weight_dtype = self._choose_weight_dtype(tensors)
        self._upload(tensors)
        self._allocate_activations()
        self._build_plans()

    # ------------------------------------------------------------------------ weights
    def _choose_weight_dtype(self, tensors) -> str:
        dtypes = {t.dtype for name, t in tensors.items() if len(t.shape) == 2}
        if len(dtypes) == 1:
            dtype = dtypes.pop()
        else:  # mixed storage: widen every matrix to f32 once, at load time
            dtype = "F32"
            self.notices.append(f"matrices stored in mixed dtypes {sorted(dtypes)}: converted to F32 on load")
        # f16 is always read as packed u32 words widened with unpack2x16float, also where the adapter
        # has shader-f16: one tested path everywhere (neither SwiftShader nor Dawn on the H100 offers
        # shader-f16), and the unpack costs nothing next to the memory traffic.
        self._wsnippet = {"F32": "weights_f32.wgsl", "F16": "weights_f16_packed.wgsl",
                          "BF16": "weights_bf16_packed.wgsl"}[dtype]
        return dtype

    def _alloc(self, nbytes: int, label: str, readable: bool = False):
        buf = self.gpu.storage(nbytes, label, readable)
        self.buffers.append(buf)
        return buf

    def _vector(self, t, label: str):
        data = _vector_f32(t.data, t.dtype)
        buf = self._alloc(len(data), label)
        self.gpu.write(buf, data)
        return buf

    def _matrix_bytes(self, t):
        if t.dtype == self.weight_dtype:
            return t.data
        raw = _as_bytes(t.data)
        if t.dtype == "F16":
            n = len(raw) // 2
            return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", raw))
        return _vector_f32(raw, t.dtype)

    def _matrix(self, t, label: str):
        data = self._matrix_bytes(t)
        rows, cols = t.shape
        row_bytes = cols * _DTYPE_BYTES[self.weight_dtype]
        buf = self._alloc(rows * row_bytes, label)
        self._write_rows(buf, data, 0, rows, row_bytes)
        return buf

    def _write_rows(self, buf, data, row0: int, nrows: int, row_bytes: int):
        start, nbytes = row0 * row_bytes, nrows * row_bytes
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.gpu.write(buf, memoryview(data).cast("B")[start:start + nbytes])
        else:  # JS Uint8Array: straight from the fetched bytes to the GPU
            self.gpu.write_js(buf, 0, data, start, nbytes)

    def _row_split_matrix(self, t, label: str) -> list:
        """A [rows, C] table split by rows into buffers that each fit one binding."""
        data = self._matrix_bytes(t)
        rows, cols = t.shape
        row_bytes = cols * _DTYPE_BYTES[self.weight_dtype]
        limit = min(self.gpu.limits.get("maxStorageBufferBindingSize", 1 << 27),
                    self.gpu.limits.get("maxBufferSize", 1 << 28))
        per = max(1, limit // row_bytes)
        parts = []
        for row0 in range(0, rows, per):
            n = min(per, rows - row0)
            buf = self._alloc(n * row_bytes, f"{label}[{row0}:{row0 + n}]")
            self._write_rows(buf, data, row0, n, row_bytes)
            parts.append((row0, n, buf))
        return parts

    def _upload(self, tensors):
        cfg = self.cfg
        self.wte = self._row_split_matrix(tensors["wte.weight"], "wte")
        self.head = self._row_split_matrix(tensors["lm_head.weight"], "lm_head") if "lm_head.weight" in tensors else self.wte
        self.wpe = self._matrix(tensors["wpe.weight"], "wpe")
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            layer = {
                "ln_1.g": self._vector(tensors[p + "ln_1.weight"], p + "ln_1.weight"),
                "ln_1.b": self._vector(tensors[p + "ln_1.bias"], p + "ln_1.bias"),
                "attn.w": self._matrix(tensors[p + "attn.c_attn.weight"], p + "attn.c_attn.weight"),
                "attn.b": self._vector(tensors[p + "attn.c_attn.bias"], p + "attn.c_attn.bias"),
                "proj.w": self._matrix(tensors[p + "attn.c_proj.weight"], p + "attn.c_proj.weight"),
                "proj.b": self._vector(tensors[p + "attn.c_proj.bias"], p + "attn.c_proj.bias"),
                "ln_2.g": self._vector(tensors[p + "ln_2.weight"], p + "ln_2.weight"),
                "ln_2.b": self._vector(tensors[p + "ln_2.bias"], p + "ln_2.bias"),
                "fc.w": self._matrix(tensors[p + "mlp.c_fc.weight"], p + "mlp.c_fc.weight"),
                "fc.b": self._vector(tensors[p + "mlp.c_fc.bias"], p + "mlp.c_fc.bias"),
                "mlp.w": self._matrix(tensors[p + "mlp.c_proj.weight"], p + "mlp.c_proj.weight"),
                "mlp.b": self._vector(tensors[p + "mlp.c_proj.bias"], p + "mlp.c_proj.bias"),
                # K and V caches of this layer: [2, n_head, n_ctx, head_dim] f32
                "kv": self._alloc(2 * cfg.n_head * self.n_ctx * cfg.head_dim * 4, f"kv_cache[{i}]"),
            }
            self.layers.append(layer)
        self.ln_f = (self._vector(tensors["ln_f.weight"], "ln_f.weight"),
                     self._vector(tensors["ln_f.bias"], "ln_f.bias"))
        self.gpu.check()

    # ------------------------------------------------------------------------ activations
    def _allocate_activations(self):
        cfg, R, C = self.cfg, self.chunk, self.cfg.n_embd
        V = cfg.vocab_size
        self.groups = (V + TOPK_CHUNK - 1) // TOPK_CHUNK
        self.step_buf = self._alloc(28 + 4 * R, "step")
        self.x = self._alloc(R * C * 4, "x (residual stream)")
        self.xn = self._alloc(R * C * 4, "x normalized")
        self.q = self._alloc(R * C * 4, "q")
        self.att = self._alloc(R * C * 4, "attention out")
        self.mlp_split = self._split_k(cfg.d_mlp)  # K splits of the MLP projection in prefill
        self.split_scratch = (self._alloc(self.mlp_split * R * C * 4, "split-K partial sums")
                              if self.mlp_split > 1 else None)
        # Decode attention on a GPU is split over blocks of ATT_BLOCK cache positions (attention.wgsl):
        # their partial results, merged by the attention projection.
        self.split_attention = not self.cpu and not TUNING.get("no_split_attention", False)
        self.att_splits = -(-self.n_ctx // ATT_BLOCK)
        # Prefill attention on a GPU is tiled through workgroup memory when the tiles fit.
        wg_bytes = self.gpu.limits.get("maxComputeWorkgroupStorageSize", 16384)
        self.tiled_attention = (not self.cpu and 4 * (48 * cfg.head_dim + 256) <= wg_bytes
                                and not TUNING.get("no_tiled_attention", False))
        self.att_part = (self._alloc(cfg.n_head * self.att_splits * (cfg.head_dim + 2) * 4, "attention blocks")
                         if self.split_attention else None)
        self.h = self._alloc(R * cfg.d_mlp * 4, "mlp hidden")
        self.logits = self._alloc(V * 4, "logits", readable=True)
        self.part = self._alloc(self.groups * (2 * KMAX + 2) * 4, "topk partial")
        self.out = self._alloc((2 * KMAX + 3) * 4, "topk out", readable=True)
        self.dummy_ro = self._alloc(16, "unused read binding")
        self.dummy_rw = self._alloc(16, "unused write binding")
        # Two read-back buffers: a chained decode step (submit_decode) is read while the next runs.
        self.out_stagings = [self.gpu.buffer((2 * KMAX + 3) * 4, 0x0001 | 0x0008, f"topk readback {i}")
                             for i in range(2)]
        self.buffers += self.out_stagings
        self._next_staging = 0
        self._inflight: list = []  # submitted decode steps not read back yet (submit_decode)
        self.logits_staging = None

    # ------------------------------------------------------------------------ pipelines
    def _pipeline(self, shader: str, entry: str, **consts):
        snippet = shader_source(self._wsnippet)
        prelude = snippet + _consts(**consts) + shader_source("common.wgsl")
        return self.gpu.pipeline(shader, entry, prelude)

    def _groups(self, blocks: int) -> int:
        """Workgroups for a decode dispatch over `blocks` blocks of work: one per block on a GPU;
        on a CPU adapter a few, each looping over many blocks (a workgroup costs ~1 ms there)."""
        return min(blocks, TUNING.get("cpu_groups", CPU_GROUPS)) if self.cpu else blocks

    def _gemv_cols4(self, N: int) -> int:
        # Column packs per GEMV workgroup (a power of two). On a GPU few packs and K split over many
        # invocations, then reduced: enough workgroups and loads in flight for the narrow matrices
        # (H200, 117M f16, profile of a decode step at context 128: the 12 K=3072 -> 768 projections
        # took 0.39-0.43 ms with 4 packs, 0.25-0.27 with 2, 0.17-0.20 with 1; earlier on the H100
        # 16 packs cost 2.7x what 4 did). On a CPU adapter 256: one invocation per pack, no
        # reduction and no barrier.
        cols4 = TUNING.get("gemv_cols4", 256 if self.cpu else 2)
        if N == self.cfg.n_embd:
            cols4 = TUNING.get("gemv_cols4_narrow", cols4 if self.cpu else 1)
        return cols4

    def _gemv_groups(self, N: int) -> int:
        return self._groups(-(-(N // 4) // self._gemv_cols4(N)))

    def _split_k(self, K: int) -> int:
        """K splits for a prefill projection on a GPU: about 768 deep each (the 3072-deep MLP
        projection ran 2.5 of 8.4 ms of a 512-row prefill as one serial loop per tile, H200)."""
        if self.cpu:
            return 1
        return max(1, K // TUNING.get("split_k_depth", 768))

    def _matmul(self, entry: str, K: int, N: int, epilogue: int, ln_input: bool = False, att_input: bool = False,
                split_k: int = 1):
        cfg = self.cfg
        per_split = -(-K // split_k)
        split_ks = -(-per_split // 16) * 16  # k per split, whole tiles of 16
        return self._pipeline("matmul.wgsl", entry, K=K, N=N, N4=N // 4, EPILOGUE=epilogue, C=cfg.n_embd,
                              SPLIT_K=split_k, SPLIT_KS=split_ks,
                              NH=cfg.n_head, HD=cfg.head_dim, N_CTX=self.n_ctx, LN_INPUT=ln_input,
                              ATT_INPUT=att_input, ATT_SPLITS=self.att_splits, EPS=cfg.layer_norm_epsilon,
                              GEMV_COLS4=self._gemv_cols4(N), GEMV_GROUPS=self._gemv_groups(N),
                              XN_LEN=K if ln_input or att_input else 1)

    def _build_plans(self):
        """Build every pipeline and bind group once; record (pipeline, bind group, counts) lists."""
        cfg, gpu = self.cfg, self.gpu
        C, M, V = cfg.n_embd, cfg.d_mlp, cfg.vocab_size
        gelu = {"tanh": 1, "erf": 2}[cfg.gelu]
        STORE, RESIDUAL, QKV = 0, 3, 4
        bind = gpu.bind_group
        s = self.step_buf

        embeds = []
        for row0, rows, buf in self.wte:
            pipe = self._pipeline("embedding.wgsl", "embed", C4=C // 4, ROW0=row0, ROWS=rows, CHAIN_ID=CHAIN_ID)
            embeds.append((pipe, bind(pipe, [s, buf, self.wpe, self.x, self.out])))
        heads = []
        for row0, rows, buf in self.head:
            lanes = TUNING.get("head_lanes", 1 if self.cpu else 8)  # invocations per vocabulary row (1: no reduction, no barrier)
            head_groups = self._groups(-(-rows // (256 // lanes)))
            pipe = self._pipeline("lm_head.wgsl", "lm_head", C=C, C4=C // 4, EPS=cfg.layer_norm_epsilon,
                                  ROW0=row0, ROWS=rows, HEAD_LANES=lanes, HEAD_GROUPS=head_groups)
            heads.append((pipe, bind(pipe, [s, self.x, self.ln_f[0], self.ln_f[1], buf, self.logits]), head_groups))
        topk_consts = dict(V=V, KMAX=KMAX, CHUNK=TOPK_CHUNK, GROUPS=self.groups)
        if self.cpu:  # one invocation, no barriers: see topk.wgsl
            p_serial = self._pipeline("topk.wgsl", "topk_serial", **topk_consts)
            topk = [(p_serial, bind(p_serial, [s, self.logits, None, self.out]), (1, 1, 1))]
        else:
            p_partial = self._pipeline("topk.wgsl", "topk_partial", **topk_consts)
            p_merge = self._pipeline("topk.wgsl", "topk_merge", **topk_consts)
            topk = [(p_partial, bind(p_partial, [s, self.logits, self.part]), (self.groups, 1, 1)),
                    (p_merge, bind(p_merge, [s, None, self.part, self.out]), (1, 1, 1))]

        # Prefill kernels: tiled through workgroup memory on a GPU; barrier-free on a CPU adapter.
        cpu = self.cpu
        ln = self._pipeline("layer_norm.wgsl", "layer_norm_rows" if cpu else "layer_norm", C=C, C4=C // 4,
                            EPS=cfg.layer_norm_epsilon)
        ln_counts = (lambda rows: (-(-rows // 64), 1, 1)) if cpu else (lambda rows: (rows, 1, 1))
        prefill_entry = "matmul_rows" if cpu else "matmul_tiled"
        t_qkv = self._matmul(prefill_entry, C, 3 * C, QKV)
        t_proj = self._matmul(prefill_entry, C, C, RESIDUAL)
        t_fc = self._matmul(prefill_entry, C, M, gelu)
        mlp_split = self.mlp_split
        t_mlp = self._matmul(prefill_entry, M, C, RESIDUAL, split_k=mlp_split)
        t_mlp_sum = self._matmul("matmul_split_k_sum", M, C, RESIDUAL, split_k=mlp_split) if mlp_split > 1 else None
        g_qkv = self._matmul("gemv", C, 3 * C, QKV, ln_input=True)
        g_proj = self._matmul("gemv", C, C, RESIDUAL, att_input=self.split_attention)
        g_fc = self._matmul("gemv", C, M, gelu, ln_input=True)
        g_mlp = self._matmul("gemv", M, C, RESIDUAL)

        # (pipeline, bind group, counts(rows) -> (x, y, z)) for prefill; decode counts are fixed.
        def tiled(n):
            if cpu:  # matmul_rows: 64 column packs x 4 rows per workgroup
                return lambda rows: (-(-(n // 4) // 64), -(-rows // 4), 1)
            return lambda rows: (-(-n // 64), -(-rows // 64), 1)

        def gemv(n):
            return (self._gemv_groups(n), 1, 1)

        prefill, decode = [], []
        prefill_names, decode_names = [], []  # what each step computes (app/bench.py's profile)
        for pipe, group in embeds:
            prefill.append((pipe, group, lambda rows: (-(-(C // 4) // 64), self._groups(rows), 1)))
            decode.append((pipe, group, (-(-(C // 4) // 64), 1, 1)))
            prefill_names.append("embedding")
            decode_names.append("embedding")
        for i, L in enumerate(self.layers):
            scale = 1.0 / math.sqrt(cfg.head_dim)
            if getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
                scale /= i + 1
            att_groups = self._groups(cfg.n_head)
            att_consts = dict(C=C, NH=cfg.n_head, HD=cfg.head_dim, N_CTX=self.n_ctx, SCALE=scale,
                              ATT_GROUPS=att_groups, ATT_SPLITS=self.att_splits)
            attn = self._pipeline("attention.wgsl", "attention_rows" if self.cpu else "attention", **att_consts)
            if self.cpu:  # one invocation per (row, head): see attention.wgsl
                att_prefill = lambda rows: (-(-(rows * cfg.n_head) // 64), 1, 1)  # noqa: E731
                att_decode = (-(-cfg.n_head // 64), 1, 1)
            else:
                att_prefill = lambda rows, g=att_groups: (g, rows, 1)  # noqa: E731
                att_decode = (att_groups, 1, 1)
            ro, rw = self.dummy_ro, self.dummy_rw
            attn_group = bind(attn, [s, self.q, L["kv"], self.att])
            att_prefill_step = (attn, attn_group, att_prefill)
            if self.tiled_attention:  # flash-attention-style prefill: see attention.wgsl
                tiled_att = self._pipeline("attention.wgsl", "attention_tiled", **att_consts)
                att_prefill_step = (tiled_att, bind(tiled_att, [s, self.q, L["kv"], self.att]),
                                    lambda rows: (cfg.n_head, -(-rows // 16), 1))
            if self.split_attention:
                split = self._pipeline("attention.wgsl", "attention_split", **att_consts)
                att_decode_step = (split, bind(split, [s, self.q, L["kv"], self.att_part]), (cfg.n_head, self.att_splits, 1))
                proj_input = self.att_part
            else:
                att_decode_step = (attn, attn_group, att_decode)
                proj_input = self.att
            prefill += [
                (ln, bind(ln, [s, self.x, L["ln_1.g"], L["ln_1.b"], self.xn]), ln_counts),
                (t_qkv, bind(t_qkv, [s, self.xn, L["attn.w"], L["attn.b"], self.q, L["kv"]]), tiled(3 * C)),
                att_prefill_step,
                (t_proj, bind(t_proj, [s, self.att, L["proj.w"], L["proj.b"], self.x, rw]), tiled(C)),
                (ln, bind(ln, [s, self.x, L["ln_2.g"], L["ln_2.b"], self.xn]), ln_counts),
                (t_fc, bind(t_fc, [s, self.xn, L["fc.w"], L["fc.b"], self.h, rw]), tiled(M)),
            ]
            if t_mlp_sum is None:
                prefill.append((t_mlp, bind(t_mlp, [s, self.h, L["mlp.w"], L["mlp.b"], self.x, rw]), tiled(C)))
            else:  # split K: partial sums to scratch, then one pass adds them (see matmul.wgsl)
                prefill += [
                    (t_mlp, bind(t_mlp, [s, self.h, L["mlp.w"], L["mlp.b"], self.split_scratch, rw]),
                     lambda rows: (-(-C // 64), -(-rows // 64), mlp_split)),
                    (t_mlp_sum, bind(t_mlp_sum, [s, self.split_scratch, None, L["mlp.b"], self.x, rw]),
                     lambda rows: (-(-(C // 4) // 64), rows, 1)),
                ]
            decode += [
                (g_qkv, bind(g_qkv, [s, self.x, L["attn.w"], L["attn.b"], self.q, L["kv"], L["ln_1.g"], L["ln_1.b"]]),
                 gemv(3 * C)),
                att_decode_step,
                (g_proj, bind(g_proj, [s, proj_input, L["proj.w"], L["proj.b"], self.x, rw, ro, ro]), gemv(C)),
                (g_fc, bind(g_fc, [s, self.x, L["fc.w"], L["fc.b"], self.h, rw, L["ln_2.g"], L["ln_2.b"]]), gemv(M)),
                (g_mlp, bind(g_mlp, [s, self.h, L["mlp.w"], L["mlp.b"], self.x, rw, ro, ro]), gemv(C)),
            ]
            prefill_names += ["layer_norm_1", "qkv", "attention", "attn_proj", "layer_norm_2", "mlp_fc", "mlp_proj"]
            if t_mlp_sum is not None:
                prefill_names.append("mlp_proj_sum")
            decode_names += ["ln_1+qkv", "attention", "attn_proj", "ln_2+mlp_fc", "mlp_proj"]
        # The head and top-k run only on the last prefill chunk (count 0 elsewhere).
        tail = [(pipe, group, (groups, 1, 1)) for pipe, group, groups in heads]
        tail += topk
        tail_names = ["ln_f+lm_head"] * len(heads) + (["topk_serial"] if self.cpu else ["topk_partial", "topk_merge"])
        self.prefill_names = prefill_names + tail_names
        self.decode_names = decode_names + tail_names
        self._prefill_steps = prefill
        self._tail_counts = [c for _, _, cs in tail for c in cs]
        self.prefill_plan = gpu.plan([(p, g) for p, g, _ in prefill] + [(p, g) for p, g, _ in tail])
        self.decode_plan = gpu.plan([(p, g) for p, g, _ in decode] + [(p, g) for p, g, _ in tail])
        self._decode_counts = [c for _, _, cs in decode for c in cs] + self._tail_counts
        self._decode_counts_js = None
        self.dispatches_per_decode_step = sum(1 for i in range(0, len(self._decode_counts), 3)
                                              if all(self._decode_counts[i:i + 3]))
        gpu.check()

    # ------------------------------------------------------------------------ running
    def reset(self):
        """Forget the sequence: the next prefill starts at position 0."""
        self.pos = 0

    def _write_step(self, ids, pos0: int, k: int, temperature: float, choice: GpuChoice = GREEDY):
        k = max(1, min(int(k), KMAX))  # as _submit_readback reads back
        # Valid settings beyond what the GPU's u32 / f32 hold mean the same there: a top-k of KMAX or
        # more cuts none of the candidates; a temperature past F32_MAX makes them all equal, and one
        # under the smallest normal f32 (which would round to 0, greedy) leaves only the ties at
        # the top, as it does.
        top_k = min(int(choice.top_k), KMAX)
        temperature = float(temperature)
        if temperature > 0:
            temperature = min(max(temperature, F32_MIN_NORMAL), F32_MAX)
        data = struct.pack(f"<IIIfIff{len(ids)}I", len(ids), pos0, k, temperature,
                           top_k, choice.top_p, choice.draw, *ids)
        self.gpu.write(self.step_buf, data)

    async def warm_up(self) -> float:
        """Run one prefill row and one decode step, then forget them; returns the seconds taken.

        Browsers compile pipelines lazily, on their first dispatch: on SwiftShader that takes tens
        of seconds for a GPT-2. Paying it here, while the load progress says "compiling", keeps it
        out of the first generation's time to first token and checks every kernel once."""
        t0 = time.perf_counter()
        self.reset()
        await self.prefill([0], k=1)
        await self.decode_step(0, k=1)
        self.reset()
        return time.perf_counter() - t0

    def _check_ids(self, ids):
        V = self.cfg.vocab_size
        for i in ids:
            if not (isinstance(i, int) and 0 <= i < V):
                raise ModelError(f"token id {i!r} is outside the vocabulary (0..{V - 1})")

    async def prefill(self, ids, k: int = 1, temperature: float = 0.0, full_logits: bool = False,
                      should_stop=None, choice: GpuChoice = GREEDY) -> StepResult | None:
        """Run the prompt `ids` (appended after what the cache holds) and return the candidates
        for the next token. Returns None if `should_stop()` turned true between chunks."""
        await self.drain()
        ids = list(ids)
        if not ids:
            raise ModelError("prefill needs at least one token")
        self._check_ids(ids)
        if self.pos + len(ids) > self.n_ctx:
            raise ModelError(f"{self.pos + len(ids)} tokens do not fit the context of {self.n_ctx}")
        for start in range(0, len(ids), self.chunk):
            piece = ids[start:start + self.chunk]
            last = start + self.chunk >= len(ids)
            rows = len(piece)
            self._write_step(piece, self.pos, k, temperature, choice)
            counts = [c for _, _, f in self._prefill_steps for c in f(rows)]
            counts += self._tail_counts if last else [0] * len(self._tail_counts)
            encoder = self.gpu.device.createCommandEncoder()
            self.gpu.encode(self.prefill_plan, counts, encoder)
            self.pos += rows
            if last:
                return await self.collect(self._submit_readback(encoder, k, temperature, full_logits))
            self.gpu.submit(encoder)
            await self.gpu.queue.onSubmittedWorkDone()  # lets Stop and the page in between chunks
            self.gpu.check()
            if should_stop is not None and should_stop():
                return None
        return None

    async def decode_step(self, token: int, k: int = 1, temperature: float = 0.0,
                          full_logits: bool = False, choice: GpuChoice = GREEDY) -> StepResult:
        """Append one token at position `pos` and return the candidates for the next one."""
        await self.drain()  # a step left in flight by an abandoned chained generation
        return await self.collect(self.submit_decode(token, k, temperature, full_logits, choice))

    def submit_decode(self, token: int | None, k: int = 1, temperature: float = 0.0, full_logits: bool = False,
                      choice: GpuChoice = GREEDY, pass_descriptor=None):
        """Submit one decode step without waiting for it; `collect` reads its result.

        token None chains decoding on the GPU: the step's input is the token the step submitted
        just before it chose (its `choice`, StepResult.choice), which the embedding reads from the
        top-k output, so the next step can be queued before Python has seen the previous one's
        result (its round trip hidden behind the GPU's work). Whoever chains must check, once the
        previous result is read, that the token it takes is that choice (generate.py does), and
        `rollback` a step it does not keep. `pass_descriptor`: see GPU.encode (app/bench.py's
        timestamps)."""
        if token is not None:
            self._check_ids([token])
        elif not self._inflight:
            raise ModelError("a chained decode step needs a step submitted before it")
        if self.pos + 1 > self.n_ctx:
            raise ModelError(f"the context of {self.n_ctx} tokens is full")
        self._write_step([CHAIN_ID if token is None else token], self.pos, k, temperature, choice)
        if self._decode_counts_js is None:
            from pyodide.ffi import to_js  # noqa: PLC0415 - only in Pyodide
            self._decode_counts_js = to_js(self._decode_counts)
        encoder = self.gpu.device.createCommandEncoder()
        self.gpu.encode(self.decode_plan, self._decode_counts_js, encoder, pass_descriptor)
        handle = self._submit_readback(encoder, k, temperature, full_logits)
        self.pos += 1
        return handle

    def _submit_readback(self, encoder, k: int, temperature: float, full_logits: bool):
        """Copy the top-k output (and all logits, if asked) to a read-back buffer at the end of
        `encoder`, submit it, and return the handle `collect` takes."""
        if len(self._inflight) >= len(self.out_stagings):
            raise ModelError("read the oldest step back (collect) before submitting another")
        if full_logits and self._inflight:
            raise ModelError("a step that reads every logit must be the only one in flight")
        k = max(1, min(int(k), KMAX))
        staging = self.out_stagings[self._next_staging]
        self._next_staging = (self._next_staging + 1) % len(self.out_stagings)
        encoder.copyBufferToBuffer(self.out, 0, staging, 0, (2 * k + 3) * 4)
        if full_logits:
            if self.logits_staging is None:
                self.logits_staging = self.gpu.buffer(self.cfg.vocab_size * 4, 0x0001 | 0x0008, "logits readback")
                self.buffers.append(self.logits_staging)
            encoder.copyBufferToBuffer(self.logits, 0, self.logits_staging, 0, self.cfg.vocab_size * 4)
        self.gpu.submit(encoder)
        handle = (staging, k, temperature, full_logits)
        self._inflight.append(handle)
        return handle

    async def collect(self, handle) -> StepResult:
        """Wait for a submitted decode step (the oldest in flight) and return its candidates."""
        if not self._inflight or self._inflight[0] is not handle:
            raise ModelError("decode steps are read back in the order they were submitted")
        self._inflight.pop(0)
        staging, k, temperature, full_logits = handle
        nbytes = (2 * k + 3) * 4
        self.last_readback_bytes = nbytes
        await self.gpu.map_read(staging)
        raw = staging.getMappedRange(0, nbytes).to_bytes()
        staging.unmap()
        self.gpu.check()
        choice, *values = struct.unpack(f"<I{k}I{k}f2f", raw[:nbytes])
        result = StepResult(ids=values[:k], logits=values[k:2 * k], max_logit=values[2 * k],
                            sum_exp=values[2 * k + 1], temperature=temperature if temperature > 0 else 1.0,
                            choice=choice)
        if full_logits:
            self.last_readback_bytes += self.cfg.vocab_size * 4
            await self.gpu.map_read(self.logits_staging)
            result.full_logits = array("f", self.logits_staging.getMappedRange(0, self.cfg.vocab_size * 4).to_bytes())
            self.logits_staging.unmap()
        return result

    def rollback(self, steps: int = 1):
        """Forget the last `steps` positions (a chained step that was not kept): the next step
        overwrites their KV-cache entries."""
        self.pos = max(0, self.pos - steps)

    async def drain(self):
        """Read back and drop every decode step still in flight (after a Stop, a stop string...)."""
        while self._inflight:
            try:
                await self.collect(self._inflight[0])
            except Exception:  # noqa: BLE001 - a lost device: nothing left to read
                self._inflight.clear()

    # ------------------------------------------------------------------------ housekeeping
    def gpu_bytes(self) -> int:
        return sum(int(b.size) for b in self.buffers)

    def free(self):
        for buf in self.buffers:
            self.gpu.free(buf)
        self.buffers = []
