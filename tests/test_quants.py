"""tools/quants.py: ggml's Q8_0 / Q4_0 / Q4_1 block formats, bit for bit against the gguf package
(llama.cpp's gguf-py, whose quantizers reproduce ggml-quants.c), and F32 / F16 / BF16 decoding."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gguf  # noqa: E402

from tools.quants import BLOCK_BYTES, decode, dequantize, quantize  # noqa: E402

TYPES = list(BLOCK_BYTES)


def awkward_rows() -> dict:
    rng = np.random.default_rng(1234)
    f32 = np.float32
    cases = {
        "normal, several blocks per row": rng.standard_normal((7, 96)).astype(f32),
        "zeros": np.zeros((2, 64), f32),
        "negative zeros": np.full((1, 32), -0.0, f32),
        "constant rows": np.stack([np.full(32, 3.25, f32), np.full(32, -2.5, f32)]),
        "negative maxima": -np.abs(rng.standard_normal((5, 64))).astype(f32),
        "one spike per block": np.where(np.arange(64) % 32 == 5, f32(-40.0), f32(0.01))[None].repeat(3, 0),
        "small integers (ties)": rng.integers(-8, 9, (6, 128)).astype(f32),
        "half-way values": (np.arange(64, dtype=f32) - 31.5)[None] / f32(2),
        "huge (f16 scale overflows)": (rng.uniform(-1, 1, (4, 64)) * 3.3e38).astype(f32),
        "large": (rng.standard_normal((4, 64)) * 1e5).astype(f32),
        "tiny (f16 scale underflows)": (rng.standard_normal((3, 32)) * 1e-20).astype(f32),
        "subnormal (1/d overflows)": (rng.standard_normal((3, 32)) * 1e-39).astype(f32),
        "mixed magnitudes": (rng.standard_normal((4, 64)) * 10.0 ** rng.integers(-6, 6, (4, 64))).astype(f32),
        "3-d tensor": rng.standard_normal((2, 3, 64)).astype(f32),
    }
    return cases


CASES = awkward_rows()


def reference_quantize(values, type_name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow / invalid-value chatter on the extreme cases
        return gguf.quants.quantize(values, gguf.GGMLQuantizationType[type_name])


def reference_dequantize(blocks, type_name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[type_name])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as float32 bit patterns (NaNs included, +0 and -0 told apart)."""
    bits_a, bits_b = a.astype(np.float32).view(np.uint32), b.astype(np.float32).view(np.uint32)
    return a.shape == b.shape and np.array_equal(bits_a, bits_b)


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_quantize_matches_gguf_bit_for_bit(type_name, case):
    """Every byte of the blocks equals gguf-py's quantizer, on awkward data."""
    values = CASES[case]
    ours = quantize(values, type_name)
    theirs = reference_quantize(values, type_name)
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    assert ours.shape[-1] == values.shape[-1] // 32 * BLOCK_BYTES[type_name]
    bad = np.argwhere(ours != theirs)
    assert bad.size == 0, f"{bad.shape[0]} bytes differ, first at {bad[0].tolist()}"


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_dequantize_matches_gguf_bit_for_bit(type_name, case):
    """Dequantized values equal gguf-py's bit for bit, for blocks from the quantizer."""
    values = CASES[case]
    blocks = reference_quantize(values, type_name)
    assert same_bits(dequantize(blocks, type_name, values.shape), reference_dequantize(blocks, type_name))


@pytest.mark.parametrize("type_name", TYPES)
def test_dequantize_any_bytes_matches_gguf(type_name):
    """Random bytes (any f16 scale and min: NaN, inf, subnormal) dequantize as gguf-py does."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, (300, BLOCK_BYTES[type_name]), dtype=np.uint8)
    ours = dequantize(blocks.tobytes(), type_name, (10, 30 * 32))
    assert same_bits(ours, reference_dequantize(blocks, type_name).reshape(10, 30 * 32))


def test_block_layouts_by_hand():
    """The layouts: f16 scale (and min) first, then the quants; Q4 nibbles: byte j holds element j
    (low) and element j + 16 (high); Q4_0 subtracts 8."""
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))
    want_low = [(j % 16) for j in range(16)]
    want_high = [((15 - j) % 16) for j in range(16)]

    q4_0 = dequantize(scale + nibbles, "Q4_0", (32,))
    assert q4_0.tolist() == [0.5 * (q - 8) for q in want_low + want_high]

    q4_1 = dequantize(scale + np.float16(-1.0).tobytes() + nibbles, "Q4_1", (32,))
    assert q4_1.tolist() == [0.5 * q - 1.0 for q in want_low + want_high]

    ints = bytes(np.arange(-16, 16, dtype=np.int8).view(np.uint8))
    assert dequantize(scale + ints, "Q8_0", (32,)).tolist() == [0.5 * q for q in range(-16, 16)]


def test_rounding_is_ggmls():
    """Q8_0 rounds half away from zero (C roundf) and 0.49999997 down; Q4_0's scale comes from the
    value of largest magnitude with its sign; Q4_1 keeps the minimum."""
    row = np.zeros(32, np.float32)
    row[0] = 127.0  # d = 1
    row[1:6] = [2.5, -2.5, 0.5, -0.5, np.nextafter(np.float32(0.5), np.float32(0))]
    q = quantize(row, "Q8_0")[2:].view(np.int8)
    assert q[:6].tolist() == [127, 3, -3, 1, -1, 0]

    row = np.linspace(-1, 16, 32, dtype=np.float32)
    row[7] = -16.0  # the largest magnitude, negative: d = -16 / -8 = 2
    blocks = quantize(row, "Q4_0")
    assert np.frombuffer(blocks[:2].tobytes(), np.float16)[0] == 2.0
    assert dequantize(blocks, "Q4_0", (32,))[7] == -16.0

    blocks = quantize(np.arange(32, dtype=np.float32) - 3.0, "Q4_1")
    assert np.frombuffer(blocks[2:4].tobytes(), np.float16)[0] == -3.0


def test_round_trip_error_is_within_half_a_step():
    """Dequantize(quantize(x)) is within half a quantization step of x (plus f16 scale rounding), and
    within a whole step for Q4_0, whose 16 levels reach -8 steps on one side but only +7 on the other."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((16, 256)).astype(np.float32)
    blocks = values.reshape(-1, 32)
    steps = {"Q8_0": np.abs(blocks).max(1) / 127, "Q4_0": np.abs(blocks).max(1) / 8,
             "Q4_1": (blocks.max(1) - blocks.min(1)) / 15}
    for type_name, step in steps.items():
        back = dequantize(quantize(values, type_name), type_name, values.shape).reshape(-1, 32)
        error = np.abs(back - blocks).max(1)
        steps_allowed = 1.0 if type_name == "Q4_0" else 0.5
        assert np.all(error <= step * steps_allowed + np.abs(blocks).max(1) * 2e-3 + 1e-7), type_name


def test_float_formats_decode_exactly():
    """F32, F16 and BF16 bytes decode to the float32 values they encode (BF16: the top half)."""
    import torch

    rng = np.random.default_rng(5)
    values = (rng.standard_normal((3, 40)) * 100).astype(np.float32)
    assert same_bits(decode(values.tobytes(), "F32", (3, 40)), values)
    assert same_bits(decode(values.astype(np.float16).tobytes(), "F16", (3, 40)), values.astype(np.float16))
    bf16 = torch.from_numpy(values).to(torch.bfloat16)
    raw = bf16.view(torch.int16).numpy().tobytes()
    assert same_bits(decode(raw, "BF16", (3, 40)), bf16.float().numpy())


def test_bad_shapes_are_refused():
    """Rows that are not whole blocks, and byte counts that do not fit the shape, are ValueErrors."""
    with pytest.raises(ValueError, match="whole blocks"):
        quantize(np.zeros((2, 33), np.float32), "Q8_0")
    with pytest.raises(ValueError, match="needs 68 bytes"):
        dequantize(bytes(34), "Q8_0", (2, 32))
    with pytest.raises(ValueError, match="cannot quantize"):
        quantize(np.zeros(32, np.float32), "Q4_K")
