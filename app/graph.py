"""What every model graph (app/model.py) shares: the context it can hold, the token table split
into buffers that fit one binding, the buffers around the blocks (the Step, logits, top-k and their
read-back), the embedding and the head, and the facts derived from the dispatch lists.

Standard library only. A subclass sets `cfg`, `shapes`, `limits`, `dtype`, builds `self.k`
(app/kernels.py Kernels) and writes its forward passes; see app/model.py.
"""

from __future__ import annotations

from .buffer_plan import BufferSpec, WeightSpec, split_rows
from .contract import (
    CHAIN_DEPTH_MAX,
    TOPK_OUTPUT_MAX_BYTES,
    TOPK_PARTIAL_WORDS,
    buffer_size,
    seen_mask_words,
    step_bytes,
    topk_groups,
)
from .errors import ModelError
from .weights import row_bytes

SPLIT_K_SCRATCH = "split-K partial sums"


def buffer(label: str, nbytes: int, usage: str = "storage", kind: str = "activations", bound: bool = True):
    return BufferSpec(label, buffer_size(nbytes), usage, kind, bound)


def matrix(name: str, rows: int, cols: int, dtype: str, sources: tuple | None = None,
           transposed: bool = False) -> WeightSpec:
    return WeightSpec(name, sources or (name,), rows, cols, dtype, transposed=transposed)


def vector(name: str, n: int, sources: tuple | None = None) -> WeightSpec:
    return WeightSpec(name, sources or (name,), 1, n, "F32")


class ModelGraph:
    """Base of the model graphs: see the module docstring."""

    cfg = None
    shapes = None
    limits: dict = {}
    dtype = "F32"
    # a matrix's format on the GPU where it is not `dtype` (a GGUF's mix), by the name of its tensor
    # (the label of one made of several, such as q|k|v)
    formats: dict = {}

    def fmt(self, key: str) -> str:
        """The format a matrix sits in on the GPU (its weight-format snippet in the kernels)."""
        return self.formats.get(key, self.dtype)

    @property
    def workgroup_limit(self) -> int:
        return int(self.limits.get("maxComputeWorkgroupStorageSize", 16384))

    @property
    def per_buffer(self) -> int:
        """The most bytes one bound buffer may hold on this adapter."""
        return min(int(self.limits.get("maxStorageBufferBindingSize", 1 << 27)),
                   int(self.limits.get("maxBufferSize", 1 << 28)))

    def fit_context(self, want: int, kernels_for) -> int:
        """The largest context <= want whose attention kernels (the plain one keeps a row of scores
        in workgroup memory) fit this adapter; `kernels_for(n)` is the Kernels for context n."""
        limit = self.workgroup_limit

        def fits(n: int) -> bool:
            k = kernels_for(n)
            return all(d.kernel.workgroup_bytes() <= limit for d in (
                k.attention_prefill(False, step="step", q="q", kv="kv", y="y"),
                k.attention_decode(False, step="step", q="q", kv="kv", y="y")))

        lo, hi = 0, want
        while lo < hi:  # the scores row grows with n
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            raise ModelError(f"the attention's head size {kernels_for(1).HD} is too large for this GPU's {limit} "
                             f"bytes of workgroup memory")
        return lo

    def token_tables(self, embed_name: str, head_name: str | None, vocab: int, width: int) -> None:
        """self.table (the token embedding) and self.head_table (the LM head: its own tensor, or the
        same table when tied), each split by rows into buffers that fit one binding."""
        self.table = split_rows(embed_name.removesuffix(".weight"), embed_name, vocab, width, self.fmt(embed_name),
                                self.per_buffer)
        self.head_table = (split_rows(head_name.removesuffix(".weight"), head_name, vocab, width,
                                      self.fmt(head_name), self.per_buffer) if head_name else self.table)

    def table_weights(self) -> list:
        return list(self.table) + (list(self.head_table) if self.head_table is not self.table else [])

    def embedding(self, positions: str | None = None) -> list:
        """(prefill, decode) dispatches of x = table[ids] (+ positions[pos]), one per split."""
        return [self.k.embed(w.row0, w.rows, w.dtype, step="step", wte=w.label, wpe=positions, x="x",
                             chain="topk out")
                for w in self.table]

    def head(self, gamma: str, beta: str | None = None, rms: bool = False) -> list:
        """logits = norm(last row of x) @ head.T, then the top candidates: the end of the last
        prefill chunk and of every decode step."""
        steps = [self.k.lm_head(w.row0, w.rows, w.dtype, rms, step="step", x="x", ln_gamma=gamma, ln_beta=beta,
                                wte=w.label, logits="logits") for w in self.head_table]
        return steps + self.k.topk(self.cfg.vocab_size, step="step", logits="logits", part="topk partial",
                                   out="topk out", seen="seen tokens")

    def norm_input(self, name: str, weight: str, bias: str | None = None) -> tuple:
        """How a decode GEMV takes the normalized x (LayerNorm with a bias, RMSNorm without): ([], the
        GEMV's fused-norm arguments), or on a CPU adapter ([the norm's own dispatch `name` into xn],
        the GEMV reading xn) (app/shapes.py fused_norms)."""
        if self.shapes.fused_norms:
            if bias is None:
                return [], dict(rms_input=True, x="x", norm_w=weight)
            return [], dict(ln_input=True, x="x", norm_w=weight, norm_b=bias)
        if bias is None:
            return [self.k.rms_norm(name, step="step", x="x", w=weight, y="xn")], dict(x="xn")
        return [self.k.layer_norm(name, step="step", x="x", gamma=weight, beta=bias, y="xn")], dict(x="xn")

    def fused_name(self, norm: str, gemv: str) -> str:
        """A decode GEMV's name in profiles: "ln_1+qkv" with its norm fused in, else "qkv"."""
        return f"{norm}+{gemv}" if self.shapes.fused_norms else gemv

    def scratch(self, K: int) -> str | None:
        """The partial-sum buffer of a prefill projection K deep, when it runs split (Kernels.split_k)."""
        return SPLIT_K_SCRATCH if self.k.split_k(K) > 1 else None

    def scratch_buffers(self, N: int, *depths: int) -> list:
        """The partial-sum buffer that split projections of N outputs and these depths share: the
        most splits x a prefill chunk's rows x N floats (none when no projection splits)."""
        splits = max(self.k.split_k(K) for K in depths)
        return [buffer(SPLIT_K_SCRATCH, splits * self.chunk * N * 4)] if splits > 1 else []

    def io_buffers(self) -> list:
        """The Step, the logits, the top-k buffers and their read-back."""
        V = self.cfg.vocab_size
        out = [buffer("step", step_bytes(self.chunk)), buffer("logits", V * 4, "storage_readable")]
        if not self.shapes.cpu:
            out.append(buffer("topk partial", topk_groups(V) * TOPK_PARTIAL_WORDS * 4))
        out.append(buffer("topk out", TOPK_OUTPUT_MAX_BYTES, "storage_readable"))
        # A read-back buffer for each step in flight: chained decode steps are read while the next ones run.
        out += [buffer(f"topk readback {i}", TOPK_OUTPUT_MAX_BYTES, "readback", bound=False)
                for i in range(CHAIN_DEPTH_MAX + 1)]
        out.append(buffer("logits readback", V * 4, "readback", bound=False))
        # Each step in flight keeps its logits on the GPU beside its read-back, so Python can read them
        # when the candidates cannot decide its choice (app/sampling.py), after later steps overwrote
        # `logits`; and the tokens the repetition penalty applies to (app/contract.py seen_mask).
        out += [buffer(f"logits kept {i}", V * 4, "storage_readable", bound=False) for i in range(CHAIN_DEPTH_MAX + 1)]
        # Decode steps submitted together (GPUModel.submit_decode_steps): each later one's Step waits
        # here, in its read-back slot's buffer, until the command buffer copies it into "step".
        out += [buffer(f"step queued {i}", step_bytes(1), "storage_readable", bound=False)
                for i in range(CHAIN_DEPTH_MAX + 1)]
        out.append(buffer("seen tokens", seen_mask_words(V) * 4))
        return out

    def computed_tensors(self) -> dict:
        """Weights the engine computes itself (name -> an object with dtype, shape, data)."""
        return {}

    def all_dispatches(self) -> list:
        return self.prefill + self.decode + self.tail

    @property
    def dispatches_per_decode_step(self) -> int:
        return sum(1 for d in self.decode + self.tail if all(d.counts()))

    def decode_weight_bytes(self) -> int:
        """Bytes of weights one decode step reads: every weight its dispatches bind, except the
        embedding tables and the rotary table, of which it reads one row each (a token id falls in
        one split of the token table only)."""
        weights = {w.label: w for w in self.weights}
        steps = self.decode + self.tail
        full = {label for d in steps if d.name != "embedding" for name, label in d.bind
                if label in weights and name != "rope_table"}
        rows = {weights[label].sources: row_bytes(weights[label].cols, weights[label].dtype)
                for d in steps for name, label in d.bind
                if label in weights and (d.name == "embedding" or name == "rope_table")}
        return sum(weights[label].nbytes for label in full) + sum(rows.values())
