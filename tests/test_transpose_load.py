"""Transpose-on-load (app/runner.py _transpose, shaders/transpose.wgsl) in the page on SwiftShader: a
weight whose spec says `transposed` (GPT-2's Conv1D, stored [K, N]) lands in its GPU buffer as [N, K],
byte for byte numpy's src.T, for F32, F16 and BF16 kept as they are and F16 / BF16 widened to F32;
streamed (StreamedUpload, per part) and written whole (_upload), from a JS Uint8Array at an odd
offset and from Python bytes; with a staging buffer of a few rows, so a source goes through in
chunks. What it cannot write is refused with a ModelError naming the weight, and nothing leaks."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from app.contract import buffer_size
from app.weights import MAX_WORKGROUPS_PER_DIM, TRANSPOSE_GROUP_SIZE, gpu_matrix_bytes, transpose_workgroups
from conftest import run_py

SENTINEL = 0xA5  # every byte of a weight buffer before the load: what the load must not touch stays so
COMBOS = [("F32", "F32"), ("F16", "F16"), ("BF16", "BF16"), ("F16", "F32"), ("BF16", "F32")]  # (file, GPU)
# (K, N, source rows per staging chunk or None: one chunk); 68 x 20 is a small projection, 12 x 3 has
# odd 16-bit source rows (6 bytes), 13 x 5 odd GPU rows (a 16-bit word holds the end of one row and
# the start of the next), 37 x 7 goes through in 10 chunks of 4 rows, the last an odd one.
SHAPES = [(68, 20, None), (12, 3, None), (13, 5, None), (37, 7, 4)]
# +0, -0, the smallest subnormal, a negative subnormal, +inf, -inf, a NaN with a payload, 1
SPECIAL = {"F16": [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E01, 0x3C00],
           "BF16": [0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7FC1, 0x3F80]}
MODES = [("stream", True), ("stream", False), ("whole", True), ("whole", False)]  # (path, data in a JS array)

PAGE_HELPER = r'''
import base64
import json
from js import Uint8Array
from pywebgpt import runner, weights
from pywebgpt.buffer_plan import WeightSpec
from pywebgpt.gpu import COPY_SRC


class Tensor:
    def __init__(self, dtype, shape, data=None, row_order=None):
        self.dtype, self.shape, self.data, self.row_order = dtype, tuple(shape), data, row_order


class Graph:
    """What GPUModel(stream=True) reads of a model graph: its weights; no dispatches."""
    cfg, n_ctx, chunk, dtype, notices, buffers = None, 1, 1, "F32", (), ()

    def __init__(self, weights):
        self.weights = weights

    def all_dispatches(self):
        return []

    def computed_tensors(self):
        return {}


def js_bytes(raw):
    """`raw` in a JS Uint8Array at an odd offset into a larger one, as a file's tensors reach the loader."""
    view = Uint8Array.new(len(raw) + 5).subarray(3, 3 + len(raw))
    view.assign(raw)
    return view


async def transpose_load(case):
    """Load the one weight `case` describes; -> its buffer's bytes (base64) or the error, and the
    transpose pipelines made (one for every chunk), its dispatches (one per chunk) and GPU buffers
    left over."""
    s = case["spec"]
    w = WeightSpec("w", tuple(s["sources"]), s["rows"], s["cols"], s["dtype"], s.get("row0", 0), transposed=True)
    infos, tensors = {}, {}
    for name, t in case["tensors"].items():
        raw = base64.b64decode(t["data"])
        infos[name] = Tensor(t["dtype"], t["shape"], None, t.get("row_order"))
        tensors[name] = Tensor(t["dtype"], t["shape"], js_bytes(raw) if case["js"] else raw, t.get("row_order"))
    live, staging, usage = gpu.live_buffers, weights.STAGING_BYTES, dict(runner.BUFFER_USAGE)
    weights.STAGING_BYTES = case["staging"] or staging
    runner.BUFFER_USAGE["storage"] |= COPY_SRC  # to read the weight back
    model, out = None, {}
    try:
        # the buffers first (the staging buffer sized by the plan from the tensors' dtypes and shapes)
        model = runner.GPUModel(gpu, Graph([w]), infos, stream=True)
        buf = model.allocated["w"]
        gpu.write(buf, bytes([case["sentinel"]]) * int(buf.size))
        if case["mode"] == "stream":  # as app/loader.py streams a file: tensors as they come
            assert model.take(tensors) == set() and model._stream.missing() is None
        else:  # written whole (_upload), as a load that has every tensor at once
            model._upload(w, tensors)
        out["bytes"] = base64.b64encode(await gpu.read(buf, int(buf.size))).decode()
        out["pipelines"] = sum(k.shader == "transpose.wgsl" for k in model._load_pipelines)
        out["dispatches"] = model.load_dispatches
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        weights.STAGING_BYTES = staging
        runner.BUFFER_USAGE.update(usage)
        if model is not None:
            model.free()  # the staging buffer too
        gpu.check()
    out["leaked"] = gpu.live_buffers - live
    return out


async def transpose_loads(spec):
    return [await transpose_load(case) for case in json.loads(spec)]


scratch["transpose_loads"] = transpose_loads
True
'''

@pytest.fixture(scope="module")
def page(booted_page):
    # the page loads its bundled model once booted: let it finish, so the leak counts see only ours
    booted_page.wait_for_selector("body[data-model='loaded']", state="attached")
    run_py(booted_page, PAGE_HELPER)
    return booted_page


def load(page, cases: list) -> list:
    """Each case loaded by the page's transpose_load (in one call)."""
    return run_py(page, f"await scratch['transpose_loads']({json.dumps(json.dumps(cases))})")


def source(K: int, N: int, dtype: str, seed: int) -> np.ndarray:
    """A [K, N] source as the bits a file stores: random words (any NaN payload, subnormals, infinities),
    16-bit ones led by the special values. F16 NaNs are quiet ones: numpy may widen f16 with the
    CPU's F16C instruction, which quiets a signalling NaN (the shader keeps every payload as is)."""
    rng = np.random.default_rng(seed)
    if dtype == "F32":
        return rng.integers(0, 1 << 32, (K, N), dtype=np.uint32)
    bits = rng.integers(0, 1 << 16, K * N, dtype=np.uint16)
    bits[:len(SPECIAL[dtype])] = SPECIAL[dtype][:K * N]
    if dtype == "F16":
        nan = (((bits >> 10) & 0x1F) == 0x1F) & ((bits & 0x3FF) != 0)
        bits[nan] |= 0x200
    return bits.reshape(K, N)


def on_gpu(src: np.ndarray, file: str, gpu: str) -> bytes:
    """numpy's src.T in the GPU's dtype: the bytes the weight buffer must hold."""
    if file == gpu:
        return np.ascontiguousarray(src.T).astype(src.dtype.newbyteorder("<")).tobytes()
    if file == "F16":
        wide = src.view(np.float16).astype(np.float32)
    else:
        wide = (src.astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(wide.T).astype("<f4").tobytes()


def case(K: int, N: int, file: str, gpu: str, data: np.ndarray | None = None, *, mode="stream", js=True,
         staging=None, shape=None, row_order=None, **spec) -> dict:
    """A load of source `data` (zeros by default) of `file` dtype and `shape` ([K, N] by default) into a
    transposed [N, K] weight of `gpu` dtype; `spec` overrides the WeightSpec's fields."""
    shape = list(shape or (K, N))
    if data is None:
        data = np.zeros(shape, np.uint32 if file == "F32" else np.uint16)
    raw = data.astype(data.dtype.newbyteorder("<")).tobytes()
    tensor = {"dtype": file, "shape": shape, "data": base64.b64encode(raw).decode(), "row_order": row_order}
    return {"spec": {"sources": ["t"], "rows": N, "cols": K, "dtype": gpu, **spec}, "tensors": {"t": tensor},
            "mode": mode, "js": js, "staging": staging, "sentinel": SENTINEL}


@pytest.mark.browser
@pytest.mark.parametrize("file, gpu", COMBOS, ids=[f"{a}->{b}" for a, b in COMBOS])
def test_a_transposed_weight_is_src_T_byte_for_byte(page, file, gpu):
    """Every shape, through every path (streamed or whole, JS array or Python bytes): the buffer holds
    numpy's src.T (widened where the GPU keeps F32) exactly, the bytes past the matrix keep what they
    held (an odd 16-bit count ends mid-word), a chunked source took one dispatch per chunk, and the
    load frees its staging buffer with the model."""
    cases, wants = [], []
    for seed, (K, N, rows) in enumerate(SHAPES):
        src = source(K, N, file, seed)
        src_row = N * src.itemsize
        for mode, js in MODES:
            cases.append(case(K, N, file, gpu, src, mode=mode, js=js, staging=rows and (rows + 1) * src_row))
            wants.append((K, N, rows, mode, js, on_gpu(src, file, gpu)))
    for got, (K, N, rows, mode, js, want) in zip(load(page, cases), wants):
        where = f"{K} x {N}, {mode}, {'JS array' if js else 'Python bytes'}"
        assert "error" not in got, f"{where}: {got['error']}"
        out = base64.b64decode(got["bytes"])
        nbytes = gpu_matrix_bytes(N, K, gpu)
        assert len(want) == nbytes and len(out) == buffer_size(nbytes)
        if out[:nbytes] != want:
            bad = next(i for i in range(nbytes) if out[i] != want[i])
            pytest.fail(f"{where}: byte {bad} differs: got {out[bad:bad + 8].hex()} want {want[bad:bad + 8].hex()}")
        assert out[nbytes:] == bytes([SENTINEL]) * (len(out) - nbytes), f"{where}: bytes past the matrix"
        assert got["dispatches"] == (-(-K // rows) if rows else 1), where
        assert got["pipelines"] == 1, where
        assert got["leaked"] == 0, where


@pytest.mark.browser
def test_what_transpose_on_load_cannot_write_is_refused(page):
    """A source of the wrong shape (another size, or already [N, K]), rows to reorder (a GGUF's), a
    dtype change other than widening to F32, several sources or a slice of rows: a ModelError naming
    the weight, streamed (before any byte is read) or written whole, and no GPU buffer left behind."""
    bad = {
        "a source of another size": case(12, 5, "F32", "F32", shape=(13, 5)),
        "a source already [N, K]": case(12, 5, "F16", "F16", shape=(5, 12)),
        "a source of another size, whole": case(12, 5, "BF16", "F32", shape=(12, 6), mode="whole", js=False),
        "rows to reorder": case(12, 5, "F32", "F32", row_order=list(range(12))),
        "rows to reorder, whole": case(12, 5, "F16", "F16", row_order=list(range(12)), mode="whole"),
        "f32 to f16": case(12, 5, "F32", "F16"),
        "f16 to bf16": case(12, 5, "F16", "BF16", mode="whole"),
        "a block format": case(32, 5, "F32", "Q8_0"),
        "two sources": case(12, 5, "F32", "F32", sources=["t", "t"]),
        "a slice of rows": case(12, 5, "F32", "F32", row0=2),
    }
    for (name, _), got in zip(bad.items(), load(page, list(bad.values()))):
        assert got.get("error", "").startswith("ModelError: w: "), (name, got)
        assert got["leaked"] == 0, name


@pytest.mark.parametrize("rows, k0, k1, dtype", [(3, 0, 12, "F16"), (5, 0, 13, "BF16"), (7, 36, 37, "F16"),
                                                 (6400, 0, 1600, "F32"), (50257, 0, 4096, "F16")])
def test_the_dispatch_covers_every_word_within_the_workgroup_limit(rows, k0, k1, dtype):
    """transpose_workgroups: at least one invocation per word the shader's rows span (F32: one per
    column; 16-bit: (k1 - k0) / 2 + 1), no dimension over WebGPU's 65,535 and no row of workgroups
    more than needed."""
    x, y, z = transpose_workgroups(rows, k0, k1, dtype)
    words = rows * (k1 - k0 if dtype == "F32" else (k1 - k0) // 2 + 1)
    assert max(x, y, z) <= MAX_WORKGROUPS_PER_DIM and z == 1
    assert x * (y - 1) * TRANSPOSE_GROUP_SIZE < words <= x * y * TRANSPOSE_GROUP_SIZE
