"""The decode GEMV variants a GPU may be given (app/shapes.py KernelShapes: gemv_wide_f16,
gemv_unroll, gemv_unroll_paired, gemv_stage_blocks, gemv_copy_input, gemv_deep_rows; Q4_0 rows read
as one stream), each built exactly as the engine builds it (app/kernels.py Kernels.linear_gemv and
lm_head for the GPU shapes, cpu false) and run in the page on SwiftShader against numpy: linear.wgsl's
gemv plain, with RMS_INPUT, with ATT_INPUT (split attention blocks merged on the way in), swiglu and
residual, and lm_head.wgsl, for F32 / F16 / BF16 and Q8_0 / Q4_0 / Q4_1 / Q4_K / Q6_K where a variant
applies, on awkward shapes: K = 576 / 960 / 2048 / 3072 and odd numbers of blocks (every other row
starting mid-word), N and vocabulary rows not a multiple of GEMV_ROWS, staged chunks that do not divide
K; and a CPU adapter's GEMV (cpu true: one invocation per 1, 2 or 4 rows). Each case also checks that
the variant it names is the one the kernel got (snippet, GEMV_UNROLL, STAGE_BLOCKS, COPY_INPUT,
GEMV_ROWS, Q4_0_STREAM), so a silent fallback to the default would fail. One module each
(tests/kernel_harness.py)."""

from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as kh
from app.contract import ATT_BLOCK, epilogue
from app.kernels import STAGED_FORMATS, Kernels
from app.shapes import KernelShapes
from app.weights import BLOCK_FORMATS
from kernel_harness import assert_close, assert_sentinel, block_table, f32, read_f32, sentinel, step, step_bytes, weight
from test_kernels_quant import dequantize, packed, quantize

pytestmark = pytest.mark.browser

EPS = 1e-6
FLOAT_DTYPES = {"F32": "f32", "F16": "f16p", "BF16": "bf16p"}  # the bytes kernel_harness.weight makes
WIDE = {"gemv_wide_f16": True}
WIDE4 = {"gemv_wide_f16": True, "gemv_unroll": 4}
ALL = {"gemv_wide_f16": True, "gemv_unroll": 4, "gemv_stage_blocks": 32, "gemv_copy_input": True}


def cdiv(a, b):
    return -(-a // b)


@pytest.fixture(scope="module")
def kpage(booted_page):
    kh.install(booted_page)
    return booted_page


def kernels(fmt: str, overrides: dict, *, n_head: int = 4, head_dim: int = 64, n_ctx: int = 64) -> Kernels:
    shapes = KernelShapes.for_adapter(False, overrides)
    return Kernels(shapes, fmt, C=n_head * head_dim, n_head=n_head, head_dim=head_dim, n_ctx=n_ctx, eps=EPS)


def matrix(values: np.ndarray, fmt: str, seed: int) -> tuple[bytes, np.ndarray]:
    """(the GPU bytes of `values` stored as `fmt`, the values the GPU sees as float64)."""
    if fmt in FLOAT_DTYPES:
        return weight(values, FLOAT_DTYPES[fmt])
    return packed(values, fmt, seed)


def expect_variant(k, fmt: str, K: int, overrides: dict, plain_input: bool = False) -> None:
    values = k.values
    shapes = KernelShapes.for_adapter(False, overrides)  # the overrides over a GPU's defaults
    unroll = values.get("GEMV_UNROLL", values.get("HEAD_UNROLL"))
    stream = k.shader == "linear.wgsl" and values["Q4_0_STREAM"]  # takes the whole unroll (app/kernels.py)
    capped = (values.get("EPILOGUE") == epilogue("swiglu") or fmt in BLOCK_FORMATS) and not stream
    assert unroll == (min(shapes.gemv_unroll, shapes.gemv_unroll_paired) if capped else shapes.gemv_unroll), values
    assert k.wide == (shapes.gemv_wide_f16 and fmt in ("F16", "BF16") and K % 8 == 0), k.snippet
    if k.shader == "lm_head.wgsl":
        lanes = values["HEAD_LANES"]
        assert values["Q4_0_STREAM"] == (fmt == "Q4_0" and not shapes.cpu and K % 256 == 0 and 32 % lanes == 0
                                         and lanes >= 8), values
    tile = shapes.row_tile(fmt)
    if k.shader == "lm_head.wgsl":
        assert values["HEAD_ROW_TILE"] == (tile if values["HEAD_LANES"] == 1 else 1), values
    if k.shader == "linear.wgsl":
        staged = shapes.gemv_stage_blocks and fmt in STAGED_FORMATS and tile == 1
        assert bool(values["STAGE_BLOCKS"]) == bool(staged), values
        assert values["GEMV_ROW_TILE"] == tile, values
        assert values["COPY_INPUT"] == (shapes.gemv_copy_input and plain_input), values
        prepared = values["RMS_INPUT"] or values["LN_INPUT"] or values["ATT_INPUT"] or values["COPY_INPUT"]
        deep = shapes.gemv_deep_rows and K > shapes.deep_gemv_k and not prepared and tile == 1
        assert values["GEMV_ROWS"] == (shapes.gemv_deep_rows if deep else shapes.linear_gemv_rows), values
        lanes = 256 // values["GEMV_ROWS"]
        stream = (fmt == "Q4_0" and not shapes.cpu and K % 256 == 0 and lanes % 32 == 0 and tile == 1
                  and not values["STAGE_BLOCKS"])
        assert values["Q4_0_STREAM"] == stream, values


def rms_ref(x, w):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x * x).mean() + EPS) * w


def silu(v):
    return v / (1.0 + np.exp(-v))


def attention_blocks(r, n_head: int, head_dim: int, splits: int, used: int) -> tuple[np.ndarray, np.ndarray]:
    """attention_split's output layout [H, splits, HD + 2] (each block's unnormalized sum, its max score
    and its sum of exponentials) with `used` blocks filled, and the merged rows numpy expects."""
    blocks = f32(r.standard_normal((n_head, splits, head_dim + 2)))
    blocks[:, :, head_dim] = f32(3.0 * r.standard_normal((n_head, splits)))
    blocks[:, :, head_dim + 1] = f32(0.5 + r.random((n_head, splits)))
    blocks[:, used:] = f32(1e4)  # past the blocks holding positions 0..pos0: must not be read
    b = blocks[:, :used].astype(np.float64)
    e = np.exp(b[:, :, head_dim] - b[:, :, head_dim].max(axis=1, keepdims=True))
    merged = (e[:, :, None] * b[:, :, :head_dim]).sum(axis=1) / (e * b[:, :, head_dim + 1]).sum(axis=1)[:, None]
    return blocks, merged.reshape(-1)


GEMV_CASES = [  # (fmt, mode, K, N, overrides)
    ("F16", "rms", 576, 140, WIDE4),
    ("F16", "swiglu", 960, 70, WIDE),
    ("F16", "residual", 2048, 36, {"gemv_unroll": 2, "gemv_copy_input": True}),
    ("F16", "att", 3072, 100, ALL),
    ("F16", "plain", 196, 36, WIDE4),          # K % 8 != 0: the packed snippet, unrolled
    ("BF16", "rms", 960, 100, {"gemv_wide_f16": True, "gemv_unroll": 2}),
    ("BF16", "residual", 2048, 36, WIDE),
    ("F32", "swiglu", 576, 70, {"gemv_unroll": 4}),
    ("F16", "rms", 1600, 40, {"gemv_unroll": 8}),       # 400 packs: a round of 8 and a last round of 4.5
    ("Q4_0", "swiglu", 2048, 36, {"gemv_unroll": 8}),   # 256 segments: exactly one round of 8 a lane
    ("Q8_0", "residual", 1600, 40, {"gemv_unroll": 8}),
    ("F32", "plain", 3072, 36, ALL),
    ("Q8_0", "rms", 576, 140, {"gemv_stage_blocks": 16}),
    ("Q8_0", "swiglu", 960, 70, {"gemv_stage_blocks": 8, "gemv_unroll": 2}),
    ("Q8_0", "residual", 2048, 36, {"gemv_unroll": 4, "gemv_copy_input": True}),
    ("Q8_0", "att", 2048, 100, {"gemv_stage_blocks": 4}),
    ("Q4_1", "residual", 3072, 36, ALL),        # the copied input leaves room for chunks of 4 blocks
    ("Q4_1", "residual", 3072, 40, {"gemv_stage_blocks": 32, "gemv_unroll": 4}),  # 3 chunks of 32 blocks
    ("Q4_1", "swiglu", 960, 70, {"gemv_stage_blocks": 16}),    # 30 blocks: chunks of 16 and 14
    ("Q4_0", "residual", 3072, 36, ALL),        # Q4_0 is aligned on the GPU: never staged
    ("Q4_0", "rms", 2048, 100, {"gemv_unroll": 4}),
    ("Q4_1", "att", 960, 36, {"gemv_stage_blocks": 8}),
    ("Q4_0", "plain", 480, 70, {"gemv_unroll": 4}),           # 15 blocks a row: rows straddle groups of 8
    ("Q4_0", "swiglu", 160, 36, {"gemv_unroll": 2}),          # 5 blocks, 20 segments, 32 lanes
    ("Q4_1", "plain", 576, 140, {"gemv_stage_blocks": 16}),
    ("Q4_1", "swiglu", 2048, 36, ALL),
    ("F16", "rms", 2048, 100, {"gemv_row_tile": 4}),          # rows per lane: N not a multiple of 8 x 4
    ("F32", "plain", 196, 33, {"gemv_row_tile": 2}),
    ("Q4_0", "swiglu", 960, 70, {"gemv_row_tile": 2}),
    ("Q4_0", "att", 480, 36, {"gemv_row_tile": 4, "linear_gemv_rows": 16}),
    ("Q8_0", "residual", 576, 40, {"gemv_row_tile": 4, "gemv_copy_input": True, "gemv_stage_blocks": 8}),
    ("Q4_K", "plain", 2048, 37, {"gemv_row_tile": 2}),
    ("Q4_K", "rms", 2048, 70, ALL),             # no staging for k-quants: unrolled only
    ("Q6_K", "swiglu", 768, 36, {"gemv_unroll": 2}),
    ("Q6_K", "residual", 3072, 40, {"gemv_unroll": 4}),
    # more lanes to a row of a deep GEMV with a plain input (K > KernelShapes.deep_gemv_k)
    ("F16", "residual", 8192, 37, {"gemv_deep_rows": 2}),
    ("Q4_0", "residual", 3072, 36, {"gemv_deep_rows": 4}),     # Q4_0 rows as one stream, 64 lanes a row
    ("Q4_0", "swiglu", 768, 70, {"gemv_unroll": 2}),          # 3 groups a row: a last round of 1
    ("Q4_0", "att", 1024, 36, {"gemv_deep_rows": 2}),         # prepared input: 8 rows, not deep
    ("Q4_0", "plain", 4096, 20, {"gemv_deep_rows": 2}),       # 128 lanes: 4 groups a step
    ("Q8_0", "plain", 6400, 20, {"gemv_deep_rows": 1}),
    ("F16", "plain", 1600, 37, {"gemv_deep_rows": 4, "deep_gemv_k": 1024}),  # deep from a lower depth
    # a CPU adapter's one invocation per 1, 2, 4 or 8 rows (N not a multiple of the tile)
    ("F32", "plain", 768, 37, {"cpu": True, "gemv_row_tile": 4}),
    ("F32", "plain", 768, 37, {"cpu": True, "gemv_row_tile": 8}),
    ("F32", "swiglu", 192, 21, {"cpu": True, "gemv_row_tile": 8}),
    ("F32", "att", 512, 7, {"cpu": True, "gemv_row_tile": 8}),      # fewer rows than one tile
    ("F16", "rms", 512, 7, {"cpu": True, "gemv_row_tile": 8}),      # any format but F32: 4 (KernelShapes.row_tile)
    ("Q4_0", "swiglu", 256, 45, {"cpu": True, "gemv_row_tile": 8}),
    ("Q6_K", "residual", 512, 13, {"cpu": True, "gemv_row_tile": 8}),
    ("F32", "residual", 768, 37, {"cpu": True, "gemv_row_tile": 1}),
    ("F16", "rms", 576, 70, {"cpu": True, "gemv_row_tile": 2}),
    ("BF16", "swiglu", 64, 5, {"cpu": True, "gemv_row_tile": 2}),
    ("Q4_0", "swiglu", 256, 37, {"cpu": True, "gemv_row_tile": 4}),
    ("Q8_0", "residual", 1024, 38, {"cpu": True, "gemv_row_tile": 4}),
    ("Q6_K", "plain", 768, 39, {"cpu": True, "gemv_row_tile": 4}),
]


@pytest.mark.parametrize("fmt, mode, K, N, overrides", GEMV_CASES,
                         ids=[f"{f}-{m}-K{k}-N{n}-{'+'.join(f'{a}={b}' for a, b in o.items())}"
                              for f, m, k, n, o in GEMV_CASES])
def test_gemv_variant_equals_numpy(kpage, fmt, mode, K, N, overrides):
    """y = out(x W^T + b) for one row with the variant on, as the engine builds it for a GPU (8 rows per
    workgroup, 32 lanes each); row 1 of x is garbage that must not leak in."""
    r = np.random.default_rng(K + N + len(mode))
    rows_w = 2 * N if mode == "swiglu" else N
    w_b, w = matrix(0.3 * r.standard_normal((rows_w, K)), fmt, K + N)
    bias = mode in ("plain", "swiglu")
    b = f32(0.1 * r.standard_normal(rows_w)) if bias else sentinel(4)
    g = f32(1.0 + 0.3 * r.standard_normal(K))
    y0 = f32(r.standard_normal(N))
    head_dim = 64 if K % 64 == 0 else 4
    k = kernels(fmt, overrides, n_head=K // head_dim, head_dim=head_dim, n_ctx=4 * ATT_BLOCK)
    if mode == "att":
        splits = k.att_splits
        pos0 = 2 * ATT_BLOCK + 5  # blocks 0..2 hold positions 0..pos0
        x, xin = attention_blocks(r, K // head_dim, head_dim, splits, 3)  # the 4th unused
        step_b = step_bytes(1, pos0=pos0)
    else:
        x = f32(r.standard_normal((2, K)))
        x[1] = 1e4
        xin = rms_ref(x[0], g) if mode == "rms" else x[0].astype(np.float64)
        step_b = step_bytes(1)
    out = {"swiglu": "swiglu", "residual": "residual", "att": "residual"}.get(mode, "store")
    d = k.linear_gemv("gemv", K, N, out, fmt, rms_input=mode == "rms", att_input=mode == "att", step="step", x="x",
                      w="w", bias="b" if bias else None, y="y", norm_w="g" if mode == "rms" else None)
    expect_variant(d.kernel, fmt, K, overrides, plain_input=mode not in ("rms", "att"))
    v = xin @ w.T + (b if bias else 0)
    ref = silu(v[:N]) * v[N:] if mode == "swiglu" else (y0 + v if out == "residual" else v)
    bufs = {"step": step_b, "x": x, "w": w_b, "b": b, "g": g,
            "y": np.concatenate([y0 if out == "residual" else sentinel(N), sentinel(4)])}
    steps = [step("linear.wgsl", "gemv", d.kernel.values, dict(d.bind), d.counts(), d.kernel.snippet, d.kernel.fixed)]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:N], ref, 3e-5, f"gemv {fmt} {mode}")
    assert_sentinel(y[N:], "past the output")


HEAD_CASES = [  # (fmt, C, V, parts (row0, rows), overrides)
    ("F16", 576, 301, [(0, 301)], WIDE4),
    ("BF16", 960, 97, [(0, 50), (50, 47)], {"gemv_wide_f16": True, "gemv_unroll": 2}),
    ("F32", 200, 301, [(0, 301)], {"gemv_unroll": 4}),
    ("Q4_0", 2048, 97, [(0, 97)], {"gemv_unroll": 4}),      # rows as one stream of groups, 8 lanes a row
    ("Q4_0", 768, 70, [(0, 33), (33, 37)], {"head_lanes": 32}),  # 3 groups a row, one segment a lane each
    ("Q4_0", 256, 40, [(0, 40)], {"head_lanes": 16}),
    ("Q4_0", 480, 40, [(0, 40)], {}),                       # C % 256 != 0: the generic block path
    ("Q8_0", 576, 140, [(0, 70), (70, 70)], {"gemv_unroll": 2}),
    ("Q4_1", 960, 40, [(0, 40)], ALL),
    ("Q4_K", 768, 70, [(0, 70)], {"gemv_unroll": 4}),
    ("Q6_K", 256, 100, [(0, 100)], {"gemv_unroll": 2}),
    # a CPU adapter: one invocation per 1, 2, 4 or 8 adjacent rows of a split (splits not a multiple
    # of the tile)
    ("F32", 200, 301, [(0, 150), (150, 151)], {"cpu": True, "gemv_row_tile": 4}),
    ("F32", 200, 301, [(0, 150), (150, 151)], {"cpu": True, "gemv_row_tile": 8}),
    ("Q8_0", 576, 45, [(0, 5), (5, 40)], {"cpu": True, "gemv_row_tile": 8}),  # but F32: 4
    ("Q4_K", 768, 19, [(0, 19)], {"cpu": True, "gemv_row_tile": 8}),
    ("F16", 576, 97, [(0, 97)], {"cpu": True, "gemv_row_tile": 2}),
    ("Q8_0", 576, 141, [(0, 70), (70, 71)], {"cpu": True, "gemv_row_tile": 4}),
    ("Q4_0", 2048, 6, [(0, 6)], {"cpu": True, "gemv_row_tile": 4}),
    ("BF16", 960, 97, [(0, 97)], {"cpu": True, "gemv_row_tile": 1}),
]


@pytest.mark.parametrize("fmt, C, V, parts, overrides", HEAD_CASES,
                         ids=[f"{f}-C{c}-V{v}-{len(p)}parts-{'+'.join(f'{a}={b}' for a, b in o.items())}"
                              for f, c, v, p, o in HEAD_CASES])
def test_lm_head_variant_equals_numpy(kpage, fmt, C, V, parts, overrides):
    """logits = RMSNorm(last row) . table rows with the variant on, the table split by rows over buffers
    (each split its own dispatch, from its first row ROW0)."""
    rows = 3
    r = np.random.default_rng(C + V)
    x = f32(2.0 + r.standard_normal((rows, C)))
    g = f32(1.0 + 0.3 * r.standard_normal(C))
    table = f32(0.3 * r.standard_normal((V, C)))
    if fmt in FLOAT_DTYPES:
        raw, w = weight(table, FLOAT_DTYPES[fmt])
        per_row = len(raw) // V
        split = [raw[row0 * per_row:(row0 + n) * per_row] for row0, n in parts]
    else:
        blocks = quantize(table, fmt)
        w = dequantize(blocks, fmt, table.shape).astype(np.float64)
        split = [block_table(blocks[row0:row0 + n], fmt) for row0, n in parts]
    k = kernels(fmt, overrides, n_head=C // 64 if C % 64 == 0 else 1, head_dim=64 if C % 64 == 0 else C)
    bufs = {"step": step_bytes(rows), "x": x, "g": g, "beta": sentinel(4), "logits": sentinel(V + 4)}
    steps = []
    for i, ((row0, n), raw) in enumerate(zip(parts, split)):
        bufs[f"wte{i}"] = raw + bytes(-len(raw) % 4)
        d = k.lm_head(row0, n, fmt, rms=True, step="step", x="x", ln_gamma="g", ln_beta="beta", wte=f"wte{i}",
                      logits="logits")
        expect_variant(d.kernel, fmt, C, overrides)
        steps.append(step("lm_head.wgsl", "lm_head", d.kernel.values, dict(d.bind), d.counts(), d.kernel.snippet))
    logits = read_f32(kh.run(kpage, bufs, steps, ["logits"])["logits"])
    assert_close(logits[:V], rms_ref(x[-1], g) @ w.T, 3e-5, f"head {fmt}")
    assert_sentinel(logits[V:], "past the vocabulary")
