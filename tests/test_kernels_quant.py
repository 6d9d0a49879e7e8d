"""The Llama family's weight-table kernels (linear.wgsl's linear_tiled / linear_rows / gemv,
embedding.wgsl, lm_head.wgsl) reading ggml's Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 blocks and Q4_K, Q5_K and
Q6_K super-blocks exactly as GGUF stores them (34 / 18 / 20 / 22 / 24-byte blocks, 144 / 176 / 210-byte
super-blocks, so many start mid-word; Q4_0 in the GPU's groups of 8, app/weights.py to_gpu_layout), run
in the page on SwiftShader against numpy with the dequantized weights (tools/quants.py,
itself equal to the gguf package bit for bit; the gguf package's own dequantizer for the k-quants,
whose blocks tools/kquants.py makes).

Shapes are awkward on purpose: K = 576 / 960 / 2048 / 3072 and K of an odd number of blocks (96, 160,
480: every other row then starts 2 bytes into a word); for the k-quants K = 256 ... 3072 (an odd number
of Q6_K super-blocks: every other row starts mid-word, and every other super-block does), N not a
multiple of the 64-wide tiles, of GEMV_ROWS or of 4, rows not a multiple of 64 or 4; the GPU shapes
(GEMV_ROWS 8 and 4, lanes reduced in a tree; HEAD_LANES 8) and the CPU-adapter ones (GEMV_ROWS 256,
HEAD_LANES 1, fewer workgroups than blocks); store, residual and swiglu epilogues, RMS_INPUT and
ATT_INPUT; the parts of one fused matrix in different formats writing their own columns of one output
(Y_COLS / Y_COL0). Some rows are scaled down so that their blocks' f16 scales are subnormal (an adapter flushing
them to zero would fail the exact embedding checks). The table bytes are followed by garbage up to a
whole word, and output buffers start as a sentinel so that writes outside the expected region fail too."""

from __future__ import annotations

import math
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import kernel_harness as kh
from app.contract import ATT_BLOCK, EPILOGUES
from app.weights import from_gpu_layout, matrix_bytes, to_gpu_layout
from app.wgsl import WEIGHT_SNIPPETS
from kernel_harness import assert_close, assert_sentinel, block_table, f32, read_f32, sentinel, step, step_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import kquants, quants  # noqa: E402

pytestmark = pytest.mark.browser

FORMATS = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")


def quantize(values, fmt):
    return (kquants if fmt in kquants.BLOCK_BYTES else quants).quantize(values, fmt)


def dequantize(blocks, fmt, shape):
    return (kquants if fmt in kquants.BLOCK_BYTES else quants).dequantize(blocks, fmt, shape)

EPS = 1e-6
linear_consts = partial(kh.linear_consts, eps=EPS)
STORE, RESIDUAL, SWIGLU = EPILOGUES["store"], EPILOGUES["residual"], EPILOGUES["swiglu"]
LINEAR_BIND = dict(step="step", x="x", w="w", bias="b", y="y", norm_w="g")


@pytest.fixture(scope="module")
def kpage(booted_page):
    kh.install(booted_page)
    return booted_page


def cdiv(a, b):
    return -(-a // b)


def packed(values: np.ndarray, fmt: str, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """A matrix quantized to `fmt` with every fifth row scaled down to subnormal f16 scales: (its GGUF
    bytes in the GPU's layout followed by garbage up to a whole word, its dequantized values as float64)."""
    values = f32(values).copy()
    values[::5] *= np.float32(1e-4)
    rows, cols = values.shape
    blocks = quantize(values, fmt)
    assert blocks.nbytes == matrix_bytes(rows, cols, fmt)
    raw = to_gpu_layout(blocks.tobytes(), fmt)
    garbage = np.random.default_rng(seed).integers(0, 256, -len(raw) % 4, dtype=np.uint8).tobytes()
    return raw + garbage, dequantize(blocks, fmt, values.shape).astype(np.float64)


def rms_ref(x, w, eps=EPS):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def silu(v):
    return v / (1.0 + np.exp(-v))


PREFILL_CASES = [  # (entry, fmt, rows, K, N, epilogue, bias)
    ("linear_tiled", "Q8_0", 67, 576, 120, STORE, True),
    ("linear_tiled", "Q4_0", 5, 960, 70, RESIDUAL, False),
    ("linear_tiled", "Q4_1", 130, 96, 64, STORE, False),
    ("linear_tiled", "Q4_0", 3, 160, 36, STORE, True),
    ("linear_tiled", "Q8_0", 2, 3072, 68, RESIDUAL, True),
    ("linear_rows", "Q8_0", 6, 2048, 36, RESIDUAL, False),
    ("linear_rows", "Q4_0", 67, 3072, 40, STORE, True),
    ("linear_rows", "Q4_1", 3, 160, 70, STORE, True),
    ("linear_rows", "Q4_1", 9, 576, 130, RESIDUAL, False),
    ("linear_tiled", "Q4_K", 67, 768, 120, STORE, True),
    ("linear_tiled", "Q6_K", 5, 256, 70, RESIDUAL, False),
    ("linear_rows", "Q6_K", 6, 1536, 36, RESIDUAL, False),
    ("linear_rows", "Q4_K", 9, 512, 70, STORE, True),
    ("linear_tiled", "Q5_K", 67, 2048, 121, STORE, True),
    ("linear_rows", "Q5_K", 9, 768, 37, RESIDUAL, False),
    ("linear_tiled", "Q5_0", 67, 576, 121, STORE, True),
    ("linear_tiled", "Q5_1", 3, 960, 36, RESIDUAL, True),
    ("linear_rows", "Q5_0", 5, 96, 70, STORE, True),
    ("linear_rows", "Q5_1", 9, 160, 37, RESIDUAL, False),
]


@pytest.mark.parametrize("entry, fmt, rows, K, N, epilogue, bias", PREFILL_CASES,
                         ids=[f"{e}-{f}-rows{r}-K{k}-N{n}-{ep}-{'b' if b else 'nob'}"
                              for e, f, r, k, n, ep, b in PREFILL_CASES])
def test_linear_prefill_reads_blocks(kpage, entry, fmt, rows, K, N, epilogue, bias):
    """Y = X @ W^T (+ b), or Y += that, with W in a block format: the tiled kernel reading single packs
    (partial 64x64 tiles both ways) and the CPU one dequantizing whole blocks for 4 rows at a time."""
    r = np.random.default_rng(rows + K + N)
    x = f32(r.standard_normal((rows, K)))
    w_b, w = packed(0.3 * r.standard_normal((N, K)), fmt, rows)
    b = f32(0.1 * r.standard_normal(N)) if bias else sentinel(4)
    y0 = f32(r.standard_normal((rows, N)))
    ref = x.astype(np.float64) @ w.T + (b if bias else 0)
    if epilogue == RESIDUAL:
        ref = ref + y0
    y_init = np.concatenate([y0.ravel() if epilogue == RESIDUAL else sentinel(rows * N), sentinel(N)])
    bufs = {"step": step_bytes(rows), "x": x, "w": w_b, "b": b, "y": y_init}
    dispatch = (cdiv(N, 64), cdiv(rows, 64), 1) if entry == "linear_tiled" else (cdiv(N, 64), cdiv(rows, 4), 1)
    bind = {k: v for k, v in LINEAR_BIND.items() if k != "norm_w"}
    steps = [step("linear.wgsl", entry, linear_consts(K, N, epilogue, bias=bias), bind, dispatch, WEIGHT_SNIPPETS[fmt])]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:rows * N].reshape(rows, N), ref, 3e-5, f"{entry} {fmt}")
    assert_sentinel(y[rows * N:], "past the last row")


GEMV_CASES = [  # (epilogue, rms_input, fmt, K, N, GEMV_ROWS, groups, bias)
    (STORE, True, "Q8_0", 576, 120, 8, 15, True),      # GPU shape: 32 lanes per row, 18 blocks
    (SWIGLU, True, "Q4_0", 960, 100, 8, 13, False),    # gate|up: 2N rows
    (RESIDUAL, False, "Q4_1", 2048, 36, 4, 9, True),   # 64 lanes per row, one block each
    (STORE, False, "Q4_0", 96, 260, 8, 33, True),      # 3 blocks over 32 lanes; odd rows start mid-word
    (SWIGLU, True, "Q8_0", 160, 70, 4, 18, True),
    (STORE, True, "Q8_0", 3072, 60, 256, 1, False),    # CPU shape: one invocation per row
    (SWIGLU, True, "Q4_1", 160, 300, 256, 2, True),    # 2 groups striding over the blocks of rows
    (RESIDUAL, False, "Q4_0", 2048, 300, 256, 1, False),
    (STORE, True, "Q4_K", 2048, 120, 8, 15, True),     # GPU shape: 8 lanes per sub-block of 32
    (SWIGLU, True, "Q6_K", 768, 100, 8, 13, False),    # 3 super-blocks per row: odd ones start mid-word
    (RESIDUAL, False, "Q6_K", 3072, 36, 4, 9, True),
    (RESIDUAL, False, "Q4_K", 1536, 36, 4, 9, False),
    (STORE, True, "Q4_K", 256, 60, 256, 1, False),     # CPU shape
    (SWIGLU, True, "Q6_K", 256, 70, 256, 2, True),
    (STORE, True, "Q5_K", 3072, 121, 8, 16, True),     # GPU shape
    (RESIDUAL, False, "Q5_K", 768, 37, 4, 10, False),
    (SWIGLU, True, "Q5_K", 256, 71, 256, 2, True),     # CPU shape
    (STORE, True, "Q5_0", 576, 120, 8, 15, True),
    (SWIGLU, True, "Q5_1", 960, 100, 8, 13, False),
    (STORE, False, "Q5_0", 96, 260, 8, 33, True),      # 3 blocks: odd rows start mid-word
    (RESIDUAL, False, "Q5_1", 2048, 36, 4, 9, True),
    (SWIGLU, True, "Q5_0", 160, 300, 256, 2, True),    # CPU shape
    (STORE, True, "Q5_1", 3072, 60, 256, 1, False),
]


@pytest.mark.parametrize("epilogue, rms_input, fmt, K, N, rows_per_wg, groups, bias", GEMV_CASES,
                         ids=[f"{ep}-{'rms-' if rms else ''}{f}-K{k}-N{n}-rows{rw}-g{g}-{'b' if b else 'nob'}"
                              for ep, rms, f, k, n, rw, g, b in GEMV_CASES])
def test_linear_gemv_reads_blocks(kpage, epilogue, rms_input, fmt, K, N, rows_per_wg, groups, bias):
    """One row through W^T in a block format, a block per lane per step, with the RMSNorm fused in or
    not; swiglu from the 2N rows of W. Row 1 of x is garbage that must not leak in."""
    r = np.random.default_rng(K + N + epilogue)
    x = f32(r.standard_normal((2, K)))
    x[1] = 1e4
    g = f32(1.0 + 0.3 * r.standard_normal(K))
    rows_w = 2 * N if epilogue == SWIGLU else N
    w_b, w = packed(0.3 * r.standard_normal((rows_w, K)), fmt, K)
    b = f32(0.1 * r.standard_normal(rows_w)) if bias else sentinel(4)
    xin = rms_ref(x[0], g) if rms_input else x[0].astype(np.float64)
    v = xin @ w.T + (b if bias else 0)
    y0 = f32(r.standard_normal(N))
    ref = {STORE: lambda: v, RESIDUAL: lambda: y0 + v, SWIGLU: lambda: silu(v[:N]) * v[N:]}[epilogue]()
    bufs = {"step": step_bytes(1), "x": x, "w": w_b, "b": b, "g": g if rms_input else sentinel(4),
            "y": np.concatenate([y0 if epilogue == RESIDUAL else sentinel(N), sentinel(4)])}
    consts = linear_consts(K, N, epilogue, bias=bias, rms_input=rms_input, gemv_rows=rows_per_wg, groups=groups)
    steps = [step("linear.wgsl", "gemv", consts, LINEAR_BIND, (groups, 1, 1), WEIGHT_SNIPPETS[fmt])]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:N], ref, 3e-5, f"gemv {fmt}")
    assert_sentinel(y[N:], "past the output")


@pytest.mark.parametrize("fmt, NH, KVH, HD, pos0, N_CTX, rows_per_wg", [
    ("Q8_0", 3, 1, 64, 0, 16, 8),        # C = 192: 6 blocks
    ("Q4_0", 6, 2, 80, 130, 200, 8),     # C = 480: 15 blocks, 3 attention blocks
    ("Q4_1", 4, 4, 64, 64, 70, 256),     # CPU-shape projection
    ("Q6_K", 12, 4, 64, 40, 64, 8),      # C = 768: 3 super-blocks
    ("Q4_K", 4, 2, 64, 3, 16, 256),      # C = 256: one super-block, CPU shape
])
def test_split_attention_merged_by_packed_o_proj(kpage, fmt, NH, KVH, HD, pos0, N_CTX, rows_per_wg):
    """Decode: attention_split's blocks merged by the o projection reading a block format (gemv with
    ATT_INPUT, residual): x + attention(q) @ Wo^T."""
    r = np.random.default_rng(NH * HD + pos0)
    C = NH * HD
    splits = cdiv(N_CTX, ATT_BLOCK)
    scale = 1.0 / math.sqrt(HD)
    q = f32(r.standard_normal((1, C)))
    kv = f32(1.5 * r.standard_normal((2, KVH, N_CTX, HD)))
    kv[:, :, pos0 + 1:] = 1e4
    att = kh.attention_ref(q, kv, NH, HD, pos0, scale)[0]
    E = 36
    w_b, w = packed(0.3 * r.standard_normal((E, C)), fmt, C)
    x0 = f32(r.standard_normal(E))
    ref = x0 + att @ w.T
    bufs = {"step": step_bytes(1, pos0), "q": q, "kv": kv, "part": f32(np.full(NH * splits * (HD + 2), 7e3)),
            "w": w_b, "b": sentinel(4), "g": sentinel(4), "y": x0}
    att_consts = dict(C=C, NH=NH, KVH=KVH, HD=HD, N_CTX=N_CTX, SCALE=scale, ATT_GROUPS=NH, ATT_SPLITS=splits)
    groups = cdiv(E, rows_per_wg)
    consts = linear_consts(C, E, RESIDUAL, bias=False, att_input=True, gemv_rows=rows_per_wg, groups=groups, hd=HD,
                           splits=splits)
    steps = [step("attention.wgsl", "attention_split", att_consts, dict(step="step", q="q", kv="kv", y="part"),
                  (NH, splits, 1)),
             step("linear.wgsl", "gemv", consts, dict(LINEAR_BIND, x="part"), (groups, 1, 1), WEIGHT_SNIPPETS[fmt])]
    assert_close(read_f32(kh.run(kpage, bufs, steps, ["y"])["y"]), ref, 3e-5, f"attention + o_proj {fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_embedding_from_packed_table(kpage, fmt):
    """x[t] = the dequantized row ids[t] of a block-format token table split over two buffers by rows
    (3 blocks or super-blocks per row: every other row starts mid-word, but for Q4_K); each split
    writes only its own ids. Q8_0, Q4_0, Q5_0 and Q6_K rows equal the numpy dequantization exactly (one
    f32 multiply each), subnormal f16 scales included; Q4_1's / Q5_1's q * d + m and Q4_K's / Q5_K's
    d sc q - dmin m may be one fused multiply-add on the GPU."""
    C, V, rows = (768 if fmt in kquants.BLOCK_BYTES else 96), 50, 5
    r = np.random.default_rng(3)
    table = f32(r.standard_normal((V, C)))
    table[::5] *= np.float32(1e-4)
    blocks = quantize(table, fmt)
    want_table = dequantize(blocks, fmt, table.shape)
    split = 23
    ids = [4, 49, 0, 22, 23]
    bufs = {"step": step_bytes(rows, 7, ids=ids), "wte0": block_table(blocks[:split], fmt),
            "wte1": block_table(blocks[split:], fmt), "wpe": sentinel(4),
            "x": sentinel((rows + 1) * C), "chain": np.zeros(4, dtype=np.uint32)}
    steps = [step("embedding.wgsl", "embed", dict(C4=C // 4, ROW0=row0, ROWS=n, POSITIONS=False),
                  dict(step="step", wte=name, wpe="wpe", x="x", chain="chain"), (cdiv(C // 4, 64), rows, 1),
                  WEIGHT_SNIPPETS[fmt])
             for row0, n, name in [(0, split, "wte0"), (split, V - split, "wte1")]]
    x = read_f32(kh.run(kpage, bufs, steps, ["x"])["x"]).reshape(rows + 1, C)
    if fmt in ("Q4_1", "Q5_1"):
        np.testing.assert_allclose(x[:rows], want_table[ids], rtol=2e-7, atol=0)
    elif fmt in ("Q4_K", "Q5_K"):  # an FMA rounds once: off by at most an ulp of the largest term, d sc q or dmin m
        want = want_table[ids]
        ulp = 2.0 ** -22 * np.abs(want).max(axis=1, keepdims=True)
        assert (np.abs(x[:rows] - want) <= ulp).all(), np.abs(x[:rows] - want).max()
    else:
        np.testing.assert_array_equal(x[:rows], want_table[ids])
    assert_sentinel(x[rows], "row past step.rows")


HEAD_CASES = [  # (fmt, C, V, lanes, parts: (row0, rows, groups))
    ("Q8_0", 576, 301, 8, [(0, 301, 10)]),
    ("Q4_0", 160, 301, 1, [(0, 150, 1), (150, 151, 1)]),    # CPU shape, table split over two buffers
    ("Q4_1", 960, 97, 8, [(0, 97, 4)]),
    ("Q4_0", 2048, 40, 8, [(0, 40, 2)]),
    ("Q8_0", 96, 300, 1, [(0, 300, 2)]),
    ("Q4_K", 1536, 301, 8, [(0, 301, 10)]),
    ("Q6_K", 768, 97, 1, [(0, 50, 1), (50, 47, 1)]),     # CPU shape, split: the second split starts mid-word
    ("Q6_K", 3072, 40, 8, [(0, 40, 2)]),
    ("Q4_K", 256, 300, 1, [(0, 300, 2)]),
    ("Q5_K", 768, 97, 1, [(0, 50, 1), (50, 47, 1)]),     # CPU shape, split
    ("Q5_K", 2048, 41, 8, [(0, 41, 2)]),
    ("Q5_0", 160, 301, 1, [(0, 150, 1), (150, 151, 1)]),
    ("Q5_1", 576, 97, 8, [(0, 97, 4)]),
]


@pytest.mark.parametrize("fmt, C, V, lanes, parts", HEAD_CASES,
                         ids=[f"{f}-C{c}-V{v}-lanes{la}-{len(p)}parts" for f, c, v, la, p in HEAD_CASES])
def test_lm_head_over_packed_table(kpage, fmt, C, V, lanes, parts):
    """logits = RMSNorm(last row) . table rows with the table (the head, or the tied embedding) in a
    block format, a block per lane per step, split over buffers by rows."""
    rows = 3
    r = np.random.default_rng(C + V)
    x = f32(2.0 + r.standard_normal((rows, C)))
    g = f32(1.0 + 0.3 * r.standard_normal(C))
    table = f32(0.3 * r.standard_normal((V, C)))
    blocks = quantize(table, fmt)
    w = dequantize(blocks, fmt, table.shape).astype(np.float64)
    bufs = {"step": step_bytes(rows), "x": x, "g": g, "beta": sentinel(4), "logits": sentinel(V + 4)}
    steps = []
    for i, (row0, n, groups) in enumerate(parts):
        bufs[f"wte{i}"] = block_table(blocks[row0:row0 + n], fmt)
        consts = dict(C=C, C4=C // 4, EPS=EPS, ROW0=row0, ROWS=n, HEAD_LANES=lanes, HEAD_GROUPS=groups, RMS=True,
                      HEAD_UNROLL=1, HEAD_ROW_TILE=1, Q4_0_STREAM=False)
        steps.append(step("lm_head.wgsl", "lm_head", consts, dict(step="step", x="x", ln_gamma="g", ln_beta="beta",
                                                                  wte=f"wte{i}", logits="logits"),
                          (groups, 1, 1), WEIGHT_SNIPPETS[fmt]))
    logits = read_f32(kh.run(kpage, bufs, steps, ["logits"])["logits"])
    assert_close(logits[:V], rms_ref(x[-1], g) @ w.T, 3e-5, f"head {fmt}")
    assert_sentinel(logits[V:], "past the vocabulary")


FUSED_CASES = [  # (entry, rows, K, parts: ((fmt, N), ...), GEMV_ROWS, epilogue)
    ("gemv", 1, 512, (("Q4_K", 72), ("Q6_K", 24)), 8, STORE),             # q|k in Q4_K, v in Q6_K: GPU shape
    ("gemv", 1, 256, (("Q6_K", 40), ("Q4_K", 20), ("Q5_K", 12)), 256, STORE),  # CPU shape
    ("linear_tiled", 67, 768, (("Q4_K", 70), ("Q6_K", 30)), 8, STORE),
    ("linear_rows", 5, 256, (("Q8_0", 33), ("Q6_K", 7)), 8, RESIDUAL),
    ("gemv", 1, 576, (("Q5_0", 64), ("Q8_0", 32)), 8, STORE),             # llama.cpp's fallbacks for K = 576
]


@pytest.mark.parametrize("entry, rows, K, parts, rows_per_wg, epilogue", FUSED_CASES,
                         ids=[f"{e}-rows{r}-K{k}-{'+'.join(f for f, _ in p)}" for e, r, k, p, _, _ in FUSED_CASES])
def test_parts_of_a_fused_matrix_in_different_formats_write_their_own_columns(kpage, entry, rows, K, parts,
                                                                              rows_per_wg, epilogue):
    """A fused q|k|v whose parts a GGUF stores in different formats (llama.cpp's Q4_K_M: v in Q6_K
    in some layers) runs one dispatch per part, each reading its own table and writing columns
    Y_COL0 .. Y_COL0 + N - 1 of the one output of Y_COLS columns, adding its slice of the shared
    bias: together they equal X @ [W1; W2; ...]^T + b, and nothing past the output is written."""
    r = np.random.default_rng(K + rows)
    cols = sum(n for _, n in parts)
    x = f32(r.standard_normal((rows, K)))
    g = f32(1.0 + 0.3 * r.standard_normal(K))
    b = f32(0.1 * r.standard_normal(cols))
    y0 = f32(r.standard_normal((rows, cols)))
    xin = rms_ref(x, g) if entry == "gemv" else x.astype(np.float64)
    bufs = {"step": step_bytes(rows), "x": x, "b": b, "g": g,
            "y": np.concatenate([y0.ravel() if epilogue == RESIDUAL else sentinel(rows * cols), sentinel(4)])}
    steps, dense, col0 = [], [], 0
    for i, (fmt, n) in enumerate(parts):
        bufs[f"w{i}"], w = packed(0.3 * r.standard_normal((n, K)), fmt, i)
        dense.append(w)
        bind = dict(LINEAR_BIND, w=f"w{i}")
        if entry == "gemv":
            groups = cdiv(n, rows_per_wg)
            consts = linear_consts(K, n, epilogue, bias=True, rms_input=True, gemv_rows=rows_per_wg, groups=groups,
                                   y_cols=cols, y_col0=col0)
            steps.append(step("linear.wgsl", "gemv", consts, bind, (groups, 1, 1), WEIGHT_SNIPPETS[fmt]))
        else:
            del bind["norm_w"]
            tiles = (cdiv(n, 64), cdiv(rows, 64), 1) if entry == "linear_tiled" else (cdiv(n, 64), cdiv(rows, 4), 1)
            consts = linear_consts(K, n, epilogue, bias=True, y_cols=cols, y_col0=col0)
            steps.append(step("linear.wgsl", entry, consts, bind, tiles, WEIGHT_SNIPPETS[fmt]))
        col0 += n
    ref = xin @ np.concatenate(dense).T + b + (y0 if epilogue == RESIDUAL else 0)
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:rows * cols].reshape(rows, cols), ref, 3e-5, f"{entry} parts")
    assert_sentinel(y[rows * cols:], "past the output")


@pytest.mark.parametrize("fmt", ["Q8_0", "Q4_0", "Q4_1"])
def test_random_fill_writes_valid_blocks_in_the_gpu_layout(kpage, fmt):
    """roofline.wgsl fill_random (the benchmark's synthetic weights) puts each block's scales where the
    GPU's layout keeps them: every block of a 61-block table (a partial last group for Q4_0) has the
    f16 scale(s) the fill promises, so the weights span about +- spread around the centre."""
    blocks, spread, centre = 61, 0.25, 0.5 if fmt == "Q4_1" else 0.0
    block_bytes = quants.BLOCK_BYTES[fmt]
    size = len(to_gpu_layout(bytes(blocks * block_bytes), fmt))
    params = np.array([7, 0, 0, 0], dtype=np.uint32)
    params[1:3] = np.array([spread, centre], dtype=np.float32).view(np.uint32)
    consts = dict(READ_UNROLL=1, READ_CHUNKED=False, FMA_ITERS=1, FILL_FORMAT=["Q8_0", "Q4_0", "Q4_1"].index(fmt) + 3)
    steps = [step("roofline.wgsl", "fill_random", consts, dict(dst="dst", params="params"), (2, 1, 1))]
    bufs = {"dst": bytes(size + -size % 16), "params": params}
    out = kh.run(kpage, bufs, steps, ["dst"])["dst"]
    file_bytes = from_gpu_layout(out, fmt, blocks) if fmt == "Q4_0" else out[:blocks * block_bytes]
    heads = np.frombuffer(file_bytes, np.uint8).reshape(blocks, block_bytes)[:, :4].copy()
    d = heads[:, :2].copy().view(np.float16)[:, 0].astype(np.float64)
    largest = {"Q8_0": spread / 127, "Q4_0": spread / 8, "Q4_1": 2 * spread / 15}[fmt]
    assert np.all((d >= 0.5 * largest * 0.999) & (d <= largest * 1.001)), d
    if fmt == "Q4_1":  # the min: centre - spread * r, r in [0.5, 1]
        m = heads[:, 2:4].copy().view(np.float16)[:, 0].astype(np.float64)
        assert np.all((m >= centre - spread * 1.001) & (m <= centre - 0.5 * spread * 0.999)), m
    w = quants.dequantize(np.frombuffer(file_bytes, np.uint8).reshape(blocks, block_bytes), fmt, (blocks, 32))
    assert np.all(np.isfinite(w)) and np.abs(w - centre).max() <= spread * 1.01
