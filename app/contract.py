"""The contract between Python and the WGSL kernels, written once: the structs a shader reads or
writes, the constants both sides use, and the named epilogues of the matrix kernels.

Standard library only: the engine, the tools and the tests all import it. What the kernels declare
about themselves (their constants, bindings and workgroup memory) is read from the .wgsl files by
app/wgsl.py; what is here is prepended to every shader module as WGSL source (`wgsl_prelude`), so
neither side can drift from the other.
"""

from __future__ import annotations

import math
import struct

from .weights import BLOCK_FORMATS, GROUPED_FORMATS

# ------------------------------------------------------------------------------ shared constants

KMAX = 64              # most candidates a step returns (top-k on the GPU)
CHAIN_ID = 0xFFFFFFFF  # token id meaning "the token the previous step chose, read on the GPU"
NO_ID = 0xFFFFFFFF     # top-k output: no candidate in this place (fewer real logits than k)
TOPK_CHUNK = 2048      # logits per workgroup in topk_partial (8 KB of workgroup memory)
ATT_BLOCK = 64         # cache positions per block of the split decode attention
# A huge negative finite f32 stands for -infinity: WGSL rejects an infinite constant expression,
# and this still compares below every real logit and gives exp(NEG_INF - m) == 0.
NEG_INF = -3.0e38
F32_MAX = 3.4028234663852886e38
F32_MIN_NORMAL = 1.1754943508222875e-38

# name -> (WGSL type, value): every shader module gets these as `const` declarations.
SHARED_CONSTANTS = {
    "KMAX": ("u32", KMAX),
    "CHAIN_ID": ("u32", CHAIN_ID),
    "NO_ID": ("u32", NO_ID),
    "TOPK_CHUNK": ("u32", TOPK_CHUNK),
    "ATT_BLOCK": ("u32", ATT_BLOCK),
    "NEG_INF": ("f32", NEG_INF),
    "F32_MAX": ("f32", F32_MAX),
    # words of a group of Q4_0 blocks in the GPU's layout (app/weights.py GROUPED_FORMATS; common.wgsl)
    "Q4_0_GROUP_WORDS": ("u32", GROUPED_FORMATS["Q4_0"] * BLOCK_FORMATS["Q4_0"][1] // 4),
}


def wgsl_literal(wgsl_type: str, value) -> str:
    """A Python value as a WGSL literal of `wgsl_type` ('u32', 'i32', 'f32' or 'bool')."""
    if wgsl_type == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"a bool constant needs True or False, got {value!r}")
        return "true" if value else "false"
    if isinstance(value, bool):
        raise TypeError(f"a {wgsl_type} constant got a bool ({value!r})")
    if wgsl_type == "u32":
        if not (isinstance(value, int) and 0 <= value < 1 << 32):
            raise ValueError(f"a u32 constant needs an integer in [0, 2**32), got {value!r}")
        return f"{value}u"
    if wgsl_type == "i32":
        if not (isinstance(value, int) and -(1 << 31) <= value < 1 << 31):
            raise ValueError(f"an i32 constant needs an integer in [-2**31, 2**31), got {value!r}")
        return f"{value}i"
    if wgsl_type == "f32":
        value = float(value)
        if not math.isfinite(value) or abs(value) > F32_MAX:
            raise ValueError(f"an f32 constant must be finite and within the f32 range, got {value!r}")
        return f"{value!r}f" if "e" in repr(value) or "." in repr(value) else f"{value!r}.0f"
    raise ValueError(f"unknown WGSL constant type {wgsl_type!r}")


# ------------------------------------------------------------------------------------ Step

# The per-run parameters: one small storage buffer written once per prefill chunk or decode step,
# read by every kernel of that run. (name, WGSL type, meaning); `ids` (a runtime array) follows.
STEP_FIELDS = (
    ("rows", "u32", "number of sequence rows in this run (1 for a decode step)"),
    ("pos0", "u32", "position of row 0 in the sequence = tokens already in the KV cache"),
    ("k", "u32", "candidates wanted from top-k (1 = greedy)"),
    ("temperature", "f32", "temperature of the log-sum-exp top-k reports (<= 0 means 1) and of the token it "
                           "chooses (<= 0: greedy)"),
    ("top_k", "u32", "that choice's top-k (0 = off)"),
    ("top_p", "f32", "that choice's top-p (1 = off)"),
    ("draw", "f32", "the uniform number in [0, 1) the CPython sampler will draw for that choice"),
    ("penalty", "f32", "repetition penalty (1 = off): top-k ranks a seen token's logit l < 0 as l * penalty, "
                       "any other as l * inv_penalty"),
    ("inv_penalty", "f32", "1 / penalty, rounded once to f32 (a multiplication is exact to half an ulp where "
                           "WGSL's division is not)"),
)
_STRUCT_CODES = {"u32": "I", "f32": "f"}
STEP_HEADER = struct.Struct("<" + "".join(_STRUCT_CODES[t] for _, t, _ in STEP_FIELDS))


def step_bytes(rows: int) -> int:
    """Bytes of a Step holding `rows` token ids (at least one)."""
    return STEP_HEADER.size + 4 * max(1, rows)


def pack_step(ids, pos0: int, k: int = 1, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
              draw: float = 0.0, rows: int | None = None, penalty: float = 1.0) -> bytes:
    """A Step for `ids` (rows = len(ids) unless given). Values beyond what the GPU's u32 / f32
    hold are clamped to what means the same there: a top-k of KMAX or more cuts no candidate; a
    temperature past F32_MAX makes every candidate equal, one under the smallest normal f32 (which
    would round to 0, greedy) keeps only the ties at the top, as it does in f64. A penalty past the
    f32 range is clamped into it (the kernel clamps the penalized logits too)."""
    ids = list(ids) or [0]
    temperature = float(temperature)
    if temperature > 0:
        temperature = min(max(temperature, F32_MIN_NORMAL), F32_MAX)
    penalty = min(max(float(penalty), F32_MIN_NORMAL), F32_MAX)
    inv_penalty = min(max(1.0 / penalty, F32_MIN_NORMAL), F32_MAX)
    header = STEP_HEADER.pack(len(ids) if rows is None else rows, pos0, max(1, min(int(k), KMAX)), temperature,
                              min(int(top_k), KMAX), float(top_p), float(draw), penalty, inv_penalty)
    return header + struct.pack(f"<{len(ids)}I", *ids)


def step_struct_wgsl() -> str:
    fields = "".join(f"  {name}: {wgsl_type},\n" for name, wgsl_type, _ in STEP_FIELDS)
    return "struct Step {\n" + fields + "  ids: array<u32>,\n}\n"


# ------------------------------------------------------------------------------ top-k output

# topk.wgsl writes, as u32 words: the chosen token, k candidate ids (best first; NO_ID where there
# is no candidate), their k logits (f32 bits), M = the largest logit, S = sum(exp((l - M) / T)), and,
# when the choice was drawn in id order over the vocabulary or in a top-p nucleus larger than the
# candidates, the weights before the chosen token and its own, then for the nucleus the weights
# before its last token and that token's own (f32, S's units; else zeros): with S they bound where
# the draw and the cut fell (app/sampling.py). The logits are the model's; with a repetition penalty
# the order (and M, S and the weights) are those of the penalized logits, which app/sampling.py
# recomputes in f64.


def topk_output_bytes(k: int) -> int:
    return (2 * k + 7) * 4


TOPK_OUTPUT_MAX_BYTES = topk_output_bytes(KMAX)
# Decode steps a chained generation may queue ahead of the one Python reads next: each step in
# flight has its own read-back buffer (CHAIN_DEPTH_MAX + 1 of them). Queued steps go to the GPU in
# submits of DEFAULT_STEPS_PER_SUBMIT (app/runner.py submit_decode_steps), so a submit's host cost
# (~0.2 ms in Node) is paid once for them. On the H200 (Node + Dawn, BENCH.md) one step ahead left the
# GPU idle between steps, two kept it busy one submit at a time; queued four deep in submits of two,
# a host-bound model gains 5-15% a token (the bundled model 0.379 -> 0.333 ms, GPT-2 117M f16 0.477
# -> 0.462) and a GPU-bound one nothing, while a deeper queue mostly adds to what a Stop or a
# sampling miss must read back and throw away.
CHAIN_DEPTH_MAX = 8
DEFAULT_CHAIN_DEPTH = 4
DEFAULT_STEPS_PER_SUBMIT = 2
# topk_partial's per-chunk record: KMAX ids, KMAX values, the chunk's max and sum.
TOPK_PARTIAL_WORDS = 2 * KMAX + 2


# ------------------------------------------------------------------------------ seen tokens

# The tokens the repetition penalty applies to, as a bit mask: token t is bit t % 32 of word t / 32.
# Python writes it when a generation starts or takes another token than the GPU chose; every top-k
# run sets the bit of the token it chose (the input of the chained step after it).


def seen_mask_words(vocab_size: int) -> int:
    return -(-vocab_size // 32)


def seen_mask(ids, vocab_size: int) -> bytes:
    """The mask with the bits of `ids` set (each in 0..vocab_size - 1)."""
    words = [0] * seen_mask_words(vocab_size)
    for t in set(ids):
        words[t >> 5] |= 1 << (t & 31)
    return struct.pack(f"<{len(words)}I", *words)


def topk_groups(vocab_size: int) -> int:
    return -(-vocab_size // TOPK_CHUNK)


def unpack_topk(raw: bytes, k: int) -> tuple:
    """-> (chosen id, ids, logits, M, S, (weight before the chosen token, its weight, weight before
    the nucleus's last token, its weight)) from topk_output_bytes(k) bytes."""
    chosen, *values = struct.unpack(f"<I{k}I{k}f6f", bytes(raw[:topk_output_bytes(k)]))
    return chosen, values[:k], values[k:2 * k], values[2 * k], values[2 * k + 1], tuple(values[2 * k + 2:])


# ------------------------------------------------------------------------------ dispatch budget


def decode_dispatch_limit(n_layer: int, fused_norms: bool) -> int:
    """Most dispatches a decode step may take: per block 6 with the norms fused into the GEMVs
    (Llama: q|k|v, rope, attention, o, gate|up with silu, down; GPT-2 needs 5), 8 with each norm its
    own dispatch (app/shapes.py fused_norms, off on a CPU adapter); plus embedding, head and top-k."""
    return (6 if fused_norms else 8) * n_layer + 4


# ------------------------------------------------------------------------------ epilogues

# What linear.wgsl (every projection) does with each result v of X @ W^T + b: the constant EPILOGUE.
EPILOGUES = {
    "store": 0,      # Y[r, c] = v
    "gelu_tanh": 1,  # Y[r, c] = gelu_new(v), GPT-2's tanh approximation
    "gelu_erf": 2,   # Y[r, c] = gelu(v), the exact erf form
    "residual": 3,   # Y[r, c] += v (Y is the residual stream)
    "qkv": 4,        # columns [0, C) -> Y; [C, 2C) and [2C, 3C) -> this layer's K and V caches
    "swiglu": 5,     # Y[r, c] = silu(gate) * up, gate and up from W's rows c and N + c (linear.wgsl)
}


def epilogue(name: str) -> int:
    try:
        return EPILOGUES[name]
    except KeyError:
        raise ValueError(f"unknown epilogue {name!r}; known: {', '.join(EPILOGUES)}") from None


# ------------------------------------------------------------------------------ the prelude


def wgsl_prelude() -> str:
    """WGSL source every module starts with: the shared constants and the Step struct."""
    consts = "".join(f"const {name}: {t} = {wgsl_literal(t, v)};\n" for name, (t, v) in SHARED_CONSTANTS.items())
    return "// app/contract.py: shared constants and structs\n" + consts + step_struct_wgsl()


# ------------------------------------------------------------------------------ buffer sizes

def buffer_size(nbytes: int) -> int:
    """The size a GPU buffer of `nbytes` gets: whole 16-byte units, at least 16 (WebGPU needs
    sizes in multiples of 4 for copies; 16 keeps vec4 bindings whole)."""
    return max(16, (int(nbytes) + 15) // 16 * 16)
