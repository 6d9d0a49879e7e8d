"""shaders/quantize.wgsl (quantize-on-load) run in the page on SwiftShader: f32, f16 and bf16 matrices
become Q8_0 and Q4_0 blocks equal, byte for byte, to the `gguf` package's quantizer (ggml's
quantize_row_q8_0_ref / quantize_row_q4_0_ref as built for x86) on adversarial blocks: exact ties
x * id = n + 0.5 and their float neighbours, Q4_0's x * id + 8.5 just below, at and above an
integer, maxima that are powers of two, zeros and negative zeros, constant rows, the largest
magnitude repeated with both signs (Q4_0 keeps the first), negative maxima, scales that round to the
f16 maximum or overflow it, f16-subnormal scales and their ties, subnormal inputs with a finite
1 / d and with an overflowing one, huge values, infinities and the canonical NaN. Blocks land in a
destination that already holds other bytes, at odd block offsets, and must leave them alone."""

from __future__ import annotations

import warnings

import gguf
import numpy as np
import pytest

import kernel_harness as kh
from app.weights import (
    BLOCK_FORMATS,
    GROUPED_FORMATS,
    QUANTIZE_FORMATS,
    QUANTIZE_SOURCES,
    REGROUP_SOURCE,
    from_gpu_layout,
    quantize_workgroups,
)
from app.wgsl import WEIGHT_SNIPPETS
from kernel_harness import step, to_bf16_bits

pytestmark = pytest.mark.browser

F32 = np.float32


@pytest.fixture(scope="module")
def kpage(booted_page):
    kh.install(booted_page)
    return booted_page


def reference(values: np.ndarray, fmt: str) -> np.ndarray:
    """gguf-py's blocks for `values` [n, 32]: uint8 [n, block bytes]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow / invalid-value chatter on the extreme blocks
        return gguf.quants.quantize(values, gguf.GGMLQuantizationType[fmt])


def blocks_of(*rows) -> np.ndarray:
    return np.concatenate([np.asarray(r, dtype=F32).reshape(-1, 32) for r in rows])


def adversarial_cases(seed: int = 0) -> dict:
    """name -> float32 blocks [n, 32]."""
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    cases = {}
    cases["normal"] = normal((24, 32)).astype(F32)
    cases["zeros and negative zeros"] = blocks_of(np.zeros(32), np.full(32, -0.0),
                                                  np.where(np.arange(32) % 2 == 0, F32(-0.0), F32(0.0)))
    cases["constant"] = blocks_of(np.full(32, 3.25), np.full(32, -2.5), np.full(32, 127.0), np.full(32, -8.0))
    cases["negative maxima"] = -np.abs(normal((6, 32))).astype(F32)
    tie = np.zeros((4, 32), F32)
    tie[0, [3, 10]] = [-5.0, 5.0]
    tie[1, [3, 10]] = [5.0, -5.0]
    tie[2, [0, 31]] = [-1e-3, 1e-3]
    tie[3] = np.where(np.arange(32) % 2 == 0, F32(7.0), F32(-7.0))
    cases["largest magnitude with both signs"] = tie
    powers = []
    for k in (-30, -7, 0, 1, 13, 40):
        block = normal(32).astype(F32)
        block *= F32(2.0 ** k) / np.abs(block).max()  # the largest magnitude is exactly 2^k
        powers.append(block)
        powers.append(-block)
    cases["amax a power of two"] = blocks_of(*powers)
    # Q8_0 ties: amax = 127 * 2^k makes d = 2^k and id = 2^-k exact, so x = (n + 0.5) 2^k is a tie.
    ties = []
    for k in (-3, 0, 5):
        n = rng.integers(-127, 127, 31)
        ties.append(np.concatenate([[127.0 * 2.0 ** k], (n + 0.5) * 2.0 ** k]))
    cases["exact Q8_0 ties"] = blocks_of(*ties)
    # x = (n + 0.5) d and its neighbours, with d = amax / 127 in f32: x * id lands on or beside n + 0.5.
    near = []
    for amax in F32(rng.uniform(0.1, 100.0, 6)):
        d = amax / F32(127)
        n = rng.integers(-126, 126, 31).astype(F32)
        x = (n + F32(0.5)) * d
        for direction in (0, 1, -1):
            xs = x if direction == 0 else np.nextafter(x, F32(direction * np.inf)).astype(F32)
            near.append(np.concatenate([[amax], xs]))
    cases["near Q8_0 ties"] = blocks_of(*near)
    # Q4_0: x = (m - 8.5) d with d = max / -8, so x * id + 8.5 is at or beside the integer m.
    edges = []
    for top in F32(rng.uniform(-50.0, 50.0, 6)):
        d = top / F32(-8)
        m = rng.integers(0, 17, 31).astype(F32)
        x = (m - F32(8.5)) * d
        x = np.clip(x, -abs(top), abs(top))  # keep `top` the first value of largest magnitude
        for direction in (0, 1, -1):
            xs = x if direction == 0 else np.nextafter(x, F32(direction * np.inf)).astype(F32)
            edges.append(np.concatenate([[top], np.clip(xs, -abs(top) * F32(0.999), abs(top) * F32(0.999))]))
    cases["Q4_0 integer edges"] = blocks_of(*edges)
    cases["small integers"] = rng.integers(-8, 9, (6, 32)).astype(F32)
    cases["half-way values"] = ((np.arange(64, dtype=F32) - F32(31.5)) / F32(2)).reshape(2, 32)
    # f16 scale: amax / 127 (Q8_0) or amax / 8 (Q4_0) rounding to 65504, tying with 65520, overflowing.
    big = []
    for d in (65504.0, 65519.0, 65520.0, 65536.0, 1e6):
        for divisor in (127.0, -8.0):
            block = np.zeros(32, F32)
            block[5] = F32(d * abs(divisor)) * (1 if divisor > 0 else -1)
            block[6:] = normal(26).astype(F32)
            big.append(block)
    cases["f16 scale near its maximum"] = blocks_of(*big)
    # f16-subnormal scales, and ties between two of them: d = (k + 0.5) 2^-24 exactly.
    small = []
    for k in (0, 1, 2, 7, 100, 1022):
        for divisor in (127.0, 8.0):
            block = normal(32).astype(F32) * F32(1e-9)
            block[0] = F32((k + 0.5) * 2.0 ** -24 * divisor)
            small.append(block)
            small.append(-block)
    small.append(normal(32).astype(F32) * F32(1e-5))
    cases["f16-subnormal scales"] = blocks_of(*small)
    cases["huge"] = (rng.uniform(-1, 1, (4, 32)) * 3.3e38).astype(F32)
    top = np.zeros((2, 32), F32)
    top[0, 7] = np.finfo(F32).max
    top[1, 7] = -np.finfo(F32).max
    top[:, 8:] = normal((2, 24)).astype(F32) * F32(1e30)
    cases["the largest f32"] = top
    cases["tiny (f16 scale underflows)"] = (normal((3, 32)) * 1e-20).astype(F32)
    cases["subnormal inputs (1 / d overflows)"] = (normal((4, 32)) * 1e-39).astype(F32)
    # amax ~ 1e-36: d is subnormal, 1 / d finite; subnormal x have x * id >= 0.5.
    sub = (normal((4, 32)) * 5e-39).astype(F32)
    sub[:, 0] = F32(1e-36) * np.array([1, -1, 1.7, -0.3], F32)
    cases["subnormal d with a finite 1 / d"] = sub
    cases["mixed magnitudes"] = (normal((6, 32)) * 10.0 ** rng.integers(-6, 6, (6, 32))).astype(F32)
    inf = normal((4, 32)).astype(F32)
    inf[0, 4], inf[1, 9], inf[2, [0, 5]], inf[3, [2, 3]] = np.inf, -np.inf, [-np.inf, np.inf], [np.inf, np.inf]
    cases["infinities"] = inf
    nan = normal((3, 32)).astype(F32)
    nan[0, 12] = np.nan
    nan[1, [0, 20]] = [np.nan, np.inf]
    nan[2, 3] = -np.float32(np.nan)
    cases["canonical NaN"] = nan
    return cases


def src_bytes(values: np.ndarray, src: str) -> tuple[bytes, np.ndarray]:
    """The source matrix as the GPU holds it, and the f32 values it stands for."""
    if src == "F32":
        return values.astype("<f4").tobytes(), values
    if src == "F16":
        with np.errstate(over="ignore"):
            half = values.astype("<f2")
        return half.tobytes(), half.astype(F32)
    bits = to_bf16_bits(values)
    return bits.astype("<u2").tobytes(), (bits.astype(np.uint32) << 16).view(F32)


def run_quantize(page, raw: bytes, fmt: str, src: str, blocks: int, block0: int, dst: bytes, groups=None) -> bytes:
    entry = "quantize_" + fmt.lower()
    consts = dict(SRC=REGROUP_SOURCE if src == fmt else QUANTIZE_SOURCES[src])
    dispatch = groups or quantize_workgroups(blocks, block0)
    steps = [step("quantize.wgsl", entry, consts, dict(src="src", dst="dst", chunk="chunk"), dispatch,
                  WEIGHT_SNIPPETS[fmt])]
    chunk = np.array([block0, blocks, 0, 0], "<u4").tobytes()
    return kh.run(page, {"src": raw + bytes(-len(raw) % 4), "dst": dst, "chunk": chunk}, steps, ["dst"])["dst"]


def as_file_blocks(out: bytes, fmt: str, blocks: int) -> np.ndarray:
    """The first `blocks` blocks of a quantize.wgsl destination (in the GPU's layout), as a file stores
    them: [blocks, block bytes]."""
    raw = from_gpu_layout(out, fmt, blocks) if fmt in GROUPED_FORMATS else out[:blocks * BLOCK_FORMATS[fmt][1]]
    return np.frombuffer(raw, np.uint8).reshape(blocks, BLOCK_FORMATS[fmt][1])


def assert_blocks_equal(got: np.ndarray, want: np.ndarray, names: list, fmt: str):
    bad = np.flatnonzero((got != want).any(axis=1))
    if bad.size:
        detail = "; ".join(f"block {i} ({names[i]}): got {got[i].tobytes().hex()} want {want[i].tobytes().hex()}"
                           for i in bad[:4])
        raise AssertionError(f"{fmt}: {bad.size} of {len(want)} blocks differ from gguf-py: {detail}")


@pytest.mark.parametrize("src", list(QUANTIZE_SOURCES))
@pytest.mark.parametrize("fmt", QUANTIZE_FORMATS)
def test_quantize_equals_gguf_byte_for_byte(kpage, fmt, src):
    """Every adversarial block (one matrix, one dispatch) quantizes to gguf-py's bytes; the blocks
    land from the odd block 3 of a destination holding other bytes, which stay as they were."""
    cases = adversarial_cases()
    values = np.concatenate(list(cases.values()))
    names = [name for name, block in cases.items() for _ in range(len(block))]
    raw, widened = src_bytes(values, src)
    want = reference(widened, fmt)
    block_bytes = BLOCK_FORMATS[fmt][1]
    block0, n = 3, len(values)
    total = block0 + n + 2
    filler = np.random.default_rng(9).integers(0, 256, total * block_bytes, dtype=np.uint8)
    out = run_quantize(kpage, raw, fmt, src, n, block0, kh.block_table(filler.tobytes(), fmt))
    out = as_file_blocks(out, fmt, total).reshape(-1)
    got = out[block0 * block_bytes:(block0 + n) * block_bytes].reshape(n, block_bytes)
    assert_blocks_equal(got, want, names, fmt)
    np.testing.assert_array_equal(out[:block0 * block_bytes], filler[:block0 * block_bytes], "bytes before")
    np.testing.assert_array_equal(out[(block0 + n) * block_bytes:], filler[(block0 + n) * block_bytes:],
                                  "bytes after")


@pytest.mark.parametrize("fmt", QUANTIZE_FORMATS)
def test_quantize_matrices_sharing_a_buffer(kpage, fmt):
    """Three matrices of 5, 3 and 6 blocks quantized one after the other into one buffer (as q, k and
    v rows are), each starting where the last ended (odd offsets: shared words are merged), equal the
    gguf-py bytes of the three concatenated; a dispatch laid out over two rows of workgroups (x * y
    covering more than needed) writes no more."""
    rng = np.random.default_rng(4)
    parts = [rng.standard_normal((5, 32)).astype(F32), rng.standard_normal((1, 96)).astype(F32) * F32(30),
             rng.standard_normal((2, 96)).astype(F32) * F32(1e-3)]
    block_bytes = BLOCK_FORMATS[fmt][1]
    dst = kh.block_table(bytes(14 * block_bytes), fmt)
    block0 = 0
    for i, part in enumerate(parts):
        blocks = part.size // 32
        groups = (1, 2, 1) if i == 1 else None
        dst = run_quantize(kpage, part.tobytes(), fmt, "F32", blocks, block0, dst, groups)
        block0 += blocks
    want = reference(np.concatenate([p.reshape(-1, 32) for p in parts]), fmt)
    got = as_file_blocks(dst, fmt, 14)
    assert_blocks_equal(got, want, [f"matrix {i}" for i, p in enumerate(parts) for _ in range(p.size // 32)], fmt)
    assert dst == kh.block_table(got.tobytes(), fmt), "bytes past the last matrix"


def test_quantize_a_larger_matrix_from_f16(kpage):
    """A 96 x 576 f16 matrix (1,728 blocks: 864 pairs, 14 workgroups) to Q8_0 and Q4_0 equals gguf-py;
    the Q4_0 dispatch lays the 14 workgroups out as 7 x 2."""
    values = (np.random.default_rng(5).standard_normal((96, 576)) * 0.05).astype(F32)
    raw, widened = src_bytes(values, "F16")
    for fmt, groups in zip(QUANTIZE_FORMATS, [None, (7, 2, 1)]):
        block_bytes = BLOCK_FORMATS[fmt][1]
        n = values.size // 32
        out = run_quantize(kpage, raw, fmt, "F16", n, 0, kh.block_table(bytes(n * block_bytes), fmt), groups)
        got = as_file_blocks(out, fmt, n)
        assert_blocks_equal(got, reference(widened.reshape(-1, 32), fmt), ["random"] * n, fmt)


def test_q4_0_blocks_of_a_file_are_regrouped_as_they_are(kpage):
    """A file's Q4_0 blocks (SRC 3) go to the GPU's groups of 8 unchanged, as to_gpu_layout moves
    them: three matrices of 5, 3 and 11 blocks one after the other in one buffer (groups shared
    across their boundaries, odd first blocks), the last laid out over two rows of workgroups."""
    rng = np.random.default_rng(6)
    parts = [rng.integers(0, 256, n * 18, dtype=np.uint8).tobytes() for n in (5, 3, 11)]
    dst = kh.block_table(bytes(19 * 18), "Q4_0")
    block0 = 0
    for i, part in enumerate(parts):
        blocks = len(part) // 18
        dst = run_quantize(kpage, part, "Q4_0", "Q4_0", blocks, block0, dst, (1, 2, 1) if i == 2 else None)
        block0 += blocks
    assert dst == kh.block_table(b"".join(parts), "Q4_0")
