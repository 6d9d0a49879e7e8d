"""app/weights.py's sizes of matrices in every weight format (the buffer plan and the loader use
them), the workgroup counts of quantize.wgsl, and the weight-format snippets' shared interface, in
CPython (the kernels themselves run in tests/test_kernels_quant.py and test_kernels_quantize.py)."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import gguf
import numpy as np
import pytest

from app import wgsl
from app.errors import ModelError
from app.gguf import tensor_nbytes
from app.weights import (
    BLOCK_FORMATS,
    MAX_WORKGROUPS_PER_DIM,
    QUANTIZE_FORMATS,
    QUANTIZE_GROUP_SIZE,
    WEIGHT_FORMATS,
    dtype_bytes,
    from_gpu_layout,
    gpu_matrix_bytes,
    matrix_bytes,
    quantize_workgroups,
    row_bytes,
    to_gpu_layout,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import kquants  # noqa: E402
from tools.quants import quantize  # noqa: E402

K_FORMATS = [fmt for fmt in BLOCK_FORMATS if fmt in kquants.BLOCK_BYTES]
BLOCK32_FORMATS = [fmt for fmt in BLOCK_FORMATS if fmt not in kquants.BLOCK_BYTES]

# What every weights_*.wgsl defines (weights_f32.wgsl describes it).
INTERFACE = ["alias WPack", "const WBlockPacks", "const WBlockWords", "const WPackWords", "const WSegPacks",
             "fn w_block_word", "fn w_block", "fn w_dot", "fn w_pack_word", "fn w_unpack", "fn w_seg_pack",
             "fn w_seg_dot"]


@pytest.mark.parametrize("rows, cols", [(1, 32), (3, 576), (960, 2560), (7, 96)])
@pytest.mark.parametrize("fmt", BLOCK32_FORMATS)
def test_block_matrix_bytes_are_the_gguf_bytes(fmt, rows, cols):
    """A [rows, cols] block-format matrix takes exactly the bytes of the GGUF tensor (the gguf
    package's quantizer output, and app/gguf.py's tensor size)."""
    values = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packed = gguf.quants.quantize(values, gguf.GGMLQuantizationType[fmt])
    assert matrix_bytes(rows, cols, fmt) == packed.nbytes == quantize(values, fmt).nbytes
    assert matrix_bytes(rows, cols, fmt) == tensor_nbytes(fmt, (cols, rows))
    assert row_bytes(cols, fmt) * rows == matrix_bytes(rows, cols, fmt)


@pytest.mark.parametrize("rows, cols", [(1, 256), (3, 768), (7, 2560)])
@pytest.mark.parametrize("fmt", K_FORMATS)
def test_k_quant_matrix_bytes_are_the_gguf_bytes(fmt, rows, cols):
    """A [rows, cols] k-quant (Q4_K / Q5_K / Q6_K) matrix takes exactly the bytes of the GGUF tensor
    (ggml's sizes as the gguf package lists them, tools/kquants.py's blocks, and app/gguf.py's tensor
    size)."""
    values = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    per_block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[fmt]]
    assert BLOCK_FORMATS[fmt] == (per_block, block_bytes) == (256, kquants.BLOCK_BYTES[fmt])
    assert matrix_bytes(rows, cols, fmt) == kquants.quantize(values, fmt).nbytes == tensor_nbytes(fmt, (cols, rows))
    assert row_bytes(cols, fmt) * rows == matrix_bytes(rows, cols, fmt)


@pytest.mark.parametrize("fmt, size", [("F32", 4), ("F16", 2), ("BF16", 2)])
def test_float_matrix_bytes_are_unchanged(fmt, size):
    assert matrix_bytes(5, 36, fmt) == 5 * 36 * size == 5 * 36 * dtype_bytes(fmt)
    assert row_bytes(36, fmt) == 36 * size


def test_block_formats_refuse_partial_blocks_and_per_element_sizes():
    with pytest.raises(ModelError, match="whole blocks of 32 weights, but its rows have 48"):
        matrix_bytes(2, 48, "Q4_0")
    with pytest.raises(ModelError, match="Q8_0 is stored in blocks of 32 weights"):
        dtype_bytes("Q8_0")
    partial = "Q4_K matrix needs rows of whole blocks of 256 weights, but its rows have 288$"
    with pytest.raises(ModelError, match=partial):
        matrix_bytes(2, 288, "Q4_K")


@pytest.mark.parametrize("blocks, block0", [(1, 0), (1, 1), (2, 1), (5, 3), (129, 0), (128, 7),
                                            (3 * 65535 * 128 + 5, 1), (200_000_000, 0)])
def test_quantize_workgroups_cover_every_pair_once(blocks, block0):
    """Workgroups (x, y) of 64 invocations, one per pair of destination blocks from block0 // 2: enough
    for every pair, within WebGPU's 65535 per dimension, and less than one row of x too many."""
    x, y, z = quantize_workgroups(blocks, block0)
    pairs = (block0 + blocks + 1) // 2 - block0 // 2
    assert z == 1 and 1 <= x <= MAX_WORKGROUPS_PER_DIM and y >= 1
    assert x * y * QUANTIZE_GROUP_SIZE >= pairs
    assert (x * (y - 1)) * QUANTIZE_GROUP_SIZE < pairs


@pytest.mark.parametrize("snippet", [wgsl.WEIGHT_SNIPPETS[fmt] for fmt in WEIGHT_FORMATS]
                         + list(wgsl.WIDE_SNIPPETS.values()))
def test_every_format_has_a_snippet_with_the_block_interface(snippet):
    """Each weight format names a snippet (and F16 / BF16 a wide one for a GPU's decode GEMV) that
    defines the whole interface, so every kernel that reads weight tables assembles with it."""
    code = re.sub(r"//[^\n]*", "", wgsl.shader_source(snippet))
    missing = [name for name in INTERFACE if not re.search(rf"\b{name}\b", code)]
    assert not missing, f"{snippet} lacks {missing}"


@pytest.mark.parametrize("fmt", list(BLOCK_FORMATS))
def test_block_formats_size_their_arrays_within_the_interface(fmt):
    """The fixed array sizes of the interface hold every block format (20 words, 8 packs, 6 words per
    pack, segments of at most 2 packs), and the formats' constants match their block bytes: a block of
    32 is read whole (its bytes, or 2 more when it starts mid-word; a grouped format's scale word and
    its 4 words of nibbles); a k-quant's interface block is a 32-weight sub-block of its super-block."""
    code = wgsl.shader_source(wgsl.WEIGHT_SNIPPETS[fmt])
    value = {name: int(v) for name, v in re.findall(r"const (W\w+): u32 = (\d+)u;", code)}
    per_block, block_bytes = BLOCK_FORMATS[fmt]
    assert value["WBlockPacks"] * 4 == 32 and per_block % 32 == 0
    if per_block == 32:
        assert -(-(block_bytes + 2) // 4) >= value["WBlockWords"] >= -(-block_bytes // 4)
    assert value["WBlockWords"] <= 20 and value["WPackWords"] <= 6 and value["WSegPacks"] in (1, 2)


def test_quantize_kernel_declares_its_constants():
    """The chunk's range is a buffer (chunk), not constants: one pipeline serves every chunk."""
    assert wgsl.kernel_file("quantize.wgsl").constants == {"SRC": "u32"}
    for fmt in QUANTIZE_FORMATS:
        assert set(wgsl.entry_bindings("quantize.wgsl", "quantize_" + fmt.lower())) == {"src", "dst", "chunk"}
    assert wgsl.kernel_file("transpose.wgsl").constants == {"K": "u32", "N": "u32", "SRC": "u32"}
    for entry in ("transpose_f32", "transpose_16"):
        assert set(wgsl.entry_bindings("transpose.wgsl", entry)) == {"src", "dst", "chunk"}


@pytest.mark.parametrize("blocks", [1, 2, 7, 8, 9, 15, 16, 61])
def test_q4_0_on_the_gpu_is_its_blocks_regrouped_by_eight(blocks):
    """On the GPU a Q4_0 table is groups of 8 blocks: the 8 f16 scales, then each block's 16 bytes of
    nibbles; a partial last group is padded to 16-byte units. The permutation loses nothing, and the
    buffer plan's size is the regrouped size."""
    raw = np.random.default_rng(blocks).integers(0, 256, 18 * blocks, dtype=np.uint8).tobytes()
    gpu = to_gpu_layout(raw, "Q4_0")
    assert len(gpu) == gpu_matrix_bytes(blocks, 32, "Q4_0") == gpu_matrix_bytes(1, 32 * blocks, "Q4_0")
    assert len(gpu) % 16 == 0 and len(gpu) - len(raw) < 16
    for g in range(blocks):
        group, j = 144 * (g // 8), g % 8
        assert gpu[group + 2 * j:group + 2 * j + 2] == raw[18 * g:18 * g + 2]
        assert gpu[group + 16 + 16 * j:group + 32 + 16 * j] == raw[18 * g + 2:18 * g + 18]
    assert from_gpu_layout(gpu, "Q4_0", blocks) == raw
    assert to_gpu_layout(raw, "Q8_0") == raw
    assert gpu_matrix_bytes(blocks, 32, "Q8_0") == matrix_bytes(blocks, 32, "Q8_0")
