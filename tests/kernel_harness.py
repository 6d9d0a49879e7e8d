"""Helpers for tests/test_kernels.py: run WGSL kernels inside the booted page (through the page's
own `pywebgpt.gpu` and `pywebgpt.wgsl.module_source`, so each module is assembled exactly as the
engine assembles it) and numpy references for what they compute.

A run is a list of steps over named buffers. Every buffer starts from bytes sent by the test
(outputs start as a sentinel pattern, so writes outside the expected region show up), every step
is one pipeline + bind group + dispatch with its buffers bound by binding name (bindings the entry
point uses but the step leaves out get a dummy buffer, as in app/runner.py), and the named buffers
asked for come back as bytes. Validation errors of the whole run are caught with a WebGPU error
scope and fail the test with the browser's message (a WGSL compile error included)."""

from __future__ import annotations

import base64
import json
import math

import numpy as np

from app import contract
from app.weights import to_gpu_layout
from app.wgsl import WEIGHT_SNIPPETS
from conftest import run_py

SNIPPETS = {
    "f32": WEIGHT_SNIPPETS["F32"],
    "f16p": WEIGHT_SNIPPETS["F16"],
    "bf16p": WEIGHT_SNIPPETS["BF16"],
}
SENTINEL = np.float32(1234.5)  # what every output buffer holds before a run
NEG_INF = np.float32(contract.NEG_INF)  # as the GPU holds it
NO_ID = contract.NO_ID

# Installed once per page as the module `_kernel_harness` (eval_code_async gets fresh globals each
# call, so definitions would not survive between calls otherwise).
PAGE_HELPER = r'''
import base64, json, sys, types

_src = """
import base64
from pywebgpt.gpu import is_null
from pywebgpt.wgsl import entry_bindings, module_source


async def run(gpu, spec):
    spec = json.loads(spec)
    device = gpu.device
    bufs = {}
    device.pushErrorScope("validation")
    error = None
    try:
        for name, data in spec["buffers"].items():
            raw = base64.b64decode(data)
            buf = gpu.storage(len(raw), "kernel test: " + name, readable=True)
            gpu.write(buf, raw)
            bufs[name] = (buf, len(raw))
        for st in spec["steps"]:
            code = module_source(st["shader"], st["snippet"], st["consts"], tuple(map(tuple, st["fixed"])))
            pipe = gpu.pipeline(gpu.shader_module(code, st["shader"]), st["entry"], st["entry"])
            entries = {}
            for name, b in entry_bindings(st["shader"], st["entry"]).items():
                if name in st["bind"]:
                    entries[b.index] = bufs[st["bind"][name]][0]
                else:  # unused by this test: a dummy of its own
                    dummy = gpu.storage(16, "kernel test: unused " + name)
                    bufs["unused " + name + str(len(bufs))] = (dummy, 16)
                    entries[b.index] = dummy
            unknown = set(st["bind"]) - set(entry_bindings(st["shader"], st["entry"]))
            if unknown:
                raise RuntimeError(f"{st['entry']} has no binding {sorted(unknown)}")
            gpu.run(pipe, gpu.bind_group(pipe, entries), *st["dispatch"])
    finally:
        error = await device.popErrorScope()
    try:
        if not is_null(error):
            raise RuntimeError("WebGPU validation error: " + str(error.message))
        out = {}
        for name in spec["read"]:
            buf, n = bufs[name]
            out[name] = base64.b64encode(await gpu.read(buf, n)).decode()
        gpu.check()
        return out
    finally:
        for buf, _ in bufs.values():
            gpu.free(buf)
"""
_mod = types.ModuleType("_kernel_harness")
_mod.__dict__["json"] = json
exec(_src, _mod.__dict__)
sys.modules["_kernel_harness"] = _mod
{"features": list(gpu.features), "is_cpu": gpu.is_cpu, "adapter": dict(gpu.adapter_info)}
'''


def install(page) -> dict:
    return run_py(page, PAGE_HELPER)


# ------------------------------------------------------------------------------------- encoding


def as_bytes(a) -> bytes:
    if isinstance(a, (bytes, bytearray)):
        return bytes(a)
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def sentinel(n: int) -> np.ndarray:
    return np.full(n, SENTINEL, dtype=np.float32)


def step_bytes(rows: int, pos0: int = 0, k: int = 1, temperature: float = 0.0, ids=None,
               top_k: int = 0, top_p: float = 1.0, draw: float = 0.0, penalty: float = 1.0) -> bytes:
    """A Step (app/contract.py's layout) for `rows` rows (ids default to zeros), packed as given:
    unlike the engine's pack_step, nothing is clamped, so the kernels' own bounds are tested."""
    ids = list(ids) if ids is not None else [0] * max(rows, 1)
    ids = ids or [0]
    return contract.STEP_HEADER.pack(rows, pos0, k, temperature, top_k, top_p, draw, penalty, 1 / penalty) + np.asarray(
        ids, dtype="<u4").tobytes()


def to_bf16_bits(w: np.ndarray) -> np.ndarray:
    """f32 -> bfloat16 bits, rounding to nearest even (as torch does)."""
    bits = f32(w).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def weight(w: np.ndarray, dtype: str) -> tuple[bytes, np.ndarray]:
    """A weight matrix in storage format `dtype`: (bytes for the GPU, the values the GPU sees as f64)."""
    if dtype == "f32":
        w32 = f32(w)
        return as_bytes(w32), w32.astype(np.float64)
    if dtype in ("f16", "f16p"):
        h = np.asarray(w, dtype=np.float16)
        return as_bytes(h), h.astype(np.float64)
    if dtype == "bf16p":
        bits = to_bf16_bits(w)
        widened = (bits.astype(np.uint32) << 16).view(np.float32)
        return as_bytes(bits), widened.astype(np.float64)
    raise ValueError(dtype)


def block_table(blocks, fmt: str) -> bytes:
    """A table's blocks (as a file stores them: bytes, or a contiguous array) as a buffer for a kernel:
    in the GPU's layout of the format (app/weights.py to_gpu_layout: Q4_0 regrouped), padded to a
    whole word."""
    raw = to_gpu_layout(blocks, fmt)
    return raw + bytes(-len(raw) % 4)


def linear_consts(K, N, epilogue, *, bias, eps, rms_input=False, ln_input=False, att_input=False, gemv_rows=8,
                  groups=1, hd=4, splits=1, y_cols=None, y_col0=0, C=4, NH=1, N_CTX=1, split_k=1) -> dict:
    """linear.wgsl's constants for a plain kernel: no GPU variant (app/shapes.py) on; C / NH / N_CTX are
    the qkv epilogue's; split_k: K splits of linear_tiled (as app/kernels.py _linear_kernel sets them)."""
    per_split = -(-K // split_k)
    return dict(K=K, K4=K // 4, N=N, EPILOGUE=epilogue, HAS_BIAS=bias, RMS_INPUT=rms_input, LN_INPUT=ln_input,
                ATT_INPUT=att_input, ATT_SPLITS=splits, C=C, NH=NH, HD=hd, N_CTX=N_CTX, EPS=eps, GEMV_ROWS=gemv_rows,
                GEMV_GROUPS=groups, XN4_LEN=K // 4 if rms_input or ln_input or att_input else 1, Y_COLS=y_cols or N,
                Y_COL0=y_col0,
                COPY_INPUT=False, Q4_0_STREAM=False, GEMV_UNROLL=1, GEMV_ROW_TILE=1, STAGE_BLOCKS=0, STAGE_ROW_WORDS=1,
                STAGE_WORDS=1,
                SPLIT_K=split_k, SPLIT_KS=-(-per_split // 16) * 16)


def step(shader: str, entry: str, consts: dict, bind: dict, dispatch, snippet: str = "weights_f32.wgsl",
         fixed: tuple = ()) -> dict:
    """One dispatch: `bind` maps the entry point's binding names to the run's buffer names; `fixed`:
    bindings declared with their length (app/kernels.py Kernel.fixed)."""
    return {"shader": shader, "entry": entry, "snippet": snippet, "consts": consts, "bind": dict(bind),
            "dispatch": [int(d) for d in dispatch], "fixed": [list(f) for f in fixed]}


def run(page, buffers: dict, steps: list, read: list) -> dict:
    """Run `steps` in the page; returns {name: raw bytes} for the buffers in `read`."""
    spec = {"buffers": {n: base64.b64encode(as_bytes(b)).decode() for n, b in buffers.items()},
            "steps": steps, "read": list(read)}
    code = f"import _kernel_harness\nawait _kernel_harness.run(gpu, {json.dumps(json.dumps(spec))})"
    out = run_py(page, code)
    return {n: base64.b64decode(v) for n, v in out.items()}


def read_f32(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def read_u32(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def assert_close(got, ref, tol: float = 2e-5, what: str = ""):
    """f32 kernel vs f64 reference: relative `tol`, absolute `tol` scaled by the result's magnitude."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    bad = ~np.isclose(got, ref, rtol=tol, atol=tol * scale)
    if bad.any():
        idx = np.argwhere(bad)[:8]
        detail = ", ".join(f"{tuple(int(v) for v in i)}: got {got[tuple(i)]!r} want {ref[tuple(i)]!r}" for i in idx)
        raise AssertionError(f"{what}: {int(bad.sum())}/{bad.size} values differ (tol {tol}, scale {scale:.3g}): "
                             + detail)


def assert_sentinel(values, what: str = ""):
    values = np.asarray(values, dtype=np.float32)
    bad = values != SENTINEL
    assert not bad.any(), f"{what}: {int(bad.sum())} values written outside the expected region: {values[bad][:8]}"


# ----------------------------------------------------------------------------------- references


def layer_norm_ref(x, gamma, beta, eps):
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu_tanh_ref(v):
    v = np.asarray(v, dtype=np.float64)
    return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))


def gelu_erf_ref(v):
    v = np.asarray(v, dtype=np.float64)
    return 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))


def attention_ref(q, kv, nh, hd, pos0, scale):
    """q [rows, NH * HD]; kv [2, KVH, N_CTX, HD] (KVH divides NH: query head h reads KV head
    h // (NH / KVH)); row t sees positions 0..pos0+t."""
    q = np.asarray(q, dtype=np.float64)
    kv = np.asarray(kv, dtype=np.float64)
    group = nh // kv.shape[1]
    rows = q.shape[0]
    y = np.zeros_like(q)
    for t in range(rows):
        n = pos0 + t + 1
        for h in range(nh):
            qh = q[t, h * hd:(h + 1) * hd]
            s = kv[0, h // group, :n] @ qh * scale
            e = np.exp(s - s.max())
            y[t, h * hd:(h + 1) * hd] = (e / e.sum()) @ kv[1, h // group, :n]
    return y


def topk_ref(logits, k: int, temperature: float):
    """Ids and values of the k largest logits (ties: lower id first; NaN never chosen), the max M
    and S = sum(exp((l - M) / T)) over the non-NaN logits."""
    logits = f32(logits)
    ids = np.arange(len(logits))
    valid = ~np.isnan(logits)
    vids, vvals = ids[valid], logits[valid]
    order = np.lexsort((vids, -vvals.astype(np.float64)))
    top = order[:k]
    T = temperature if temperature > 0 else 1.0
    m = vvals.max()
    s = np.exp((vvals.astype(np.float64) - float(m)) / T).sum()
    return vids[top], vvals[top], m, s
