"""Every WGSL kernel family, run in the page on SwiftShader, against a numpy reference on awkward
sizes: rows not a multiple of 64 or 4, K not a multiple of 16, N not a multiple of 64, 3 and 5
heads of 8/12/24/64, positions crossing 256, vocabularies that are not a multiple of the top-k
chunk, ties and NaN in top-k, k from 1 to 64, temperatures other than 1; f32, f16 and bf16
weights. Both kernel shapes that app/model.py picks are covered: the GPU one (workgroup
reductions; one workgroup per block) and the CPU-adapter one (barrier-free *_rows / serial entry
points, GEMV_ROWS = 256, HEAD_LANES = 1, fewer workgroups than blocks striding over them).

Modules are assembled as the engine assembles them (app/wgsl.py module_source: weight snippet +
the contract's prelude + the kernel's declared constants + common.wgsl + kernel), through the
page's own pywebgpt.gpu; see tests/kernel_harness.py. Output buffers start as a sentinel so that
writes outside the expected region fail the test too.
f32 arithmetic is compared to float64 numpy with relative and magnitude-scaled absolute tolerances
of 1e-5..3e-5; f16/bf16 weights are compared against numpy with the same rounded weights."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import kernel_harness as kh
from app.contract import ATT_BLOCK, CHAIN_ID, EPILOGUES, KMAX, TOPK_CHUNK, TOPK_PARTIAL_WORDS, seen_mask
from app.sampling import Sampler, SamplingParams
from conftest import run_py
from kernel_harness import (
    NEG_INF,
    NO_ID,
    SNIPPETS,
    assert_close,
    assert_sentinel,
    f32,
    read_f32,
    read_u32,
    sentinel,
    step,
    step_bytes,
    weight,
)

pytestmark = pytest.mark.browser

STORE, GELU_TANH, GELU_ERF, RESIDUAL, QKV = (EPILOGUES[n] for n in ("store", "gelu_tanh", "gelu_erf", "residual",
                                                                       "qkv"))
EPILOGUE_NAMES = {code: name for name, code in EPILOGUES.items()}
EPS = 1e-5
LINEAR_BIND = dict(step="step", x="x", w="w", bias="b", y="y", kv="kv")  # linear_tiled / linear_rows
GEMV_BIND = dict(LINEAR_BIND, norm_w="g", norm_b="beta")


@pytest.fixture(scope="module")
def kpage(booted_page):
    """The module's booted page with the kernel runner installed: (page, adapter facts)."""
    info = kh.install(booted_page)
    return booted_page, info


def need_dtype(info, dtype):
    assert dtype in SNIPPETS, dtype


def rng(seed):
    return np.random.default_rng(seed)


def cdiv(a, b):
    return -(-a // b)


def case_ids(cases, fmt):
    return [fmt(*c) for c in cases]


# ------------------------------------------------------------------------------------ embedding

EMBED_CASES = [("f32", 6), ("f16p", 4), ("bf16p", 1), ("f16p", 2)]  # (dtype, workgroup rows R)


@pytest.mark.parametrize("dtype, R", EMBED_CASES, ids=case_ids(EMBED_CASES, lambda d, r: f"{d}-R{r}"))
def test_embedding_split_table(kpage, dtype, R):
    """x[t] = wte[ids[t]] + wpe[pos0 + t] with the token table split over two buffers (one dispatch
    each, each writing only its own ids); C/4 = 65 packs (two workgroups along x); positions at the
    end of the position table; R workgroup rows striding over the 6 rows (R = rows on a GPU). Row 4's
    id is CHAIN_ID: it takes the first word of the chain buffer (the previous step's chosen token)."""
    page, info = kpage
    need_dtype(info, dtype)
    r = rng(1)
    C, V, NPOS, rows, pos0 = 260, 50, 300, 6, 294
    split = 23
    ids = [0, 22, 23, 49, CHAIN_ID, 30]
    chained = 41  # what the chain buffer's first word says row 4 is
    wte_b, wte = weight(r.standard_normal((V, C)), dtype)
    wpe_b, wpe = weight(r.standard_normal((NPOS, C)), dtype)
    per_row = len(wte_b) // V
    bufs = {"step": step_bytes(rows, pos0, ids=ids), "wte0": wte_b[:split * per_row],
            "wte1": wte_b[split * per_row:], "wpe": wpe_b, "x": sentinel((rows + 1) * C),
            "chain": np.array([chained, 3, 2, 1], dtype=np.uint32)}
    steps = [step("embedding.wgsl", "embed", dict(C4=C // 4, ROW0=row0, ROWS=n, POSITIONS=True),
                  dict(step="step", wte=name, wpe="wpe", x="x", chain="chain"), (cdiv(C // 4, 64), R, 1),
                  SNIPPETS[dtype])
             for row0, n, name in [(0, split, "wte0"), (split, V - split, "wte1")]]
    x = read_f32(kh.run(page, bufs, steps, ["x"])["x"]).reshape(rows + 1, C)
    used = [chained if i == CHAIN_ID else i for i in ids]
    want = f32(wte[used]) + f32(wpe[pos0:pos0 + rows])  # one f32 addition, as on the GPU
    np.testing.assert_array_equal(x[:rows], want)
    assert_sentinel(x[rows], "row past step.rows")


# ----------------------------------------------------------------------------------- layer norm

LN_CASES = [  # (entry, C, rows, workgroups)
    ("layer_norm", 12, 7, 7),
    ("layer_norm", 1036, 7, 3),         # C/4 = 259 > 256 invocations; fewer workgroups than rows
    ("layer_norm_rows", 12, 67, 2),     # one invocation per row: 67 rows over two workgroups of 64
    ("layer_norm_rows", 1036, 5, 1),
]


@pytest.mark.parametrize("entry, C, rows, groups", LN_CASES,
                         ids=case_ids(LN_CASES, lambda e, c, r, g: f"{e}-C{c}-rows{r}-g{g}"))
def test_layer_norm(kpage, entry, C, rows, groups):
    """A large mean offset, so that a one-pass variance would lose digits; the row after step.rows
    must stay untouched."""
    page, _ = kpage
    r = rng(2)
    x = f32(50.0 + 3.0 * r.standard_normal((rows, C)))
    gamma, beta = f32(r.standard_normal(C)), f32(r.standard_normal(C))
    bufs = {"step": step_bytes(rows), "x": x, "g": gamma, "b": beta, "y": sentinel((rows + 1) * C)}
    steps = [step("layer_norm.wgsl", entry, dict(C=C, C4=C // 4, EPS=EPS),
                  dict(step="step", x="x", gamma="g", beta="b", y="y"), (groups, 1, 1))]
    y = read_f32(kh.run(page, bufs, steps, ["y"])["y"]).reshape(rows + 1, C)
    assert_close(y[:rows], kh.layer_norm_ref(x, gamma, beta, EPS), 2e-5, entry)
    assert_sentinel(y[rows], "row past step.rows")


# ------------------------------------------------------------------------- projections (linear.wgsl)
# GPT-2's Conv1D weights are W [K, N] in the file; the loader transposes them, so linear.wgsl reads
# W^T [N, K], one row per output, as it reads the Llama family's nn.Linear weights.


def linear_consts(K, N, epilogue, *, C=4, NH=1, HD=4, N_CTX=1, ln_input=False, att_input=False, gemv_rows=8,
                  groups=1, split_k=1):
    """linear.wgsl's constants for a GPT-2 projection (biased; the qkv epilogue's C, NH, HD and N_CTX;
    LayerNorm or split attention fused into the GEMV's input)."""
    return kh.linear_consts(K, N, epilogue, bias=True, eps=EPS, ln_input=ln_input, att_input=att_input,
                            gemv_rows=gemv_rows, groups=groups, hd=HD, splits=cdiv(N_CTX, ATT_BLOCK), C=C, NH=NH,
                            N_CTX=N_CTX, split_k=split_k)


def conv1d_weight(w, dtype):
    """A Conv1D weight W [K, N] as the GPU holds it: (the bytes of W^T [N, K] in `dtype`, W [K, N] as
    the GPU sees it, f64)."""
    w_b, wt = weight(np.asarray(w).T, dtype)
    return w_b, wt.T


def epilogue_ref(v, epilogue, y0=None):
    if epilogue == STORE:
        return v
    if epilogue == GELU_TANH:
        return kh.gelu_tanh_ref(v)
    if epilogue == GELU_ERF:
        return kh.gelu_erf_ref(v)
    if epilogue == RESIDUAL:
        return np.asarray(y0, dtype=np.float64) + v
    raise ValueError(epilogue)


def linear_buffers(r, epilogue, rows, N, C, NH, HD, N_CTX):
    """y (and the kv cache for qkv) starting as sentinels, or as a residual stream; returns (bufs, y0)."""
    y0 = None
    if epilogue == QKV:
        bufs = {"y": sentinel((rows + 1) * C), "kv": sentinel(2 * NH * N_CTX * HD)}
    elif epilogue == RESIDUAL:
        y0 = f32(r.standard_normal((rows, N)))
        bufs = {"y": np.concatenate([y0.ravel(), sentinel(N)]), "kv": sentinel(4)}
    else:
        bufs = {"y": sentinel((rows + 1) * N), "kv": sentinel(4)}
    return bufs, y0


def qkv_dims(heads):
    """(C, NH, HD) of the qkv epilogue's heads, or placeholders for the other epilogues."""
    NH, HD = heads or (1, 4)
    return (NH * HD if heads else 4), NH, HD


def check_linear(out, ref, epilogue, y0, *, rows, N, C, NH, HD, N_CTX, pos0, tol, what):
    y, kv = read_f32(out["y"]), read_f32(out["kv"])
    if epilogue != QKV:
        assert_close(y[:rows * N].reshape(rows, N), epilogue_ref(ref, epilogue, y0), tol, what)
        assert_sentinel(y[rows * N:], what + ": past the last row")
        assert_sentinel(kv, what + ": kv binding of a non-qkv epilogue")
        return
    # qkv: columns [0, C) -> y [rows, C]; [C, 2C) / [2C, 3C) -> K / V cache [NH, N_CTX, HD] at pos0 + r
    assert_close(y[:rows * C].reshape(rows, C), ref[:, :C], tol, what + " q")
    assert_sentinel(y[rows * C:], what + ": past the q rows")
    kv = kv.reshape(2, NH, N_CTX, HD)
    for part in (0, 1):
        want = ref[:, (part + 1) * C:(part + 2) * C].reshape(rows, NH, HD).transpose(1, 0, 2)
        assert_close(kv[part, :, pos0:pos0 + rows], want, tol, what + (" K cache", " V cache")[part])
    outside = np.ones(N_CTX, dtype=bool)
    outside[pos0:pos0 + rows] = False
    assert_sentinel(kv[:, :, outside], what + ": KV cache outside positions pos0..pos0+rows")


PREFILL_CASES = [
    # (entry, epilogue, dtype, rows, K, N, qkv heads (NH, HD), pos0, N_CTX)
    ("linear_tiled", STORE, "f32", 67, 36, 76, None, 0, 1),
    ("linear_tiled", STORE, "f16p", 67, 36, 76, None, 0, 1),
    ("linear_tiled", STORE, "bf16p", 3, 36, 76, None, 0, 1),
    ("linear_tiled", STORE, "f32", 130, 4, 200, None, 0, 1),      # K = 4: one step of 16, mostly padding
    ("linear_tiled", GELU_TANH, "f32", 67, 36, 76, None, 0, 1),
    ("linear_tiled", GELU_TANH, "f32", 5, 384, 40, None, 0, 1),   # K = 24 steps of 16
    ("linear_tiled", GELU_ERF, "bf16p", 67, 44, 76, None, 0, 1),
    ("linear_tiled", RESIDUAL, "f16p", 67, 300, 76, None, 0, 1),  # K = 18 steps of 16 and 12
    ("linear_tiled", QKV, "f32", 67, 36, 72, (3, 8), 250, 320),
    ("linear_tiled", QKV, "bf16p", 9, 28, 180, (5, 12), 255, 300),
    ("linear_tiled", QKV, "f16p", 33, 300, 72, (3, 8), 0, 33),    # the cache filled to its last slot
    ("linear_rows", STORE, "f32", 67, 36, 260, None, 0, 1),       # N = 260: five workgroups along x
    ("linear_rows", STORE, "bf16p", 2, 4, 76, None, 0, 1),
    ("linear_rows", GELU_TANH, "f16p", 6, 36, 76, None, 0, 1),
    ("linear_rows", GELU_ERF, "f32", 67, 28, 76, None, 0, 1),
    ("linear_rows", RESIDUAL, "bf16p", 5, 44, 76, None, 0, 1),
    ("linear_rows", QKV, "f16p", 67, 36, 72, (3, 8), 250, 320),
    ("linear_rows", QKV, "bf16p", 9, 8, 180, (5, 12), 255, 300),
]


@pytest.mark.parametrize("entry, epilogue, dtype, rows, K, N, heads, pos0, N_CTX", PREFILL_CASES,
                         ids=case_ids(PREFILL_CASES, lambda e, ep, d, r, k, n, *_:
                                      f"{e}-{EPILOGUE_NAMES[ep]}-{d}-rows{r}-K{k}-N{n}"))
def test_gpt2_linear_prefill(kpage, entry, epilogue, dtype, rows, K, N, heads, pos0, N_CTX):
    """epilogue(X @ W + b) over many rows for GPT-2's Conv1D W [K, N], given to linear.wgsl as W^T:
    the tiled kernel (64x64 tiles, K in steps of 16, partial tiles both ways) and the CPU one (4 rows
    per invocation, the last group of rows partial); qkv writes q and puts k, v in the KV cache at
    pos0.. by head."""
    page, info = kpage
    need_dtype(info, dtype)
    r = rng(3 + epilogue)
    C, NH, HD = qkv_dims(heads)
    x = f32(r.standard_normal((rows, K)))
    w_b, w = conv1d_weight(0.4 * r.standard_normal((K, N)), dtype)
    b = f32(0.1 * r.standard_normal(N))
    ref = x.astype(np.float64) @ w + b
    bufs, y0 = linear_buffers(r, epilogue, rows, N, C, NH, HD, N_CTX)
    bufs.update({"step": step_bytes(rows, pos0), "x": x, "w": w_b, "b": b})
    dispatch = (cdiv(N, 64), cdiv(rows, 64), 1) if entry == "linear_tiled" else (cdiv(N, 64), cdiv(rows, 4), 1)
    consts = linear_consts(K, N, epilogue, C=C, NH=NH, HD=HD, N_CTX=N_CTX)
    steps = [step("linear.wgsl", entry, consts, LINEAR_BIND, dispatch, SNIPPETS[dtype])]
    out = kh.run(page, bufs, steps, ["y", "kv"])
    check_linear(out, ref, epilogue, y0, rows=rows, N=N, C=C, NH=NH, HD=HD, N_CTX=N_CTX, pos0=pos0, tol=2e-5,
                 what=entry)


SPLIT_K_CASES = [
    # (epilogue, dtype, rows, K, N, SPLIT_K, qkv heads (NH, HD), pos0, N_CTX)
    (RESIDUAL, "f32", 67, 300, 76, 4, None, 0, 1),     # 80 k per split: 5 steps of 16, the last split 60
    (RESIDUAL, "f16p", 5, 3072, 40, 4, None, 0, 1),    # GPT-2's MLP projection depth
    (GELU_TANH, "bf16p", 130, 100, 72, 3, None, 0, 1),  # 48 k per split, the last split 4
    (QKV, "f32", 9, 64, 180, 2, (5, 12), 255, 300),
]


@pytest.mark.parametrize("epilogue, dtype, rows, K, N, splits, heads, pos0, N_CTX", SPLIT_K_CASES,
                         ids=case_ids(SPLIT_K_CASES, lambda ep, d, r, k, n, s, *_:
                                      f"{EPILOGUE_NAMES[ep]}-{d}-rows{r}-K{k}-N{n}-split{s}"))
def test_linear_split_k(kpage, epilogue, dtype, rows, K, N, splits, heads, pos0, N_CTX):
    """linear_tiled over SPLIT_K ranges of K into a scratch of partial sums, then linear_split_k_sum:
    the same epilogue(X @ W + b) as one pass (ranges of whole and partial steps of 16, the last range
    short; qkv's K and V land in the cache)."""
    page, info = kpage
    need_dtype(info, dtype)
    r = rng(11 + epilogue)
    C, NH, HD = qkv_dims(heads)
    x = f32(r.standard_normal((rows, K)))
    w_b, w = conv1d_weight(0.4 * r.standard_normal((K, N)) / np.sqrt(K / 64), dtype)
    b = f32(0.1 * r.standard_normal(N))
    ref = x.astype(np.float64) @ w + b
    bufs, y0 = linear_buffers(r, epilogue, rows, N, C, NH, HD, N_CTX)
    bufs.update({"step": step_bytes(rows, pos0), "x": x, "w": w_b, "b": b,
                 "scratch": np.zeros(splits * rows * N, np.float32)})
    consts = linear_consts(K, N, epilogue, C=C, NH=NH, HD=HD, N_CTX=N_CTX, split_k=splits)
    steps = [step("linear.wgsl", "linear_tiled", consts, dict(LINEAR_BIND, y="scratch"),
                  (cdiv(N, 64), cdiv(rows, 64), splits), SNIPPETS[dtype]),
             step("linear.wgsl", "linear_split_k_sum", consts, dict(step="step", x="scratch", bias="b", y="y", kv="kv"),
                  (cdiv(N, 64), rows, 1))]
    out = kh.run(page, bufs, steps, ["y", "kv"])
    check_linear(out, ref, epilogue, y0, rows=rows, N=N, C=C, NH=NH, HD=HD, N_CTX=N_CTX, pos0=pos0, tol=5e-5,
                 what="split-K linear")


GEMV_CASES = [
    # (ln_input, K, N, epilogue, GEMV_ROWS, groups, dtype, qkv heads (NH, HD), pos0, N_CTX)
    # blocks = ceil(N / GEMV_ROWS), each row's 256 / GEMV_ROWS lanes reduced in a tree; GPU: 8 rows
    # (32 lanes), groups = blocks or fewer striding; CPU: 256 rows (one invocation per row), groups <= 4
    (True, 300, 148, STORE, 8, 19, "f32", None, 0, 1),      # K/4 = 75 packs over 32 lanes
    (True, 300, 148, STORE, 8, 3, "f16p", None, 0, 1),
    (True, 44, 148, GELU_TANH, 8, 19, "bf16p", None, 0, 1),
    (False, 44, 148, GELU_ERF, 8, 7, "f32", None, 0, 1),
    (True, 44, 148, GELU_ERF, 8, 2, "f16p", None, 0, 1),
    (True, 1036, 76, GELU_TANH, 8, 10, "f16p", None, 0, 1),  # K/4 = 259 > 256: the LayerNorm's loops stride
    (False, 36, 76, RESIDUAL, 8, 10, "f16p", None, 0, 1),
    (False, 300, 76, RESIDUAL, 8, 4, "bf16p", None, 0, 1),
    (False, 28, 212, STORE, 8, 27, "f32", None, 0, 1),
    (True, 60, 180, QKV, 8, 23, "f32", (5, 12), 270, 300),
    (True, 24, 72, QKV, 8, 9, "bf16p", (3, 8), 0, 7),
    (False, 192, 576, QKV, 8, 4, "f16p", (3, 64), 299, 300),
    (True, 300, 148, GELU_ERF, 4, 37, "bf16p", None, 0, 1),  # 64 lanes per row
    (False, 28, 76, STORE, 1, 5, "f16p", None, 0, 1),        # 256 lanes per row, K/4 = 7 of them used
    (False, 28, 1040, GELU_ERF, 64, 3, "f32", None, 0, 1),   # 4 lanes per row, 3 groups over 17 blocks
    # GEMV_ROWS = 256, the CPU shape: one invocation per row, no reduction
    (True, 300, 1040, GELU_TANH, 256, 1, "f32", None, 0, 1),  # 5 blocks of 256, 1 group
    (True, 44, 1040, STORE, 256, 2, "bf16p", None, 0, 1),
    (True, 1036, 76, STORE, 256, 1, "f32", None, 0, 1),
    (False, 36, 148, RESIDUAL, 256, 1, "f16p", None, 0, 1),
    (True, 60, 180, QKV, 256, 1, "f16p", (5, 12), 257, 260),
    (True, 24, 72, QKV, 256, 1, "f32", (3, 8), 6, 7),
]


@pytest.mark.parametrize("ln_input, K, N, epilogue, gemv_rows, groups, dtype, heads, pos0, N_CTX", GEMV_CASES,
                         ids=case_ids(GEMV_CASES, lambda ln, k, n, ep, rw, g, d, *_:
                                      f"{'ln-' if ln else ''}{EPILOGUE_NAMES[ep]}-K{k}-N{n}-rows{rw}-g{g}"
                                      f"of{cdiv(n, rw)}-{d}"))
def test_gpt2_linear_gemv(kpage, ln_input, K, N, epilogue, gemv_rows, groups, dtype, heads, pos0, N_CTX):
    """The decode product of row 0 with GPT-2's Conv1D W [K, N], given to linear.wgsl's gemv as W^T
    (the x binding holds a second, garbage row that must not leak in): epilogue(LayerNorm(x) @ W + b)
    with ln_1 / ln_2 fused in (LN_INPUT: a large mean the kernel must take out), or x @ W + b; fewer
    workgroups than blocks of rows or as many; qkv puts k, v in the KV cache at pos0."""
    page, info = kpage
    need_dtype(info, dtype)
    assert groups <= cdiv(N, gemv_rows)
    r = rng(10 + K + N)
    C, NH, HD = qkv_dims(heads)
    x = f32(r.standard_normal((2, K)))
    x[0] += 7.0  # the fused LayerNorm must remove the mean
    x[1] = 1e4
    gamma, beta = f32(1.0 + 0.3 * r.standard_normal(K)), f32(0.2 * r.standard_normal(K))
    w_b, w = conv1d_weight(0.3 * r.standard_normal((K, N)), dtype)
    b = f32(0.1 * r.standard_normal(N))
    xin = kh.layer_norm_ref(x[0], gamma, beta, EPS) if ln_input else x[0].astype(np.float64)
    ref = (xin @ w + b)[None, :]
    bufs, y0 = linear_buffers(r, epilogue, 1, N, C, NH, HD, N_CTX)
    bufs.update({"step": step_bytes(1, pos0), "x": x, "w": w_b, "b": b})
    # Without LN_INPUT the model binds a small unused buffer to both norm bindings.
    bufs["g"], bufs["beta"] = (gamma, beta) if ln_input else (sentinel(4), sentinel(4))
    consts = linear_consts(K, N, epilogue, C=C, NH=NH, HD=HD, N_CTX=N_CTX, ln_input=ln_input, gemv_rows=gemv_rows,
                           groups=groups)
    steps = [step("linear.wgsl", "gemv", consts, GEMV_BIND, (groups, 1, 1), SNIPPETS[dtype])]
    out = kh.run(page, bufs, steps, ["y", "kv"])
    check_linear(out, ref, epilogue, y0, rows=1, N=N, C=C, NH=NH, HD=HD, N_CTX=N_CTX, pos0=pos0,
                 tol=3e-5 if ln_input else 2e-5, what="gemv")


def test_gelu_tanh_negative_inputs(kpage):
    """gelu_tanh must cube with x * x * x: pow(x, 3.0) is undefined for x < 0 in WGSL (NaN on many
    GPUs), which would break every negative pre-activation. Checked in the source, and by running
    the prefill and decode entry points on negative and positive inputs."""
    page, _ = kpage
    src = run_py(page, "from pywebgpt.wgsl import shader_source\nshader_source('linear.wgsl')")
    body = re.search(r"fn gelu_tanh\(.*?\n}", src, re.S).group(0)
    code = "\n".join(line.split("//")[0] for line in body.splitlines())
    assert "pow(" not in code, body
    assert re.search(r"v\s*\*\s*v\s*\*\s*v", code), body
    inputs = f32([-20, -8, -4, -3, -2, -1.5, -1, -0.5, -0.1, -1e-3, 0, 1e-3, 0.1, 0.5, 1, 2, 3, 8, 20, 0.25])
    n = len(inputs)  # 20: a multiple of 4
    for entry in ("linear_tiled", "linear_rows", "gemv"):
        if entry != "gemv":  # n rows [input, 0, 0, 0], times W^T = 4 x 4 ones: 4 outputs of each input
            consts = linear_consts(4, 4, GELU_TANH)
            x = np.zeros((n, 4), dtype=np.float32)
            x[:, 0] = inputs
            bufs = {"step": step_bytes(n), "x": x, "w": f32(np.ones((4, 4))), "b": f32(np.zeros(4)),
                    "y": sentinel(4 * n), "kv": sentinel(4)}
            bind, want_in = LINEAR_BIND, np.repeat(inputs, 4)
            dispatch = (1, 1, 1) if entry == "linear_tiled" else (1, cdiv(n, 4), 1)
        else:  # one row x = [1, 0, 0, 0]; the inputs are the first column of W^T [n, 4]
            consts = linear_consts(4, n, GELU_TANH, groups=cdiv(n, 8))
            w = np.zeros((n, 4), dtype=np.float32)
            w[:, 0] = inputs
            bufs = {"step": step_bytes(1), "x": f32([1.0, 0.0, 0.0, 0.0]), "w": w, "b": f32(np.zeros(n)),
                    "y": sentinel(n), "kv": sentinel(4), "g": sentinel(4), "beta": sentinel(4)}
            bind, want_in, dispatch = GEMV_BIND, inputs, (cdiv(n, 8), 1, 1)
        y = read_f32(kh.run(page, bufs, [step("linear.wgsl", entry, consts, bind, dispatch)], ["y"])["y"])
        assert not np.isnan(y).any(), f"{entry}: NaN from gelu_tanh at inputs {want_in[np.isnan(y)]}"
        assert_close(y, kh.gelu_tanh_ref(want_in), 1e-5, f"{entry} gelu_tanh")
        moderate = (want_in < 0) & (want_in >= -3)
        assert (y[moderate] < 0).all(), f"{entry}: gelu_tanh of small negative inputs must be negative: {y[moderate]}"
        assert (y[want_in > 0] > 0).all(), f"{entry}: gelu_tanh of positive inputs must be positive"


# ----------------------------------------------------------------------------------- attention

ATT_CASES = [
    # (entry, NH, HD, ATT_GROUPS, R (workgroup rows), rows, pos0, N_CTX, layer scale, KV heads)
    ("attention", 3, 8, 3, 5, 5, 0, 40, 1, 1),          # prefill from position 0, a workgroup per (head, row)
    ("attention", 5, 12, 2, 1, 1, 299, 300, 1, 5),      # decode at the last slot of a 300 context, groups < heads
    ("attention", 3, 24, 1, 2, 4, 254, 260, 3, 3),      # rows crossing position 256; scale / layer index
    ("attention", 5, 64, 3, 2, 2, 511, 520, 1, 1),      # > 512 positions: three strides of 256
    ("attention", 3, 64, 2, 4, 67, 200, 300, 1, 3),     # many prefill rows crossing 256, R < rows
    ("attention_tiled", 3, 8, 0, 0, 5, 0, 40, 1, 1),    # prefill from 0: one block of 16 rows, partly used
    ("attention_tiled", 3, 64, 0, 0, 67, 200, 300, 1, 3),  # 5 row blocks, keys in tiles of 16 past 256
    ("attention_tiled", 5, 12, 0, 0, 1, 299, 300, 1, 5),   # one row at the last slot
    ("attention_tiled", 2, 72, 0, 0, 33, 254, 300, 3, 1),  # HD = 72: lanes with 5 and 4 dims; scale / layer
    ("attention_tiled", 1, 4, 0, 0, 48, 0, 48, 1, 1),      # rows = 3 full blocks, keys = 3 full tiles
    ("attention_rows", 3, 8, 0, 0, 67, 0, 70, 1, 3),    # 201 (row, head) pairs: 4 workgroups of 64
    ("attention_rows", 5, 12, 0, 0, 1, 299, 300, 1, 1),
    ("attention_rows", 5, 24, 0, 0, 4, 254, 260, 3, 5),
    ("attention_rows", 3, 64, 0, 0, 3, 511, 520, 1, 3),
]


@pytest.mark.parametrize("entry, NH, HD, groups, R, rows, pos0, N_CTX, layer, KVH", ATT_CASES,
                         ids=case_ids(ATT_CASES, lambda e, nh, hd, g, R, rows, pos0, n_ctx, layer, kvh:
                                      f"{e}-nh{nh}-kvh{kvh}-hd{hd}" + (f"-g{g}-R{R}" if g else "")
                                      + f"-rows{rows}-pos{pos0}"))
def test_attention(kpage, entry, NH, HD, groups, R, rows, pos0, N_CTX, layer, KVH):
    """Causal attention of `rows` new rows at pos0.. against the KV cache, with KVH key/value heads
    shared by NH / KVH query heads each (1: multi-query; NH: GPT-2); cache slots past the last
    visible position hold huge values that must not leak in; the row after step.rows stays untouched."""
    page, _ = kpage
    r = rng(20 + HD)
    C = NH * HD
    scale = 1.0 / math.sqrt(HD) / layer
    q = f32(r.standard_normal((rows, C)))
    kv = f32(r.standard_normal((2, KVH, N_CTX, HD)))
    kv[:, :, pos0 + rows:] = 1e4
    consts = dict(C=C, NH=NH, KVH=KVH, HD=HD, N_CTX=N_CTX, SCALE=scale, ATT_GROUPS=max(groups, 1),
                  ATT_SPLITS=cdiv(N_CTX, ATT_BLOCK))
    dispatch = {"attention": (groups, R, 1), "attention_tiled": (NH, cdiv(rows, 16), 1)}.get(
        entry, (cdiv(rows * NH, 64), 1, 1))
    bufs = {"step": step_bytes(rows, pos0), "q": q, "kv": kv, "y": sentinel((rows + 1) * C)}
    steps = [step("attention.wgsl", entry, consts, dict(step="step", q="q", kv="kv", y="y"), dispatch)]
    y = read_f32(kh.run(page, bufs, steps, ["y"])["y"]).reshape(rows + 1, C)
    assert_close(y[:rows], kh.attention_ref(q, kv, NH, HD, pos0, scale), 3e-5, entry)
    assert_sentinel(y[rows], "row past step.rows")


SPLIT_CASES = [
    # (NH, HD, pos0, N_CTX, dtype, GEMV_ROWS, layer scale): decode attention split into blocks of 64
    # positions, merged by the attention projection as it reads its input
    (2, 8, 0, 16, "f32", 8, 1),         # the first token: one block holding one position
    (3, 12, 63, 64, "f16p", 8, 1),      # exactly one full block, N_CTX = one block
    (3, 12, 64, 200, "bf16p", 4, 2),    # a full block and a block of one
    (5, 24, 190, 300, "f32", 8, 1),     # 3 blocks, the last partial; 2 blocks past the sequence
    (2, 64, 511, 520, "f16p", 16, 1),   # 8 full blocks, the last slot of a 9th block left out
    (3, 100, 129, 130, "f32", 8, 1),    # HD > 64: a lane covers two dimensions; blocks of 64 + 64 + 2
    (1, 256, 70, 80, "f32", 256, 1),    # HD = 256, the largest head the model accepts; a row per invocation
]


@pytest.mark.parametrize("NH, HD, pos0, N_CTX, dtype, gemv_rows, layer", SPLIT_CASES,
                         ids=case_ids(SPLIT_CASES, lambda nh, hd, pos0, n_ctx, d, rw, layer:
                                      f"nh{nh}-hd{hd}-pos{pos0}-ctx{n_ctx}-{d}-rows{rw}"))
def test_split_attention_merged_by_the_projection(kpage, NH, HD, pos0, N_CTX, dtype, gemv_rows, layer):
    """Decode on a GPU: attention_split writes one partial softmax per (head, block of 64 cache
    positions) and GPT-2's attention projection (linear.wgsl gemv with ATT_INPUT, residual epilogue,
    Conv1D W given as W^T) merges them; the result is x + attention(q) @ W + b. Cache slots past
    pos0 hold huge values that must not leak in, and the partials of blocks past the sequence hold
    garbage that must not either."""
    page, info = kpage
    need_dtype(info, dtype)
    r = rng(40 + HD + pos0)
    C = NH * HD
    splits = cdiv(N_CTX, ATT_BLOCK)
    scale = 1.0 / math.sqrt(HD) / layer
    q = f32(r.standard_normal((1, C)))
    kv = f32(1.5 * r.standard_normal((2, NH, N_CTX, HD)))
    kv[:, :, pos0 + 1:] = 1e4
    att = kh.attention_ref(q, kv, NH, HD, pos0, scale)[0]
    N = 4 * cdiv(C, 8)  # any width: the projection's output need not be C here
    w_b, w = conv1d_weight(0.3 * r.standard_normal((C, N)), dtype)
    b = f32(0.1 * r.standard_normal(N))
    x0 = f32(r.standard_normal(N))
    ref = x0 + att @ w + b
    part = f32(np.full(NH * splits * (HD + 2), 7e3, dtype=np.float32))  # stale partials everywhere
    groups = cdiv(N, gemv_rows)
    bufs = {"step": step_bytes(1, pos0), "q": q, "kv": kv, "part": part, "w": w_b, "b": b, "y": x0,
            "kvo": sentinel(4), "g": sentinel(4), "beta": sentinel(4)}
    att_consts = dict(C=C, NH=NH, KVH=NH, HD=HD, N_CTX=N_CTX, SCALE=scale, ATT_GROUPS=NH, ATT_SPLITS=splits)
    proj_consts = linear_consts(C, N, RESIDUAL, C=C, NH=NH, HD=HD, N_CTX=N_CTX, att_input=True,
                                gemv_rows=gemv_rows, groups=groups)
    steps = [step("attention.wgsl", "attention_split", att_consts, dict(step="step", q="q", kv="kv", y="part"),
                  (NH, splits, 1)),
             step("linear.wgsl", "gemv", proj_consts, dict(GEMV_BIND, x="part", kv="kvo"), (groups, 1, 1),
                  SNIPPETS[dtype])]
    out = kh.run(page, bufs, steps, ["y", "part"])
    assert_close(read_f32(out["y"]), ref, 3e-5, "split attention + projection")
    blocks = read_f32(out["part"]).reshape(NH, splits, HD + 2)
    used = (pos0 + ATT_BLOCK) // ATT_BLOCK
    assert (blocks[:, used:] == np.float32(7e3)).all(), "blocks past the sequence must not be written"


# ------------------------------------------------------------------------------------- lm head

HEAD_CASES = [
    # (C, V, [(ROW0, ROWS, HEAD_GROUPS)], HEAD_LANES, dtype, rows); blocks = ceil(ROWS / (256 / lanes))
    (44, 203, [(0, 100, 2), (100, 103, 4)], 8, "f32", 3),
    (44, 203, [(0, 100, 1), (100, 103, 3)], 8, "f16p", 1),
    (44, 203, [(0, 203, 7)], 8, "bf16p", 2),
    (44, 203, [(0, 203, 4)], 8, "f16p", 2),
    (1032, 70, [(0, 70, 2)], 8, "f32", 2),                    # C/4 = 258 > 256
    (44, 600, [(0, 300, 1), (300, 300, 2)], 1, "f32", 3),     # CPU shape: one invocation per row
    (44, 600, [(0, 600, 2)], 1, "bf16p", 1),
    (1032, 70, [(0, 70, 1)], 1, "f16p", 2),
    (44, 203, [(0, 203, 2)], 4, "f32", 2),                    # a tuning shape: 64 rows x 4 lanes
]


@pytest.mark.parametrize("C, V, parts, lanes, dtype, rows", HEAD_CASES,
                         ids=case_ids(HEAD_CASES, lambda c, v, parts, lanes, d, rows:
                                      f"C{c}-V{v}-lanes{lanes}-" + "+".join(f"{n}g{g}" for _, n, g in parts) + f"-{d}"))
def test_lm_head(kpage, C, V, parts, lanes, dtype, rows):
    """logits = LayerNorm_f(x[rows - 1]) @ wte.T over a table split by rows, HEAD_GROUPS below or
    equal to the blocks of 256 / HEAD_LANES rows."""
    page, info = kpage
    need_dtype(info, dtype)
    r = rng(30 + C)
    x = f32(3.0 + 2.0 * r.standard_normal((rows, C)))
    gamma, beta = f32(1.0 + 0.2 * r.standard_normal(C)), f32(0.1 * r.standard_normal(C))
    wte_b, wte = weight(0.2 * r.standard_normal((V, C)), dtype)
    per_row = len(wte_b) // V
    bufs = {"step": step_bytes(rows), "x": x, "g": gamma, "b": beta, "logits": sentinel(V + 5)}
    steps = []
    for i, (row0, n, groups) in enumerate(parts):
        assert groups <= cdiv(n, 256 // lanes)
        bufs[f"wte{i}"] = wte_b[row0 * per_row:(row0 + n) * per_row]
        consts = dict(C=C, C4=C // 4, EPS=EPS, ROW0=row0, ROWS=n, HEAD_LANES=lanes, HEAD_GROUPS=groups, RMS=False,
                      HEAD_UNROLL=1, HEAD_ROW_TILE=1, Q4_0_STREAM=False)
        binds = dict(step="step", x="x", ln_gamma="g", ln_beta="b", wte=f"wte{i}", logits="logits")
        steps.append(step("lm_head.wgsl", "lm_head", consts, binds, (groups, 1, 1), SNIPPETS[dtype]))
    logits = read_f32(kh.run(page, bufs, steps, ["logits"])["logits"])
    want = wte @ kh.layer_norm_ref(x[rows - 1], gamma, beta, EPS)
    assert_close(logits[:V], want, 3e-5, "lm_head")
    assert_sentinel(logits[V:], "past the vocabulary")


# ----------------------------------------------------------------------------------------- topk


def topk_logits(kind, V, chunk, seed):
    r = rng(seed)
    if kind == "ties":  # exact ties inside and across chunks, NaN before and among them
        logits = f32(r.standard_normal(V))
        logits[[V - 1, min(chunk, V - 3), 17, min(chunk - 1, V - 4), 3]] = 20.0
        logits[[V // 2, 1]] = 19.0
        logits[[0, 2, min(chunk + 1, V - 5), V - 2]] = np.nan
        return logits
    if kind == "coarse":  # values on a coarse grid: ties everywhere, k = 64 cuts through them
        logits = f32(np.round(r.standard_normal(V) * 2) / 2)
        logits[r.choice(V, 40, replace=False)] = np.nan
        return logits
    if kind == "nan-chunk":  # a whole chunk of NaN (its max is -inf, its sum 0)
        logits = f32(4 * r.standard_normal(V))
        logits[chunk:2 * chunk] = np.nan
        return logits
    if kind == "spread":  # wide range: exp underflows for most logits at a low temperature
        return f32(30 * r.standard_normal(V))
    if kind == "flat":  # every logit the same: the order is the ids'
        logits = np.full(V, 1.5, dtype=np.float32)
        logits[r.choice(V, 7, replace=False)] = np.nan
        return logits
    if kind == "few":  # fewer real logits than k: 60, in every chunk; the rest NaN
        logits = np.full(V, np.nan, dtype=np.float32)
        logits[r.choice(V, 60, replace=False)] = f32(r.standard_normal(60))
        return logits
    raise ValueError(kind)


TOPK_CASES = [
    # (kind, V as chunks * CHUNK + extra, k, temperature)
    ("ties", (2, 4), 1, 0.0),
    ("ties", (2, 4), 7, 0.7),
    ("coarse", (2, 4), 64, 1.0),
    ("nan-chunk", (2, 4), 64, 1.0),
    ("spread", (2, 4), 5, 0.3),
    ("few", (2, 4), 64, 1.3),
    ("coarse", (0, 1000), 33, 1.7),  # one chunk, V < CHUNK
    ("ties", (0, 1000), 3, 2.5),
    ("spread", (2, 4), 100, 1.0),    # step.k > KMAX: the kernels return KMAX candidates
    ("spread", (62, 1000), 5, 0.3),  # a Llama-sized vocabulary: 63 chunks' candidates merged in workgroup memory
    # 17 x 64 candidates, more than the merge stages: its binary searches read `part`; and the serial
    # kernel's sum over 34,820 logits (summed in blocks, as one running sum drifted past 2e-5)
    ("ties", (16, 4), 64, 0.7),
    ("coarse", (16, 4), 64, 1.0),
    ("few", (16, 4), 64, 1.3),
    ("flat", (16, 4), 64, 1.0),      # every logit the same: ids in order
]
TOPK_ENTRIES = ["partial+merge", "serial"]


def run_topk(page, logits, k, temperature, chunk, kmax, entry, top_k=0, top_p=1.0, draw=0.0, penalty=1.0,
             seen=()):
    V = len(logits)
    groups = cdiv(V, chunk)
    consts = dict(V=V, GROUPS=groups)
    bufs = {"step": step_bytes(1, 0, k, temperature, top_k=top_k, top_p=top_p, draw=draw, penalty=penalty),
            "logits": logits, "out": sentinel(2 * kmax + 7), "seen": seen_mask(seen, V) + bytes(4)}
    names = dict(step="step", logits="logits", seen="seen")
    if entry == "serial":
        steps = [step("topk.wgsl", "topk_serial", consts, dict(names, out="out"), (1, 1, 1))]
    else:
        bufs["part"] = sentinel(groups * TOPK_PARTIAL_WORDS)
        steps = [step("topk.wgsl", "topk_partial", consts, dict(names, part="part"), (groups, 1, 1)),
                 step("topk.wgsl", "topk_merge", consts, dict(names, part="part", out="out"), (1, 1, 1))]
    got = kh.run(page, bufs, steps, ["out", "seen"])
    raw = got["out"]
    words, vals = read_u32(raw)[1:], read_f32(raw)[1:]  # word 0: the chosen token (choose_token)
    k = min(k, kmax)
    mask = read_u32(got["seen"])
    return {"choice": int(read_u32(raw)[0]), "ids": words[:k], "vals": vals[k:2 * k], "m": vals[2 * k],
            "s": vals[2 * k + 1], "placed": tuple(float(v) for v in vals[2 * k + 2:2 * k + 6]),
            "rest": vals[2 * k + 6:],
            "seen": {t for t in range(V) if mask[t >> 5] >> (t & 31) & 1}, "seen_tail": int(mask[-1])}


@pytest.mark.parametrize("entry", TOPK_ENTRIES)
@pytest.mark.parametrize("kind, vsize, k, temperature", TOPK_CASES,
                         ids=case_ids(TOPK_CASES, lambda kind, vs, k, t: f"{kind}-V{vs[0]}chunks{vs[1]:+d}-k{k}-T{t}"))
def test_topk(kpage, kind, vsize, k, temperature, entry):
    """The k best ids (ties: lower id first), their values, max M and S = sum(exp((l - M) / T));
    NaN never chosen and left out of M and S; slots past the real logits: id 0xffffffff, NEG_INF."""
    page, info = kpage
    chunk, kmax = TOPK_CHUNK, KMAX
    V = vsize[0] * chunk + vsize[1]
    logits = topk_logits(kind, V, chunk, seed=40 + k)
    got = run_topk(page, logits, k, temperature, chunk, kmax, entry)
    k = min(k, kmax)
    want_ids, want_vals, want_m, want_s = kh.topk_ref(logits, k, temperature)
    n = len(want_ids)  # < k only when fewer than k logits are real
    assert got["ids"][:n].tolist() == want_ids.tolist()
    np.testing.assert_array_equal(got["vals"][:n], want_vals)
    assert got["ids"][n:].tolist() == [NO_ID] * (k - n)
    np.testing.assert_array_equal(got["vals"][n:], np.full(k - n, NEG_INF))
    assert got["m"] == want_m
    assert got["s"] == pytest.approx(want_s, rel=2e-5)
    log_normalizer = float(got["m"]) / (temperature or 1.0) + math.log(float(got["s"]))
    assert log_normalizer == pytest.approx(float(want_m) / (temperature or 1.0) + math.log(want_s), rel=1e-6, abs=1e-5)
    assert_sentinel(got["rest"], "out past 2k + 7 words")
    if temperature == 0:
        assert got["choice"] == got["ids"][0], "greedy: the best candidate"
    else:  # no top-k or top-p: in id order, and draw 0 takes the first token with weight (a GPU's exp
        # may give 0 for the tiniest weights)
        clean = np.nan_to_num(f32(logits).astype(np.float64), nan=-np.inf)
        weights = np.exp((clean - float(want_m)) / temperature)
        assert weights[got["choice"]] > 0 and np.all(weights[:got["choice"]] < 1e-30)


class FixedDraw:
    """Stands in for the Sampler's PRNG: random() returns the given number."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def near_a_boundary(sampler, ids, vals, u) -> bool:
    """Whether the draw or top-p falls within f32 rounding (relative 1e-4) of a running-sum
    boundary, where the GPU's f32 choice may differ from the sampler's f64 one (Python then redoes
    the step fed with the GPU's choice)."""
    p = sampler.params
    if p.top_p < 1.0:  # the weights top-p cuts: the same sampler without top-p
        before_top_p = Sampler(SamplingParams(temperature=p.temperature, top_k=p.top_k))
        running = np.cumsum(before_top_p._candidates_short(ids, vals, ())[1])
        if np.any(np.abs(running - p.top_p * running[-1]) <= 1e-4 * running[-1]):
            return True
    cumulative = np.cumsum(sampler._candidates_short(ids, vals, ())[1])
    return bool(np.any(np.abs(u * cumulative[-1] - cumulative) <= 1e-4 * cumulative[-1]))


CHOICE_CASES = [
    # (kind, k, temperature, top_k, top_p): the candidates' logits, and the sampling settings
    ("spread", 64, 40.0, 64, 1.0),    # flat: the draw decides among 64
    ("coarse", 64, 1.0, 10, 1.0),     # top-k cuts through ties: kept with the 10th value
    ("spread", 40, 25.0, 64, 0.6),    # top-p over all the candidates
    ("coarse", 33, 0.7, 20, 0.9),     # both
    ("few", 64, 1.0, 64, 1.0),        # 60 real logits: the last 4 candidates weigh 0
    ("spread", 5, 0.0, 3, 0.5),       # greedy: settings and draw ignored
]


@pytest.mark.parametrize("entry", TOPK_ENTRIES)
def test_topk_chooses_the_token_the_cpython_sampler_draws(kpage, entry):
    """out[0] is the token app/sampling.py's Sampler.sample_candidates takes from the same
    candidates when its PRNG returns `draw` (temperature, top-k with ties, top-p, zero weights,
    greedy), for draws spread over [0, 1) away from f32-rounding distance of a boundary."""
    page, info = kpage
    chunk, kmax = TOPK_CHUNK, KMAX
    V = 2 * chunk + 4
    checked = 0
    for n, (kind, k, temperature, top_k, top_p) in enumerate(CHOICE_CASES):
        logits = topk_logits(kind, V, chunk, seed=70 + n)
        if kind == "spread":
            logits = f32(logits / 30)  # most of the 64 candidates weigh something at these temperatures
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
        for u in (0.0, 0.013, 0.31, 0.5, 0.77, 0.96, 0.9999):
            got = run_topk(page, logits, k, temperature, chunk, kmax, entry, top_k, top_p, u)
            ids, vals = got["ids"].tolist(), [float(v) for v in got["vals"]]
            sampler = Sampler(params)
            sampler.rng = FixedDraw(u)
            want = sampler.sample_candidates(ids, vals)
            if temperature > 0 and near_a_boundary(sampler, ids, vals, u):
                continue
            assert got["choice"] == want, (kind, k, temperature, top_k, top_p, u)
            checked += 1
    assert checked >= 30, checked


def penalized_f32(logits, seen, penalty):
    """What topk.wgsl ranks by: NaN as -inf, the seen tokens' logits times the penalty (< 0) or times
    1 / penalty rounded to f32 (>= 0), in f32."""
    out = f32(np.where(np.isnan(logits), -np.inf, logits))
    idx = np.array(sorted(seen), dtype=np.int64)
    v = out[idx]
    out[idx] = np.where(v < 0, v * np.float32(penalty), v * np.float32(1 / penalty))
    return out


@pytest.mark.parametrize("entry", TOPK_ENTRIES)
@pytest.mark.parametrize("penalty", [1.3, 0.6])
def test_topk_ranks_by_the_repetition_penalized_logits(kpage, entry, penalty):
    """With a repetition penalty the candidates are the best of the penalized logits (seen tokens' bits
    in the mask; ties: lower id first) and M, S are theirs, while the values returned are the logits
    themselves; the chosen token's bit is set in the mask, and no other bit changes."""
    page, info = kpage
    chunk = TOPK_CHUNK
    V = 2 * chunk + 4
    logits = topk_logits("spread", V, chunk, seed=91) / 10
    logits[[5, 9]] = np.nan
    order = np.argsort(-logits)
    r = rng(92)
    seen = set(order[:40:2].tolist()) | set(r.choice(V, 200, replace=False).tolist()) | {5, V - 1}
    got = run_topk(page, f32(logits), 64, 0.8, chunk, KMAX, entry, top_k=64, penalty=penalty, seen=seen)
    ranked = penalized_f32(f32(logits), seen, penalty)
    want = np.lexsort((np.arange(V), -ranked.astype(np.float64)))[:64]
    assert got["ids"].tolist() == want.tolist()
    assert {int(i) for i in got["ids"]} & seen, "the penalty moved seen tokens, not just unseen ones"
    np.testing.assert_array_equal(got["vals"], f32(logits)[want])
    assert got["m"] == ranked.max()
    valid = ranked[np.isfinite(ranked)].astype(np.float64)
    assert got["s"] == pytest.approx(np.exp((valid - valid.max()) / 0.8).sum(), rel=2e-5)
    assert got["choice"] == want[0]
    assert got["seen"] == seen | {int(want[0])} and got["seen_tail"] == 0


def near_a_full_boundary(sampler, logits, seen, u, tolerance=1e-4) -> bool:
    """Whether the draw or the top-p cut falls within f32 rounding (`tolerance` of the mass) of the
    boundaries that decide them: the drawn token's share of the sampler's distribution over the
    whole vocabulary, and the nucleus's last token's."""
    p = sampler.params
    if p.top_p < 1.0:
        whole = Sampler(SamplingParams(temperature=p.temperature, repetition_penalty=p.repetition_penalty))
        probs = np.sort([q for _, q in whole.distribution(logits, seen)])[::-1]
        running = np.cumsum(probs)
        n = int(np.searchsorted(running, p.top_p))  # the nucleus's last token
        if np.any(np.abs(running[max(0, n - 1):n + 1] - p.top_p) <= tolerance):
            return True
    cumulative = np.concatenate([[0.0], np.cumsum([q for _, q in sampler.distribution(logits, seen)])])
    at = int(np.searchsorted(cumulative, u, side="right"))
    return bool(np.any(np.abs(u - cumulative[max(0, at - 1):at + 1]) <= tolerance))


FULL_CHOICE_CASES = [
    # (k, temperature, top_p, penalty): no top-k, so the choice is over the whole vocabulary
    (64, 1.0, 1.0, 1.0),    # in id order
    (5, 0.7, 1.0, 1.4),     # in id order, penalized
    (64, 0.5, 0.9, 1.0),    # top-p of the whole vocabulary's mass
    (64, 0.5, 0.8, 0.8),    # the same, penalized
    (64, 4.0, 0.9, 1.0),    # a nucleus of hundreds of tokens, far more than the candidates
    (16, 3.0, 0.6, 1.3),    # the same, penalized
]


@pytest.mark.parametrize("entry", TOPK_ENTRIES)
def test_topk_chooses_over_the_whole_vocabulary_as_the_cpython_sampler(kpage, entry):
    """Without top-k, out[0] is the token Sampler.sample takes from all the logits when its PRNG
    returns `draw`: in id order over the vocabulary when top-p is off, else from the nucleus of the
    whole vocabulary's mass (within the candidates, or beyond them: topk_merge searches the whole
    vocabulary), with and without a repetition penalty, with where the draw and the cut fell; draws
    within f32 rounding of a boundary are left out."""
    page, info = kpage
    chunk = TOPK_CHUNK
    V = 2 * chunk + 4
    checked = beyond_checked = 0
    for n, (k, temperature, top_p, penalty) in enumerate(FULL_CHOICE_CASES):
        logits = f32(topk_logits("spread", V, chunk, seed=80 + n) / 12)
        logits[[3, 700]] = np.nan if n % 2 else -np.inf
        seen = set(np.argsort(-np.nan_to_num(logits, nan=-1e9))[:30:3].tolist()) | {7, 4000}
        params = SamplingParams(temperature=temperature, top_p=top_p, repetition_penalty=penalty)
        clean = [(-math.inf if math.isnan(v) else float(v)) for v in logits]
        for u in (0.0, 0.021, 0.33, 0.5, 0.74, 0.93, 0.9999):
            got = run_topk(page, logits, k, temperature, chunk, KMAX, entry, 0, top_p, u, penalty, seen)
            sampler = Sampler(params)
            sampler.rng = FixedDraw(u)
            want = sampler.sample(clean, seen)
            flat = temperature > 2  # thousands of tokens of ~1e-4 each: their f32 sums are within ~1e-6
            if near_a_full_boundary(Sampler(params), clean, seen, u, 1e-5 if flat else 1e-4):
                continue
            nucleus = [i for i, _ in Sampler(params).distribution(clean, seen)]
            beyond = top_p < 1.0 and len(nucleus) > k
            if beyond and entry == "serial":  # guessed from the candidates there
                assert got["placed"] == (0.0, 0.0, 0.0, 0.0)
                continue
            assert got["choice"] == want, (k, temperature, top_p, penalty, u)
            before, weight, cut_before, cut_weight = (w / float(got["s"]) for w in got["placed"])
            whole = Sampler(SamplingParams(temperature=temperature, repetition_penalty=penalty))
            probs = dict(whole.distribution(clean, seen))  # the whole vocabulary's, in id order
            if top_p == 1.0:  # in id order: where the draw fell, as fractions of the mass (f32 sums)
                assert before == pytest.approx(sum(q for i, q in probs.items() if i < want), abs=2e-6)
                assert weight == pytest.approx(probs[want], rel=1e-4, abs=1e-9)
                assert cut_before == cut_weight == 0.0
            elif beyond:  # in the sampler's order: where the draw and the nucleus's cut fell
                order = sorted(probs, key=lambda i: (-probs[i], i))
                running = np.concatenate([[0.0], np.cumsum([probs[i] for i in order])])
                at, last = order.index(want), len(nucleus) - 1
                assert before == pytest.approx(running[at], abs=2e-5)
                assert weight == pytest.approx(probs[want], rel=1e-3)
                assert cut_before == pytest.approx(running[last], abs=2e-5)
                assert cut_weight == pytest.approx(probs[nucleus[-1]], rel=1e-3)
                beyond_checked += 1
            else:
                assert got["placed"] == (0.0, 0.0, 0.0, 0.0)
            checked += 1
    assert checked >= 16 and (beyond_checked >= 8 or entry == "serial"), (checked, beyond_checked)
