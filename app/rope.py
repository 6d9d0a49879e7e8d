"""Rotary position embeddings: the inverse frequencies of the Llama family, as transformers makes them.

Standard library only (runs in Pyodide and CPython).

transformers (5.24, modeling_rope_utils.py and LlamaRotaryEmbedding) computes the inverse frequencies
once, on the CPU, in float32 torch tensors:

    default:  inv_freq = 1 / theta ** (arange(0, head_dim, 2) / head_dim)
    linear:   the same, then inv_freq / factor (it divides the frequencies instead of the positions,
              which is the same angle up to rounding: this module divides the frequencies, like it)
    llama3:   the default frequencies, then low frequencies (wavelength > original / low_freq_factor)
              divided by factor, high ones (wavelength < original / high_freq_factor) kept, and those
              between blended with a smooth factor

and a forward pass turns them into angles `float32(position) * inv_freq` (one float32 product) whose
cos and sin, times the attention scaling (1.0 for these three types), rotate q and k.

Here the same formulas run in Python floats (f64), rounded to float32 after each operation where the
torch code rounds (an f64 result of +, -, *, / on float32 inputs rounds to the float32 result exactly).
So the values returned are transformers' float32 values, held in Python floats: each fits a float32
exactly, and handing them to the GPU as float32 loses nothing. One step cannot be replayed bit for
bit: torch's float32 `pow` is not correctly rounded (about 1 value in 150 is one float32 ulp away
from the rounded exact power, depending on the CPU's vector unit), so a value may differ from
transformers' by 1-2 float32 ulps. Computing the plain f64 formula without the float32 roundings
would be further away (up to 7 ulps), because transformers rounds the exponent 2i/head_dim to
float32 before the power.
"""

from __future__ import annotations

import math
import struct

# rope types this engine computes; everything else is refused by app/config.py before this runs
ROPE_TYPES = ("default", "linear", "llama3")

_F32 = struct.Struct("<f")


def f32(value: float) -> float:
    """value rounded to the nearest float32 (ties to even), as a Python float."""
    return _F32.unpack(_F32.pack(value))[0]


def default_inverse_frequencies(head_dim: int, rope_theta: float) -> list:
    """1 / theta ** (2i / head_dim) for i < head_dim / 2, in float32 steps as torch does them."""
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even number, got {head_dim}")
    base = f32(rope_theta)
    dim = f32(head_dim)
    return [f32(1.0 / f32(base ** f32(f32(2 * i) / dim))) for i in range(head_dim // 2)]


def linear_scaled(inv_freq: list, factor: float) -> list:
    """transformers' linear scaling of default frequencies: each divided by factor."""
    factor = f32(factor)
    return [f32(inv / factor) for inv in inv_freq]


def llama3_scaled(inv_freq: list, factor: float, low_freq_factor: float, high_freq_factor: float,
                  original_max_position_embeddings: int) -> list:
    """transformers' _compute_llama3_parameters applied to default frequencies, operation by operation.

    `scalar / tensor` is `tensor.reciprocal() * scalar` in torch, and a Python scalar meets a float32
    tensor as a float32, so both are written out that way.
    """
    old_context_len = original_max_position_embeddings
    low_freq_wavelen = f32(old_context_len / low_freq_factor)
    high_freq_wavelen = f32(old_context_len / high_freq_factor)
    two_pi, old_len = f32(2 * math.pi), f32(old_context_len)
    factor, low, span = f32(factor), f32(low_freq_factor), f32(high_freq_factor - low_freq_factor)
    result = []
    for inv in inv_freq:
        wavelen = f32(f32(1.0 / inv) * two_pi)
        if wavelen > low_freq_wavelen:  # low frequencies: divided by factor
            result.append(f32(inv / factor))
        elif wavelen < high_freq_wavelen:  # high frequencies: unchanged
            result.append(inv)
        else:  # between: blended
            smooth = f32(f32(f32(f32(1.0 / wavelen) * old_len) - low) / span)
            scaled = f32(f32(f32(1.0 - smooth) * inv) / factor)
            result.append(f32(scaled + f32(smooth * inv)))
    return result


def rope_frequencies(cfg) -> tuple:
    """(inverse frequencies, attention scaling) for a LlamaConfig (or anything with head_dim,
    rope_theta and rope_scaling: None or an object with rope_type, factor, low_freq_factor,
    high_freq_factor, original_max_position_embeddings).

    The list has head_dim / 2 floats, each exactly a float32; entry i rotates the pair of
    dimensions (i, i + head_dim / 2) of every q and k head (the half-split layout of rotate_half).
    The attention scaling multiplies cos and sin; it is 1.0 for every type supported here.
    """
    scaling = cfg.rope_scaling
    rope_type = "default" if scaling is None else scaling.rope_type
    inv_freq = default_inverse_frequencies(cfg.head_dim, cfg.rope_theta)
    if rope_type == "linear":
        inv_freq = linear_scaled(inv_freq, scaling.factor)
    elif rope_type == "llama3":
        inv_freq = llama3_scaled(inv_freq, scaling.factor, scaling.low_freq_factor, scaling.high_freq_factor,
                                 scaling.original_max_position_embeddings)
    elif rope_type != "default":
        raise ValueError(f"rope type {rope_type!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    return inv_freq, 1.0
