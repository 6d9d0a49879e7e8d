"""How weights sit on the GPU: the storage dtype of the matrices, and the byte conversions done on
upload. Standard library only (the buffer plan and the tools use it in CPython).

Matrices stay in the dtype they are stored in (f32, f16 or bf16; the kernels widen to f32 in
registers), unless a file mixes dtypes: then every matrix is widened to f32 once, at load. Small
vectors (biases, norms) are always widened to f32 at load, exactly.

The block formats (BLOCK_FORMATS, from app/gguf.py TYPE_BLOCKS, the one list of the types this
engine reads: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the k-quants Q4_K, Q5_K, Q6_K, ggml's, as GGUF stores
them) go to the GPU as their bytes: a row of `cols` weights is cols / 32 blocks (34, 18,
20, 22 or 24 bytes each), or cols / 256 super-blocks (144, 176 or 210 bytes), rows back to back (a
row of another width is refused with the format's block size). The kernels dequantize them in registers
(shaders/weights_q*.wgsl; a k-quant's super-block is 8 blocks of 32 to them); shaders/quantize.wgsl
makes Q8_0 and Q4_0 from an f32 / f16 / bf16 matrix on the GPU (quantize-on-load), and
shaders/transpose.wgsl writes a matrix stored [in, out] (GPT-2's Conv1D) as [out, in] (transpose-on-load).
`matrix_bytes` is the size of a matrix in any format as a file stores it; `gpu_matrix_bytes` its size on the GPU.

One format is regrouped on the way to the GPU: Q4_0 (GROUPED_FORMATS). Its 18-byte blocks are
2-byte aligned, so a GPU lane spent its time realigning words rather than waiting for memory (Q4_0
decoded no faster than F16 on an H200, BENCH.md). On the GPU each run of 8 blocks of a buffer is a
144-byte group: the 8 f16 scales (16 bytes), then the 8 blocks' 16 bytes of nibbles, every part
16-byte aligned. The same bytes, moved; a buffer whose block count is not a multiple of 8 ends in a
partial group padded to 16-byte units. shaders/quantize.wgsl writes this layout (from floats, or
from a file's Q4_0 blocks); `to_gpu_layout` / `from_gpu_layout` are the same permutation in Python,
for the tests and tools.
"""

from __future__ import annotations

import struct

from .errors import ModelError
from .gguf import TYPE_BLOCKS
from .safetensors import DTYPE_SIZES, bf16_to_f32_bytes

MATRIX_DTYPES = ("F32", "F16", "BF16")
# name -> (weights per block along a row, bytes per block): the formats stored as blocks.
BLOCK_FORMATS = {name: blocks for name, blocks in TYPE_BLOCKS.items() if blocks[0] > 1}
# Every format a matrix can have on the GPU; each has a weight-format snippet (app/wgsl.py
# WEIGHT_SNIPPETS) that the kernels reading weight tables (linear, embedding, lm_head) are built with.
WEIGHT_FORMATS = MATRIX_DTYPES + tuple(BLOCK_FORMATS)
QUANTIZE_FORMATS = ("Q8_0", "Q4_0")  # what shaders/quantize.wgsl makes (its entry points quantize_q8_0 / _q4_0)
QUANTIZE_SOURCES = {"F32": 0, "F16": 1, "BF16": 2}  # quantize.wgsl's constant SRC for each source dtype
REGROUP_SOURCE = 3  # quantize.wgsl's SRC for a file's Q4_0 blocks, regrouped as they are (GROUPED_FORMATS)
QUANTIZE_GROUP_SIZE = 64     # invocations per workgroup of quantize.wgsl, one per pair of blocks
TRANSPOSE_SOURCES = {"F32": 0, "F16": 1, "BF16": 2}  # transpose.wgsl's constant SRC for each source dtype
TRANSPOSE_GROUP_SIZE = 64    # invocations per workgroup of transpose.wgsl, one per destination word
# A source quantize.wgsl reads (floats to quantize, a file's Q4_0 to regroup) reaches the GPU in chunks
# of whole blocks of at most about this many bytes, through one staging buffer of that size; each chunk
# is a dispatch of the same pipeline, its range read from a small buffer. transpose.wgsl's sources go
# the same way, in chunks of an even count of whole rows.
STAGING_BYTES = 32 << 20
MAX_WORKGROUPS_PER_DIM = 65535  # WebGPU's default maxComputeWorkgroupsPerDimension


def load_unit(gpu_dtype: str, src_dtype: str, transposed: bool, rows: int) -> int | None:
    """Bytes of the unit in which a source goes through the load's staging buffer to a weight kept as
    `gpu_dtype` (app/runner.py): a source row of a transposed matrix of `rows` rows, a block of 32
    values to quantize, or a Q4_0 block to regroup; None for a source written as it is (or widened in
    Python), which needs no staging."""
    if transposed:
        return row_bytes(rows, src_dtype)
    if gpu_dtype in GROUPED_FORMATS and src_dtype == gpu_dtype:
        return BLOCK_FORMATS[gpu_dtype][1]
    if gpu_dtype in QUANTIZE_FORMATS and src_dtype in QUANTIZE_SOURCES:
        return 32 * dtype_bytes(src_dtype)
    return None


def staging_chunk(unit: int, units: int) -> tuple[int, int]:
    """(units per chunk, bytes staged at once) for a source of `units` load units of `unit` bytes: an
    even count of whole units (16-bit values then pack whole words and every chunk starts on one) of
    at most about STAGING_BYTES, plus 3 bytes to pad a last word."""
    per = max(2, STAGING_BYTES // unit // 2 * 2)
    return per, min(per, units) * unit + 3


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
    """Bytes per element of a float dtype (a block format has none: see row_bytes)."""
    if dtype in BLOCK_FORMATS:
        raise ModelError(f"{dtype} is stored in blocks of {BLOCK_FORMATS[dtype][0]} weights: its size is per row "
                         f"(app/weights.py row_bytes / matrix_bytes), not per element")
    return DTYPE_SIZES[dtype]


def row_bytes(cols: int, dtype: str) -> int:
    """Bytes of one row of `cols` weights stored as `dtype` (rows of a block format are whole blocks)."""
    if dtype in BLOCK_FORMATS:
        per_block, block_bytes = BLOCK_FORMATS[dtype]
        if cols % per_block:
            raise ModelError(f"a {dtype} matrix needs rows of whole blocks of {per_block} weights, but its rows have "
                             f"{cols}")
        return cols // per_block * block_bytes
    return cols * dtype_bytes(dtype)


def matrix_bytes(rows: int, cols: int, dtype: str) -> int:
    """Bytes of a [rows, cols] matrix stored as `dtype` (a WEIGHT_FORMATS name) on the GPU,
    before rounding the buffer up (contract.buffer_size). Rows of a block format are whole blocks, so a
    slice of whole rows is row_bytes(cols, dtype) per row. The GPU reads the 4-byte words holding a
    block, so a block format's buffer must be at least matrix_bytes rounded up to 4 (buffer_size does)."""
    return rows * row_bytes(cols, dtype)


GROUPED_FORMATS = {"Q4_0": 8}  # format -> blocks per group on the GPU (see above)
GROUP_SCALE_BYTES = 16          # a group's leading scales, 8 f16


def gpu_matrix_bytes(rows: int, cols: int, dtype: str) -> int:
    """Bytes of a [rows, cols] matrix of `dtype` on the GPU: matrix_bytes, or for a grouped format its
    whole groups (a partial last group padded to a 16-byte unit)."""
    n = matrix_bytes(rows, cols, dtype)
    if dtype not in GROUPED_FORMATS:
        return n
    return _grouped_bytes(n // BLOCK_FORMATS[dtype][1], dtype)


def _grouped_bytes(blocks: int, dtype: str) -> int:
    per = GROUPED_FORMATS[dtype]
    block_bytes = BLOCK_FORMATS[dtype][1]
    full, last = divmod(blocks, per)
    return full * per * block_bytes + (GROUP_SCALE_BYTES + last * (block_bytes - 2) if last else 0)


def _group_slots(g: int, dtype: str) -> tuple:
    """(the byte of block g's scale, the byte of its nibbles) in a grouped format's GPU layout."""
    per, block_bytes = GROUPED_FORMATS[dtype], BLOCK_FORMATS[dtype][1]
    base, j = g // per * per * block_bytes, g % per
    return base + 2 * j, base + GROUP_SCALE_BYTES + (block_bytes - 2) * j


def to_gpu_layout(raw, dtype: str) -> bytes:
    """A table's bytes as a file stores them -> as the GPU keeps them (a grouped format regrouped;
    any other unchanged). The block count is len(raw) // block bytes; trailing bytes are ignored."""
    raw = bytes(as_memoryview(raw))
    if dtype not in GROUPED_FORMATS:
        return raw
    per, block_bytes = GROUPED_FORMATS[dtype], BLOCK_FORMATS[dtype][1]
    blocks = len(raw) // block_bytes
    out = bytearray(_grouped_bytes(blocks, dtype))
    group = per * block_bytes
    full = blocks // per * group  # bytes of the whole groups, as strided copies (C speed)
    for j in range(per):
        scale, nibbles = _group_slots(j, dtype)
        for b in range(block_bytes):
            at = scale + b if b < 2 else nibbles + b - 2
            out[at:full:group] = raw[block_bytes * j + b:full:group]
    for g in range(blocks // per * per, blocks):  # the partial last group
        scale, nibbles = _group_slots(g, dtype)
        out[scale:scale + 2] = raw[block_bytes * g:block_bytes * g + 2]
        out[nibbles:nibbles + block_bytes - 2] = raw[block_bytes * g + 2:block_bytes * (g + 1)]
    return bytes(out)


def from_gpu_layout(raw, dtype: str, blocks: int) -> bytes:
    """The inverse of to_gpu_layout for a table of `blocks` blocks: the file's bytes."""
    raw = bytes(as_memoryview(raw))
    if dtype not in GROUPED_FORMATS:
        return raw
    block_bytes = BLOCK_FORMATS[dtype][1]
    out = bytearray(blocks * block_bytes)
    for g in range(blocks):
        scale, nibbles = _group_slots(g, dtype)
        out[block_bytes * g:block_bytes * g + 2] = raw[scale:scale + 2]
        out[block_bytes * g + 2:block_bytes * (g + 1)] = raw[nibbles:nibbles + block_bytes - 2]
    return bytes(out)


def quantize_workgroups(blocks: int, block0: int = 0) -> tuple:
    """Workgroup counts (x, y, 1) of a quantize.wgsl dispatch writing `blocks` blocks from block `block0`
    of the destination (invocation t quantizes the pair of blocks 2 (block0 // 2 + t) and the next)."""
    pairs = (block0 + blocks + 1) // 2 - block0 // 2
    return _grid(max(1, -(-pairs // QUANTIZE_GROUP_SIZE)))


def transpose_workgroups(rows: int, k0: int, k1: int, dtype: str) -> tuple:
    """Workgroup counts (x, y, 1) of a transpose.wgsl dispatch writing columns k0 .. k1 - 1 of each of the
    `rows` rows of a matrix kept as `dtype` (F32: a word per column; F16 / BF16: the words they span)."""
    per_row = k1 - k0 if dtype == "F32" else (k1 - k0) // 2 + 1
    return _grid(max(1, -(-(rows * per_row) // TRANSPOSE_GROUP_SIZE)))


def _grid(groups: int) -> tuple:
    """`groups` workgroups as (x, y, 1) within the per-dimension limit (x * y may exceed it by under a row)."""
    x = min(groups, MAX_WORKGROUPS_PER_DIM)
    return (x, -(-groups // x), 1)


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
