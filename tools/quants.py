"""ggml's block formats Q8_0, Q4_0 and Q4_1 in numpy: quantize and dequantize exactly as ggml does
(ggml-quants.c's quantize_row_*_ref and dequantize_row_*), plus F32 / F16 / BF16 decoding. Q5_0 and
Q5_1 (Q4_0 / Q4_1 with 4 bytes of fifth bits qh after the scales) are the gguf package's port of the
same reference code.

Every format packs 32 consecutive values of a row (a block) as:

    Q8_0  [d: f16][32 x int8 q]                 x = q * d            d = amax / 127, q = round(x / d)
    Q4_0  [d: f16][16 bytes]                    x = (q - 8) * d      d = max / -8 (max: the value of
                                                                     largest magnitude, with its sign)
    Q4_1  [d: f16][m: f16][16 bytes]            x = q * d + m        d = (max - min) / 15, m = min

Q4_* byte j of the 16 holds element j in its low nibble and element j + 16 in its high nibble.
All arithmetic is float32, as in ggml's C: the scale is computed and inverted in float32 (the
stored f16 scale is only for dequantizing), Q8_0 rounds half away from zero (roundf), Q4_0 and Q4_1
truncate q + 8.5 / q + 0.5 toward zero and clamp to 15.

    python tools/quants.py      # nothing to run; import quantize / dequantize / decode
"""

from __future__ import annotations

import numpy as np

try:
    from tools import kquants
except ImportError:  # run as a script from tools/
    import kquants

BLOCK_ELEMENTS = 32
# type -> bytes per block of 32 values
BLOCK_BYTES = {"Q8_0": 34, "Q4_0": 18, "Q4_1": 20, "Q5_0": 22, "Q5_1": 24}
GGUF_PORTED = ("Q5_0", "Q5_1")  # made and read by the gguf package's numpy port of ggml's reference code
FLOAT_TYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def _blocks(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 0 or values.shape[-1] % BLOCK_ELEMENTS:
        raise ValueError(f"rows of {values.shape[-1] if values.ndim else 0} values are not whole blocks of "
                         f"{BLOCK_ELEMENTS}")
    return values.reshape(-1, BLOCK_ELEMENTS)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's roundf in float32: floor(|x|) + (1 if the fraction is >= 0.5), with x's sign. (Adding 0.5
    and flooring is wrong for 0.49999997, where the sum rounds up to 1.)"""
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    return np.sign(x) * (whole + np.floor(np.float32(2) * (magnitude - whole)))


def _inverse(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """[n, 32] values 0..15 -> [n, 16] bytes: element j low, element j + 16 high."""
    return (q[:, :16] | (q[:, 16:] << np.uint8(4))).astype(np.uint8)


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    return np.concatenate([packed & np.uint8(0x0F), packed >> np.uint8(4)], axis=1)


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return values.astype(np.float16).reshape(-1, 1).view(np.uint8)


def quantize(values, type_name: str) -> np.ndarray:
    """float values [..., K] (K a multiple of 32) -> uint8 blocks [..., K / 32 * block bytes]."""
    values = np.asarray(values, dtype=np.float32)
    blocks = _blocks(values)
    with np.errstate(invalid="ignore", over="ignore"):
        if type_name in GGUF_PORTED:
            from gguf import GGMLQuantizationType
            from gguf.quants import quantize as gguf_quantize

            packed = gguf_quantize(blocks, getattr(GGMLQuantizationType, type_name)).reshape(len(blocks), -1)
        elif type_name == "Q8_0":
            d = np.abs(blocks).max(axis=1) / np.float32(127)
            q = _round_half_away(blocks * _inverse(d)[:, None]).astype(np.int8).view(np.uint8)
            packed = np.concatenate([_f16_bytes(d), q], axis=1)
        elif type_name == "Q4_0":
            largest = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=1)[:, None], axis=1)[:, 0]
            d = largest / np.float32(-8)
            q = np.trunc(blocks * _inverse(d)[:, None] + np.float32(8.5)).astype(np.uint8)
            packed = np.concatenate([_f16_bytes(d), _pack_nibbles(np.minimum(q, np.uint8(15)))], axis=1)
        elif type_name == "Q4_1":
            low, high = blocks.min(axis=1), blocks.max(axis=1)
            d = (high - low) / np.float32(15)
            q = np.trunc((blocks - low[:, None]) * _inverse(d)[:, None] + np.float32(0.5)).astype(np.uint8)
            packed = np.concatenate([_f16_bytes(d), _f16_bytes(low), _pack_nibbles(np.minimum(q, np.uint8(15)))],
                                    axis=1)
        else:
            raise ValueError(f"cannot quantize to {type_name!r}; types: {', '.join(BLOCK_BYTES)}")
    row = values.shape[-1] // BLOCK_ELEMENTS * BLOCK_BYTES[type_name]
    return packed.reshape(*values.shape[:-1], row)


def dequantize(raw, type_name: str, shape) -> np.ndarray:
    """uint8 blocks (bytes or an array) of a tensor of this row-major shape -> float32 values."""
    shape = tuple(int(s) for s in shape)
    if type_name not in BLOCK_BYTES:
        raise ValueError(f"{type_name!r} is not a block format; types: {', '.join(BLOCK_BYTES)}")
    if not shape or shape[-1] % BLOCK_ELEMENTS:
        raise ValueError(f"shape {shape}: rows are not whole blocks of {BLOCK_ELEMENTS}")
    n_blocks = int(np.prod(shape)) // BLOCK_ELEMENTS
    data = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    if data.size != n_blocks * BLOCK_BYTES[type_name]:
        raise ValueError(f"{type_name} {shape} needs {n_blocks * BLOCK_BYTES[type_name]} bytes, got {data.size}")
    blocks = data.reshape(n_blocks, BLOCK_BYTES[type_name])
    if type_name in GGUF_PORTED:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize as gguf_dequantize

        return gguf_dequantize(blocks, getattr(GGMLQuantizationType, type_name)).reshape(shape).astype(np.float32)
    d = np.ascontiguousarray(blocks[:, 0:2]).view(np.float16).astype(np.float32)  # [n, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        if type_name == "Q8_0":
            values = blocks[:, 2:].view(np.int8).astype(np.float32) * d
        elif type_name == "Q4_0":
            values = (_unpack_nibbles(blocks[:, 2:]).astype(np.int8) - np.int8(8)).astype(np.float32) * d
        else:
            m = np.ascontiguousarray(blocks[:, 2:4]).view(np.float16).astype(np.float32)
            values = _unpack_nibbles(blocks[:, 4:]).astype(np.float32) * d + m
    return values.reshape(shape)


def decode(raw, type_name: str, shape) -> np.ndarray:
    """Any supported GGUF tensor's bytes -> float32 values of this row-major shape."""
    shape = tuple(int(s) for s in shape)
    if type_name in BLOCK_BYTES:
        return dequantize(raw, type_name, shape)
    if type_name in kquants.BLOCK_BYTES:
        return kquants.dequantize(raw, type_name, shape)
    data = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    if type_name == "F32":
        return data.view("<f4").astype(np.float32).reshape(shape)
    if type_name == "F16":
        return data.view("<f2").astype(np.float32).reshape(shape)
    if type_name == "BF16":  # the top half of a float32
        return (data.view("<u2").astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(shape)
    raise ValueError(f"cannot decode {type_name!r}; types: F32, F16, BF16, "
                     f"{', '.join((*BLOCK_BYTES, *kquants.BLOCK_BYTES))}")


if __name__ == "__main__":
    print(__doc__)
