"""How weights sit on the GPU: the storage dtype of the matrices, and the byte conversions done on
upload. Standard library only (the buffer plan and the tools use it in CPython).

Matrices stay in the dtype they are stored in (f32, f16 or bf16; the kernels widen to f32 in
registers), unless a file mixes dtypes: then every matrix is widened to f32 once, at load. Small
vectors (biases, norms) are always widened to f32 at load, exactly.
"""

from __future__ import annotations

import struct

from .errors import ModelError
from .safetensors import DTYPE_SIZES, bf16_to_f32_bytes

MATRIX_DTYPES = ("F32", "F16", "BF16")


def matrix_dtype(dtypes) -> tuple[str, str | None]:
    """(the dtype every matrix is stored in on the GPU, a notice or None) for the stored dtypes of
    a model's 2-D tensors."""
    dtypes = set(dtypes)
    unsupported = sorted(dtypes - set(MATRIX_DTYPES))
    if unsupported:
        raise ModelError(f"matrices stored as {', '.join(unsupported)}; supported: {', '.join(MATRIX_DTYPES)}")
    if len(dtypes) == 1:
        return dtypes.pop(), None
    return "F32", f"matrices stored in mixed dtypes {sorted(dtypes)}: converted to F32 on load"


def dtype_bytes(dtype: str) -> int:
    return DTYPE_SIZES[dtype]


def as_memoryview(data) -> memoryview:
    """Tensor bytes as a memoryview of unsigned bytes (bytes, bytearray or memoryview in)."""
    return memoryview(data).cast("B")


def widen_to_f32(raw, dtype: str) -> bytes:
    """Little-endian f32 bytes for a tensor stored as `dtype` (exact: f16 and bf16 fit in f32)."""
    raw = as_memoryview(raw)
    if dtype == "F32":
        return bytes(raw)
    if dtype == "F16":
        n = len(raw) // 2
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", raw))
    if dtype == "BF16":
        return bf16_to_f32_bytes(raw)
    raise ModelError(f"unsupported dtype {dtype}")
