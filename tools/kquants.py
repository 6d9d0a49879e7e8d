"""ggml's k-quants Q4_K, Q5_K and Q6_K in numpy: valid super-blocks from float values, and their
dequantization (the gguf package's, which equals ggml-quants.c's dequantize_row_q4_K / q5_K / q6_K).

The gguf package (0.19) dequantizes k-quants but cannot make them, so `quantize` builds the blocks
itself with plain round-to-nearest: the bytes are exactly ggml's layout (what llama.cpp and
transformers read), but not the bytes llama.cpp's quantizer would choose (it searches for the
scales that minimise the error). Good enough for random test models and kernel tests, whose
reference is the dequantization of these very bytes.

    Q4_K  256 weights, 144 bytes: [d: f16][dmin: f16][scales: 12 bytes][qs: 128 bytes]
          sub-block j of 32: weight = d * sc_j * nibble - dmin * m_j (6-bit sc_j, m_j)
    Q5_K  256 weights, 176 bytes: [d: f16][dmin: f16][scales: 12 bytes][qh: 32 bytes][qs: 128 bytes]
          as Q4_K with a 5th bit: weight = d * sc_j * (nibble + 16 * bit j of qh[l]) - dmin * m_j
    Q6_K  256 weights, 210 bytes: [ql: 128 bytes][qh: 64 bytes][scales: 16 x int8][d: f16]
          group g of 16: weight = d * scales[g] * (6-bit value - 32)

    python tools/kquants.py      # nothing to run; import quantize / dequantize
"""

from __future__ import annotations

import numpy as np

SUPER_BLOCK = 256
BLOCK_BYTES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def _super_blocks(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 0 or values.shape[-1] % SUPER_BLOCK:
        raise ValueError(f"rows of {values.shape[-1] if values.ndim else 0} values are not whole super-blocks of "
                         f"{SUPER_BLOCK}")
    return values.reshape(-1, SUPER_BLOCK)


def _f16(values: np.ndarray) -> np.ndarray:
    """values rounded to f16: (the f16 bytes [n, 2], the rounded values as f32)."""
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    return half.reshape(-1, 1).view(np.uint8), half.astype(np.float32)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, np.float32(0), num / np.where(den == 0, 1, den)).astype(np.float32)


def _quantize_q4_k(blocks: np.ndarray, bits: int = 4) -> np.ndarray:
    """Q4_K (bits 4) or Q5_K (bits 5): 6-bit scales and mins per sub-block of 32, levels 0 .. 2^bits - 1."""
    top = (1 << bits) - 1
    sub = blocks.reshape(-1, 8, 32)
    low = np.minimum(sub.min(axis=2), 0)                        # ggml keeps the min at or below 0
    scale = (sub.max(axis=2) - low) / np.float32(top)
    d_bytes, d = _f16(scale.max(axis=1) / np.float32(63))
    dmin_bytes, dmin = _f16(-low.min(axis=1) / np.float32(63))
    sc = np.clip(np.rint(_ratio(scale, d[:, None])), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(_ratio(-low, dmin[:, None])), 0, 63).astype(np.uint8)
    step = d[:, None] * sc.astype(np.float32)
    offset = dmin[:, None] * m.astype(np.float32)
    q = np.clip(np.rint(_ratio(sub + offset[:, :, None], step[:, :, None])), 0, top).astype(np.uint8)
    scales = np.concatenate([sc[:, :4] | ((sc[:, 4:] >> 4) << 6), m[:, :4] | ((m[:, 4:] >> 4) << 6),
                             (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4)], axis=1)
    low4 = q & 15
    qs = (low4[:, 0::2] | (low4[:, 1::2] << 4)).reshape(-1, 128)  # pair k: sub-block 2k low, 2k + 1 high
    if bits == 4:
        return np.concatenate([d_bytes, dmin_bytes, scales, qs], axis=1)
    # qh[l]: bit j is the 5th bit of weight l of sub-block j
    qh = ((q >> 4).astype(np.uint8) << np.arange(8, dtype=np.uint8)[None, :, None]).sum(axis=1, dtype=np.uint8)
    return np.concatenate([d_bytes, dmin_bytes, scales, qh, qs], axis=1)


def _quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    groups = blocks.reshape(-1, 16, 16)
    scale = np.abs(groups).max(axis=2) / np.float32(31)
    d_bytes, d = _f16(np.abs(scale).max(axis=1) / np.float32(127))
    sc = np.clip(np.rint(_ratio(scale, d[:, None])), -128, 127).astype(np.int8)
    step = d[:, None] * sc.astype(np.float32)
    v = (np.clip(np.rint(_ratio(groups, step[:, :, None])), -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)
    ql = np.concatenate([v[:, :, 0] & 15 | (v[:, :, 2] & 15) << 4, v[:, :, 1] & 15 | (v[:, :, 3] & 15) << 4],
                        axis=2).reshape(-1, 128)                # half h: bytes 64 h .. 64 h + 63
    qh = (v[:, :, 0] >> 4 | (v[:, :, 1] >> 4) << 2 | (v[:, :, 2] >> 4) << 4 | (v[:, :, 3] >> 4) << 6).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d_bytes], axis=1)


def quantize(values, type_name: str) -> np.ndarray:
    """float values [..., K] (K a multiple of 256) -> uint8 super-blocks [..., K / 256 * block bytes]."""
    values = np.asarray(values, dtype=np.float32)
    blocks = _super_blocks(values)
    if type_name in ("Q4_K", "Q5_K"):
        packed = _quantize_q4_k(blocks, 4 if type_name == "Q4_K" else 5)
    elif type_name == "Q6_K":
        packed = _quantize_q6_k(blocks)
    else:
        raise ValueError(f"cannot quantize to {type_name!r}; types: {', '.join(BLOCK_BYTES)}")
    return packed.reshape(*values.shape[:-1], values.shape[-1] // SUPER_BLOCK * BLOCK_BYTES[type_name])


def dequantize(raw, type_name: str, shape) -> np.ndarray:
    """uint8 super-blocks (bytes or an array) of a tensor of this row-major shape -> float32 values."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    if type_name not in BLOCK_BYTES:
        raise ValueError(f"{type_name!r} is not a k-quant; types: {', '.join(BLOCK_BYTES)}")
    shape = tuple(int(s) for s in shape)
    data = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    want = int(np.prod(shape)) // SUPER_BLOCK * BLOCK_BYTES[type_name]
    if not shape or shape[-1] % SUPER_BLOCK or data.size != want:
        raise ValueError(f"{type_name} {shape} needs rows of whole super-blocks ({want} bytes), got {data.size}")
    rows = data.reshape(-1, shape[-1] // SUPER_BLOCK * BLOCK_BYTES[type_name])
    return gguf_dequantize(rows, getattr(GGMLQuantizationType, type_name)).reshape(shape).astype(np.float32)
