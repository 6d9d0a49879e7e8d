"""The Llama family's kernels (linear.wgsl, rmsnorm.wgsl, rope.wgsl, swiglu.wgsl, and the RMS /
no-position / grouped-KV modes of lm_head, embedding and attention), run in the page on SwiftShader
against numpy on awkward sizes: head_dim 40 / 64 / 80 / 128, KV heads 1, 2, 3 under 3-6 query heads,
hidden sizes not a multiple of 64 (200, 120, 36), rows not a multiple of 64 or 4, the GPU shapes
(tiles, lanes reduced in a tree) and the CPU-adapter shapes (one invocation per row, fewer
workgroups than blocks); f32, f16 and bf16 weights. Output buffers start as a sentinel so that
writes outside the expected region fail too. One module each (tests/kernel_harness.py)."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest

import kernel_harness as kh
from app.contract import ATT_BLOCK, EPILOGUES
from kernel_harness import SNIPPETS, assert_close, assert_sentinel, f32, read_f32, sentinel, step, step_bytes, weight

pytestmark = pytest.mark.browser

EPS = 1e-6
linear_consts = partial(kh.linear_consts, eps=EPS)
STORE, RESIDUAL, SWIGLU = EPILOGUES["store"], EPILOGUES["residual"], EPILOGUES["swiglu"]


@pytest.fixture(scope="module")
def kpage(booted_page):
    kh.install(booted_page)
    return booted_page


def cdiv(a, b):
    return -(-a // b)


def rms_ref(x, w, eps=EPS):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def silu(v):
    v = np.asarray(v, dtype=np.float64)
    return v / (1.0 + np.exp(-v))


LINEAR_BIND = dict(step="step", x="x", w="w", bias="b", y="y", norm_w="g")

PREFILL_CASES = [  # (entry, epilogue, dtype, rows, K, N, bias)
    ("linear_tiled", STORE, "f32", 67, 200, 120, True),
    ("linear_tiled", STORE, "f16p", 5, 36, 300, False),
    ("linear_tiled", RESIDUAL, "bf16p", 67, 120, 68, True),
    ("linear_tiled", STORE, "bf16p", 130, 576, 64, False),
    ("linear_rows", STORE, "f32", 67, 200, 120, True),
    ("linear_rows", RESIDUAL, "f16p", 6, 36, 300, False),
    ("linear_rows", STORE, "bf16p", 3, 120, 70, True),
]


@pytest.mark.parametrize("entry, epilogue, dtype, rows, K, N, bias", PREFILL_CASES,
                         ids=[f"{e}-{ep}-{d}-rows{r}-K{k}-N{n}-{'b' if b else 'nob'}"
                              for e, ep, d, r, k, n, b in PREFILL_CASES])
def test_linear_prefill(kpage, entry, epilogue, dtype, rows, K, N, bias):
    """Y = X @ W^T (+ b), or Y += that, for nn.Linear weights W [N, K]: the tiled kernel (64x64 tiles,
    partial tiles in both directions) and the CPU one (4 rows per invocation, the last group partial)."""
    r = np.random.default_rng(rows + K + N)
    x = f32(r.standard_normal((rows, K)))
    w_b, w = weight(0.3 * r.standard_normal((N, K)), dtype)
    b = f32(0.1 * r.standard_normal(N)) if bias else sentinel(4)
    y0 = f32(r.standard_normal((rows, N)))
    ref = x.astype(np.float64) @ w.T + (b if bias else 0)
    if epilogue == RESIDUAL:
        ref = ref + y0
    y_init = np.concatenate([y0.ravel() if epilogue == RESIDUAL else sentinel(rows * N), sentinel(N)])
    bufs = {"step": step_bytes(rows), "x": x, "w": w_b, "b": b, "y": y_init}
    dispatch = (cdiv(N, 64), cdiv(rows, 64), 1) if entry == "linear_tiled" else (cdiv(N, 64), cdiv(rows, 4), 1)
    bind = {k: v for k, v in LINEAR_BIND.items() if k != "norm_w"}
    steps = [step("linear.wgsl", entry, linear_consts(K, N, epilogue, bias=bias), bind, dispatch, SNIPPETS[dtype])]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:rows * N].reshape(rows, N), ref, 2e-5, entry)
    assert_sentinel(y[rows * N:], "past the last row")


GEMV_CASES = [  # (epilogue, rms_input, dtype, K, N, GEMV_ROWS, groups, bias)
    (STORE, True, "f32", 200, 120, 8, 15, True),       # GPU shape: 32 lanes per row
    (STORE, True, "bf16p", 576, 140, 8, 18, False),
    (RESIDUAL, False, "f16p", 960, 36, 8, 5, True),
    (SWIGLU, True, "f32", 120, 100, 8, 13, True),      # gate|up rows: 2N rows of W
    (SWIGLU, True, "bf16p", 200, 36, 4, 9, False),     # 64 lanes per row
    (STORE, True, "f16p", 200, 300, 256, 2, True),     # CPU shape: one invocation per row, 2 groups striding
    (SWIGLU, True, "f32", 120, 600, 256, 1, True),
    (RESIDUAL, False, "bf16p", 36, 260, 256, 1, False),
]


@pytest.mark.parametrize("epilogue, rms_input, dtype, K, N, rows_per_wg, groups, bias", GEMV_CASES,
                         ids=[f"{ep}-{'rms-' if rms else ''}{d}-K{k}-N{n}-rows{rw}-g{g}-{'b' if b else 'nob'}"
                              for ep, rms, d, k, n, rw, g, b in GEMV_CASES])
def test_linear_gemv(kpage, epilogue, rms_input, dtype, K, N, rows_per_wg, groups, bias):
    """One row through W^T with the RMSNorm fused in or not; swiglu: silu(x W_gate^T + b_gate) *
    (x W_up^T + b_up) from the 2N rows of W (gate, then up). Row 1 of x is garbage that must not leak
    in; fewer workgroups than blocks of rows stride over them."""
    r = np.random.default_rng(K + N + epilogue)
    x = f32(r.standard_normal((2, K)))
    x[1] = 1e4
    g = f32(1.0 + 0.3 * r.standard_normal(K))
    rows_w = 2 * N if epilogue == SWIGLU else N
    w_b, w = weight(0.3 * r.standard_normal((rows_w, K)), dtype)
    b = f32(0.1 * r.standard_normal(rows_w)) if bias else sentinel(4)
    xin = rms_ref(x[0], g) if rms_input else x[0].astype(np.float64)
    v = xin @ w.T + (b if bias else 0)
    y0 = f32(r.standard_normal(N))
    ref = {STORE: lambda: v, RESIDUAL: lambda: y0 + v, SWIGLU: lambda: silu(v[:N]) * v[N:]}[epilogue]()
    bufs = {"step": step_bytes(1), "x": x, "w": w_b, "b": b, "g": g if rms_input else sentinel(4),
            "y": np.concatenate([y0 if epilogue == RESIDUAL else sentinel(N), sentinel(4)])}
    consts = linear_consts(K, N, epilogue, bias=bias, rms_input=rms_input, gemv_rows=rows_per_wg, groups=groups)
    steps = [step("linear.wgsl", "gemv", consts, LINEAR_BIND, (groups, 1, 1), SNIPPETS[dtype])]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"])
    assert_close(y[:N], ref, 3e-5, "linear gemv")
    assert_sentinel(y[N:], "past the output")


@pytest.mark.parametrize("NH, KVH, HD, pos0, N_CTX, dtype, rows_per_wg", [
    (3, 1, 40, 0, 16, "f32", 8),          # multi-query, the first position
    (6, 2, 80, 130, 200, "bf16p", 8),     # 3 blocks, the last partial
    (4, 4, 64, 64, 70, "f16p", 256),      # CPU-shape projection
    (6, 3, 128, 199, 260, "f32", 4),
])
def test_split_grouped_attention_merged_by_o_proj(kpage, NH, KVH, HD, pos0, N_CTX, dtype, rows_per_wg):
    """Decode on a GPU for the Llama family: attention_split with KV heads shared by NH / KVH query
    heads, merged by the o projection (linear gemv with ATT_INPUT, residual): x + attention(q) @ Wo^T."""
    r = np.random.default_rng(NH * HD + pos0)
    C = NH * HD
    splits = cdiv(N_CTX, ATT_BLOCK)
    scale = 1.0 / math.sqrt(HD)
    q = f32(r.standard_normal((1, C)))
    kv = f32(1.5 * r.standard_normal((2, KVH, N_CTX, HD)))
    kv[:, :, pos0 + 1:] = 1e4
    att = kh.attention_ref(q, kv, NH, HD, pos0, scale)[0]
    E = 36
    w_b, w = weight(0.3 * r.standard_normal((E, C)), dtype)
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
             step("linear.wgsl", "gemv", consts, dict(LINEAR_BIND, x="part"), (groups, 1, 1), SNIPPETS[dtype])]
    assert_close(read_f32(kh.run(kpage, bufs, steps, ["y"])["y"]), ref, 3e-5, "split grouped attention + o_proj")


@pytest.mark.parametrize("entry, C, rows, groups", [("rms_norm", 200, 7, 7), ("rms_norm", 1036, 5, 2),
                                                    ("rms_norm_rows", 120, 67, 2), ("rms_norm_rows", 36, 3, 1)])
def test_rms_norm(kpage, entry, C, rows, groups):
    r = np.random.default_rng(C + rows)
    x = f32(3.0 + 2.0 * r.standard_normal((rows, C)))
    w = f32(1.0 + 0.3 * r.standard_normal(C))
    bufs = {"step": step_bytes(rows), "x": x, "w": w, "y": sentinel((rows + 1) * C)}
    steps = [step("rmsnorm.wgsl", entry, dict(C=C, C4=C // 4, EPS=EPS), dict(step="step", x="x", w="w", y="y"),
                  (groups, 1, 1))]
    y = read_f32(kh.run(kpage, bufs, steps, ["y"])["y"]).reshape(rows + 1, C)
    assert_close(y[:rows], rms_ref(x, w), 2e-5, entry)
    assert_sentinel(y[rows], "row past step.rows")


def rope_ref(qkv, table, NH, KVH, HD, pos0, qn=None, kn=None):
    """-> (q [rows, NH * HD], K [KVH, rows, HD], V [KVH, rows, HD]) as transformers computes them."""
    rows = qkv.shape[0]
    heads = qkv.reshape(rows, NH + 2 * KVH, HD).astype(np.float64)
    half = HD // 2
    cos = np.concatenate([table[pos0:pos0 + rows, :, 0]] * 2, axis=1)[:, None, :]
    sin = np.concatenate([table[pos0:pos0 + rows, :, 1]] * 2, axis=1)[:, None, :]

    def rotate(h, w):
        if w is not None:
            h = h / np.sqrt((h * h).mean(axis=-1, keepdims=True) + EPS) * w
        rotated = np.concatenate([-h[..., half:], h[..., :half]], axis=-1)
        return h * cos + rotated * sin

    q = rotate(heads[:, :NH], qn)
    k = rotate(heads[:, NH:NH + KVH], kn)
    v = heads[:, NH + KVH:]
    return q.reshape(rows, NH * HD), k.transpose(1, 0, 2), v.transpose(1, 0, 2)


@pytest.mark.parametrize("entry, NH, KVH, HD, rows, pos0, qk_norm", [
    ("rope", 3, 1, 40, 5, 0, False),
    ("rope", 6, 2, 80, 3, 250, True),
    ("rope", 4, 2, 128, 1, 299, True),
    ("rope", 2, 2, 64, 67, 100, False),
    ("rope_rows", 3, 3, 64, 67, 0, True),
    ("rope_rows", 6, 3, 40, 2, 298, False),
    ("rope_rows", 4, 1, 128, 4, 5, True),
])
def test_rope(kpage, entry, NH, KVH, HD, rows, pos0, qk_norm):
    """q heads rotated into q, k heads rotated and v heads copied into the cache at pos0..; with
    qk_norm each q and k head RMS-normalized (q_norm / k_norm weights) first; the cache outside this
    run's positions keeps its sentinel."""
    N_CTX = 300
    r = np.random.default_rng(NH * HD + rows)
    qkv = f32(r.standard_normal((rows, (NH + 2 * KVH) * HD)) * 2)
    angles = np.arange(N_CTX)[:, None] * (1.0 / 10000 ** (np.arange(0, HD, 2) / HD))[None, :]
    table = f32(np.stack([np.cos(angles), np.sin(angles)], axis=-1))  # [N_CTX, HD / 2, 2]
    qn, kn = (f32(1.0 + 0.2 * r.standard_normal(HD)), f32(1.0 + 0.2 * r.standard_normal(HD))) if qk_norm else (None,
                                                                                                          None)
    bufs = {"step": step_bytes(rows, pos0), "qkv": qkv, "q": sentinel((rows + 1) * NH * HD),
            "kv": sentinel(2 * KVH * N_CTX * HD), "table": table,
            "qn": qn if qk_norm else sentinel(4), "kn": kn if qk_norm else sentinel(4)}
    slots = NH + 2 * KVH
    dispatch = (slots, rows, 1) if entry == "rope" else (cdiv(rows * slots, 64), 1, 1)
    consts = dict(NH=NH, KVH=KVH, HD=HD, N_CTX=N_CTX, QK_NORM=qk_norm, EPS=EPS)
    steps = [step("rope.wgsl", entry, consts, dict(step="step", qkv="qkv", q="q", kv="kv", rope_table="table",
                                                   q_norm_w="qn", k_norm_w="kn"), dispatch)]
    out = kh.run(kpage, bufs, steps, ["q", "kv"])
    q, kv = read_f32(out["q"]), read_f32(out["kv"]).reshape(2, KVH, N_CTX, HD)
    want_q, want_k, want_v = rope_ref(qkv, table, NH, KVH, HD, pos0, qn, kn)
    assert_close(q[:rows * NH * HD].reshape(rows, -1), want_q, 2e-5, "q")
    assert_sentinel(q[rows * NH * HD:], "q past the rows")
    assert_close(kv[0, :, pos0:pos0 + rows], want_k, 2e-5, "K cache")
    assert_close(kv[1, :, pos0:pos0 + rows], want_v, 0, "V cache")
    outside = np.ones(N_CTX, dtype=bool)
    outside[pos0:pos0 + rows] = False
    assert_sentinel(kv[:, :, outside], "cache outside this run's positions")


def test_swiglu(kpage):
    rows, M = 5, 100
    r = np.random.default_rng(7)
    gu = f32(4 * r.standard_normal((rows, 2 * M)))
    gu[0, :3] = [-100.0, 100.0, 0.0]  # exp(-g) overflows to inf for g = -100: silu is -0, not NaN
    bufs = {"step": step_bytes(rows), "gu": gu, "h": sentinel((rows + 1) * M)}
    steps = [step("swiglu.wgsl", "swiglu", dict(M=M), dict(step="step", gu="gu", h="h"), (cdiv(M, 64), rows, 1))]
    h = read_f32(kh.run(kpage, bufs, steps, ["h"])["h"]).reshape(rows + 1, M)
    assert not np.isnan(h).any()
    assert_close(h[:rows], silu(gu[:, :M]) * gu[:, M:], 2e-5, "swiglu")
    assert_sentinel(h[rows], "row past step.rows")


@pytest.mark.parametrize("lanes, dtype", [(8, "bf16p"), (1, "f32")])
def test_lm_head_with_rms_norm(kpage, lanes, dtype):
    """The Llama family's final RMSNorm fused into the head: logits = RMSNorm(last row) . head rows
    (no mean taken out, no bias; the LayerNorm's beta binding is unused)."""
    C, V, rows = 200, 301, 3
    r = np.random.default_rng(11)
    x = f32(2.0 + r.standard_normal((rows, C)))
    g = f32(1.0 + 0.3 * r.standard_normal(C))
    w_b, w = weight(0.3 * r.standard_normal((V, C)), dtype)
    groups = cdiv(V, 256 // lanes)
    consts = dict(C=C, C4=C // 4, EPS=EPS, ROW0=0, ROWS=V, HEAD_LANES=lanes, HEAD_GROUPS=groups, RMS=True,
                  HEAD_UNROLL=1, HEAD_ROW_TILE=1, Q4_0_STREAM=False)
    bufs = {"step": step_bytes(rows), "x": x, "g": g, "beta": sentinel(4), "wte": w_b, "logits": sentinel(V + 4)}
    steps = [step("lm_head.wgsl", "lm_head", consts, dict(step="step", x="x", ln_gamma="g", ln_beta="beta", wte="wte",
                                                          logits="logits"), (groups, 1, 1), SNIPPETS[dtype])]
    logits = read_f32(kh.run(kpage, bufs, steps, ["logits"])["logits"])
    assert_close(logits[:V], rms_ref(x[-1], g) @ w.T, 3e-5, "RMS head")
    assert_sentinel(logits[V:], "past the vocabulary")


def test_embedding_without_positions(kpage):
    C, V, rows = 36, 50, 3
    r = np.random.default_rng(3)
    wte_b, wte = weight(r.standard_normal((V, C)), "bf16p")
    bufs = {"step": step_bytes(rows, 7, ids=[4, 49, 0]), "wte": wte_b, "wpe": sentinel(4), "x": sentinel(rows * C),
            "chain": np.zeros(4, dtype=np.uint32)}
    steps = [step("embedding.wgsl", "embed", dict(C4=C // 4, ROW0=0, ROWS=V, POSITIONS=False),
                  dict(step="step", wte="wte", wpe="wpe", x="x", chain="chain"), (1, rows, 1), SNIPPETS["bf16p"])]
    x = read_f32(kh.run(kpage, bufs, steps, ["x"])["x"]).reshape(rows, C)
    np.testing.assert_array_equal(x, f32(wte[[4, 49, 0]]))
