"""Safetensors header parsing and validation, standard library only.

A safetensors file is:

    [8 bytes]  N, the header length, unsigned little-endian 64-bit
    [N bytes]  a UTF-8 JSON object:
                 {"__metadata__": {...},            (optional, str -> str)
                  "<tensor name>": {"dtype": "F32",
                                    "shape": [768, 2304],
                                    "data_offsets": [begin, end]},
                  ...}
    [rest]     the data section; each tensor's bytes are data[begin:end],
               row-major, little-endian

This module reads only the header, so the page can check a model (names, dtypes,
shapes, offsets against the file size) before it downloads or allocates anything.
It runs in Pyodide as well as CPython: no numpy, no browser imports.

Every problem is a ModelFormatError whose message names the file and the key or
limit at fault, ready to be shown to the user as is.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from array import array
from dataclasses import dataclass, field

from .errors import ModelFormatError

# Bytes per element for the dtypes the safetensors format defines with whole-byte
# elements. (The sub-byte float formats F4/F6 are left out: no GPT-2 uses them, and
# they would make "unknown dtype" messages less clear, not more.)
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}

# Same limit as the reference implementation (huggingface/safetensors): a header is
# a few hundred KB even for big models; anything above this is a corrupt length.
MAX_HEADER_LEN = 100_000_000

LFS_POINTER_PREFIX = b"version https://git-lfs"

METADATA_KEY = "__metadata__"

# Shapes and offsets are 64-bit unsigned numbers in the format (the reference implementation
# refuses larger ones); JSON itself allows integers of any length.
MAX_U64 = 2**64


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # 'F32', 'F16', 'BF16', ... (a key of DTYPE_SIZES)
    shape: tuple  # tuple of ints; () for a scalar
    begin: int  # byte offset of the first byte, relative to the data section
    end: int  # one past the last byte, relative to the data section
    data_offset: int  # absolute offset in the file: 8 + header_len + begin
    filename: str = ""  # the file holding the tensor (matters for sharded models)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return _prod(self.shape)


@dataclass
class SafetensorsHeader:
    filename: str
    header_len: int  # N, the JSON header's length in bytes
    data_size: int  # bytes in the data section (file size - 8 - N when the size is known)
    tensors: dict = field(default_factory=dict)  # name -> TensorInfo, in file order
    metadata: dict = field(default_factory=dict)  # the "__metadata__" object, or {}
    file_size: int | None = None

    @property
    def data_start(self) -> int:
        """Absolute file offset of the data section."""
        return 8 + self.header_len


def _prod(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def _is_int(value) -> bool:
    # JSON true/false come back as bool, which is a subclass of int in Python.
    return isinstance(value, int) and not isinstance(value, bool)


def is_lfs_pointer(head: bytes) -> bool:
    """True if these first bytes (at least 8) of a file are a Git LFS pointer, not content."""
    head = bytes(head[: len(LFS_POINTER_PREFIX)])
    return len(head) >= 8 and LFS_POINTER_PREFIX.startswith(head)


def lfs_pointer_error(head: bytes, filename) -> ModelFormatError:
    """The message for a Git LFS pointer file where weights were expected.

    This is the most reported loading error of in-browser GPT-2 projects: a repository
    cloned without git-lfs has 130-byte text stubs instead of the weights.
    """
    size_note = ""
    try:
        text = bytes(head[:1024]).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("size "):
                size_note = f" (the real file is {int(line[5:].strip()):,} bytes)"
    except ValueError:
        pass
    return ModelFormatError(
        f"{filename}: this is a Git LFS pointer file, a small text stub, not the model "
        f"weights{size_note}. Get the real file: run `git lfs install && git lfs pull` in the "
        f"cloned repository, or download it directly "
        f"(https://huggingface.co/<model id>/resolve/main/{_basename(filename)})."
    )


def brief(value, limit: int = 100) -> str:
    """repr(value) for a one-line message, cut to `limit` characters: tensor names and keys come
    from the file and may be of any length."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _basename(filename) -> str:
    return str(filename).replace("\\", "/").rsplit("/", 1)[-1]


def parse_header_length(first8: bytes, file_size: int | None, filename) -> int:
    """Read N, the header length, from the first 8 bytes of a safetensors file.

    `first8` may be longer than 8 bytes (only the first 8 are the length; more bytes
    give a better message for an LFS pointer). `file_size` is the whole file's size,
    or None when it is not known yet (then only the absolute limit is checked).
    """
    first8 = bytes(first8)
    if is_lfs_pointer(first8):
        raise lfs_pointer_error(first8, filename)
    if len(first8) < 8:
        raise ModelFormatError(
            f"{filename}: file is truncated: it has {len(first8)} bytes, but a safetensors "
            f"file starts with an 8-byte header length"
        )
    (header_len,) = struct.unpack("<Q", first8[:8])
    if header_len < 2:  # the smallest header is "{}"
        raise ModelFormatError(
            f"{filename}: header length is {header_len} bytes; not a safetensors file"
        )
    if header_len > MAX_HEADER_LEN:
        raise ModelFormatError(
            f"{filename}: header length {header_len:,} bytes is over the limit of "
            f"{MAX_HEADER_LEN:,} bytes; not a safetensors file (or a corrupt one)"
        )
    if file_size is not None and 8 + header_len > file_size:
        raise ModelFormatError(
            f"{filename}: header length {header_len:,} bytes is larger than the file "
            f"({file_size:,} bytes): the file is truncated or not a safetensors file"
        )
    return header_len


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ModelFormatError(f"duplicate key {brief(key)}")
        result[key] = value
    return result


def _reject_constant(name):
    raise ModelFormatError(f"{name} is not valid JSON")


def parse_header(header_bytes: bytes, file_size: int | None, filename) -> SafetensorsHeader:
    """Parse and validate the JSON header (the N bytes after the length).

    With `file_size` known, the tensors must cover the data section exactly: no byte
    outside the file, no overlap, no gap, nothing left over (the safetensors format
    requires this, and it catches truncated and padded files). Without it, the data
    section is assumed to end where the last tensor ends.
    """
    header_bytes = bytes(header_bytes)
    header_len = len(header_bytes)
    if header_len > MAX_HEADER_LEN:
        raise ModelFormatError(
            f"{filename}: header length {header_len:,} bytes is over the limit of "
            f"{MAX_HEADER_LEN:,} bytes"
        )
    if is_lfs_pointer(header_bytes):  # a caller that skipped parse_header_length
        raise lfs_pointer_error(header_bytes, filename)
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(
            f"{filename}: header is not UTF-8 (bad byte at offset {8 + e.start}); "
            f"truncated or not a safetensors file"
        ) from None
    try:
        header = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except ModelFormatError as e:
        raise ModelFormatError(f"{filename}: header JSON has a {e}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelFormatError(
            f"{filename}: header is not valid JSON ({detail}); truncated or not a "
            f"safetensors file"
        ) from None
    if not isinstance(header, dict):
        raise ModelFormatError(
            f"{filename}: header must be a JSON object, got {type(header).__name__}"
        )

    data_start = 8 + header_len
    data_size = None if file_size is None else file_size - data_start
    if data_size is not None and data_size < 0:
        raise ModelFormatError(
            f"{filename}: header length {header_len:,} bytes is larger than the file "
            f"({file_size:,} bytes)"
        )

    metadata = header.pop(METADATA_KEY, {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ModelFormatError(
            f"{filename}: {METADATA_KEY!r} must be a JSON object, got {type(metadata).__name__}"
        )

    tensors = {}
    for name, entry in header.items():
        tensors[name] = _parse_tensor_entry(name, entry, data_start, filename)

    _check_offsets(tensors, data_size, filename)
    if data_size is None:
        data_size = max((t.end for t in tensors.values()), default=0)
    return SafetensorsHeader(
        filename=str(filename),
        header_len=header_len,
        data_size=data_size,
        tensors=tensors,
        metadata=metadata,
        file_size=file_size,
    )


def _parse_tensor_entry(name, entry, data_start, filename) -> TensorInfo:
    where = f"{filename}: tensor {brief(name)}"
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{where}: entry must be a JSON object, got {type(entry).__name__}")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in entry:
            raise ModelFormatError(f"{where}: missing {key!r}")

    dtype = entry["dtype"]
    if not isinstance(dtype, str):
        raise ModelFormatError(f"{where}: 'dtype' must be a string, got {dtype!r:.80}")
    if dtype not in DTYPE_SIZES:
        raise ModelFormatError(
            f"{where}: unknown dtype {dtype!r:.40} (known: {', '.join(DTYPE_SIZES)})"
        )

    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d < MAX_U64 for d in shape):
        raise ModelFormatError(
            f"{where}: 'shape' must be a list of non-negative integers below 2**64, got {shape!r:.80}"
        )

    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and 0 <= o < MAX_U64 for o in offsets)
    ):
        raise ModelFormatError(
            f"{where}: 'data_offsets' must be [begin, end], two non-negative integers below "
            f"2**64, got {offsets!r:.80}"
        )
    begin, end = offsets
    if end < begin:
        raise ModelFormatError(f"{where}: 'data_offsets' [{begin}, {end}] end before begin")

    expected_nbytes = DTYPE_SIZES[dtype]
    for d in shape:  # stop early: a long list of big dimensions is a number of any size
        expected_nbytes *= d
        if expected_nbytes >= MAX_U64:
            raise ModelFormatError(
                f"{where}: shape {shape!r:.80} of {dtype} needs 2**64 bytes or more"
            )
    if end - begin != expected_nbytes:
        raise ModelFormatError(
            f"{where}: 'data_offsets' [{begin}, {end}] span {end - begin:,} bytes, but "
            f"shape {shape!r:.80} of {dtype} needs {expected_nbytes:,} bytes"
        )
    return TensorInfo(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        begin=begin,
        end=end,
        data_offset=data_start + begin,
        filename=str(filename),
    )


def _check_offsets(tensors: dict, data_size: int | None, filename) -> None:
    """Tensors must lie inside the data section and tile it: no overlap, no gap."""
    if data_size is not None:
        for t in tensors.values():
            if t.end > data_size:
                raise ModelFormatError(
                    f"{filename}: tensor {brief(t.name)}: 'data_offsets' [{t.begin}, {t.end}] are "
                    f"out of bounds: the data section has {data_size:,} bytes (file truncated?)"
                )
    position = 0  # where the next tensor must begin
    previous = None
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin < position:
            raise ModelFormatError(
                f"{filename}: tensors {brief(previous.name)} [{previous.begin}, {previous.end}] and "
                f"{brief(t.name)} [{t.begin}, {t.end}] overlap"
            )
        if t.begin > position:
            after = f"after tensor {brief(previous.name)}" if previous else "at the start of the data"
            raise ModelFormatError(
                f"{filename}: data bytes [{position}, {t.begin}) {after} belong to no tensor "
                f"(a gap before {brief(t.name)}): the tensors must cover the data section"
            )
        position = t.end
        previous = t
    if data_size is not None and position != data_size:
        raise ModelFormatError(
            f"{filename}: the last {data_size - position:,} bytes of the data section "
            f"(from offset {position:,}) belong to no tensor: the tensors must cover the "
            f"data section"
        )


def read_header(path) -> SafetensorsHeader:
    """Read and validate the header of a safetensors file on a local file system."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        first = f.read(256)  # more than 8 bytes: a whole LFS pointer, for a better message
        header_len = parse_header_length(first, file_size, path)
        f.seek(8)
        header_bytes = f.read(header_len)
    return parse_header(header_bytes, file_size, path)


# --- dtype conversion helpers (pure Python, C-speed where it matters) -----------------------

_LITTLE_ENDIAN = sys.byteorder == "little"


def bf16_to_f32_bytes(data) -> bytes:
    """BF16 bytes -> F32 bytes, exactly (bf16 is the top half of an f32).

    Each little-endian bf16 [lo, hi] becomes the f32 [0, 0, lo, hi]: two strided slice
    copies, no per-element Python loop.
    """
    data = memoryview(data).cast("B")
    if len(data) % 2:
        raise ValueError(f"BF16 data has an odd number of bytes ({len(data)})")
    out = bytearray(2 * len(data))
    out[2::4] = data[0::2]
    out[3::4] = data[1::2]
    return bytes(out)


_F16_MAX = 65504.0
_bf16_to_f16_table = None


def _build_bf16_to_f16_table() -> array:
    """f16 bit pattern for every one of the 65,536 bf16 bit patterns.

    Conversion is round-to-nearest-even (struct's 'e' format). Magnitudes beyond the
    f16 range saturate to +-65504 rather than becoming inf (weights that large would be
    broken either way, and inf poisons every sum); NaN stays NaN; bf16 values below the
    f16 range become f16 subnormals or zero.
    """
    as_f32 = struct.unpack(f"<{65536}f", bf16_to_f32_bytes(array("H", range(65536)).tobytes()))
    f16_bits = array("H")
    for value in as_f32:
        sign = 0x8000 if math.copysign(1.0, value) < 0 else 0
        if value != value:
            bits = sign | 0x7E00  # a quiet NaN
        elif abs(value) > _F16_MAX:
            bits = sign | 0x7BFF  # saturate at the largest finite f16, 65504
        else:
            bits = struct.unpack("<H", struct.pack("<e", value))[0]
        f16_bits.append(bits)
    return f16_bits


# Fast path tables for bf16 -> f16 on whole byte strings. A bf16 is [lo, hi] with
# hi = s eeeeeee and lo = e mmmmmmm (8 exponent bits, 7 mantissa bits). When the value is
# a normal f16 (exponent 114..141 here, hi's 7 exponent bits 57..70) the f16 is
#   hi' = s | (exponent - 112) << 2 | top 2 mantissa bits,   lo' = low 5 mantissa bits << 3
# and hi' splits into two parts with disjoint bits, one from hi and one from lo:
#   hi' = _HI_PART[hi] | _LO_TO_HI_PART[lo]
# so the whole conversion is bytes.translate and one big-integer OR, all at C speed.
# Values outside that range (zero, tiny, huge, inf, NaN) go through the lookup table.
_FAST_HI7 = range(57, 71)
_HI_PART = bytes(
    ((h & 0x80) | (((h & 0x7F) * 2 - 112) << 2)) if (h & 0x7F) in _FAST_HI7 else 0
    for h in range(256)
)
_LO_TO_HI_PART = bytes(lo >> 5 for lo in range(256))
_LO_PART = bytes(((lo & 0x1F) << 3) for lo in range(256))
_IS_SLOW_HI = bytes(0 if (h & 0x7F) in _FAST_HI7 else 1 for h in range(256))


def bf16_to_f16_bytes(data) -> bytes:
    """BF16 bytes -> F16 bytes, round to nearest even; out-of-range magnitudes saturate
    at +-65504 (see _build_bf16_to_f16_table). Exact for every bf16 in f16's normal range.
    """
    global _bf16_to_f16_table
    if _bf16_to_f16_table is None:
        _bf16_to_f16_table = _build_bf16_to_f16_table()
    table = _bf16_to_f16_table
    data = bytes(memoryview(data).cast("B"))
    if len(data) % 2:
        raise ValueError(f"BF16 data has an odd number of bytes ({len(data)})")
    n = len(data) // 2
    lo, hi = data[0::2], data[1::2]
    slow = hi.translate(_IS_SLOW_HI)
    slow_count = slow.count(1)

    if slow_count > n // 4:
        # Mostly zeros or tiny values: the per-element table lookup is faster.
        src = array("H")
        src.frombytes(data)
        if not _LITTLE_ENDIAN:
            src.byteswap()
        out = array("H", map(table.__getitem__, src))
        if not _LITTLE_ENDIAN:
            out.byteswap()
        return out.tobytes()

    out_hi = (
        int.from_bytes(hi.translate(_HI_PART), "little")
        | int.from_bytes(lo.translate(_LO_TO_HI_PART), "little")
    ).to_bytes(n, "little")
    out = bytearray(2 * n)
    out[0::2] = lo.translate(_LO_PART)
    out[1::2] = out_hi
    i = slow.find(1)
    while i != -1:
        bits = table[lo[i] | (hi[i] << 8)]
        out[2 * i] = bits & 0xFF
        out[2 * i + 1] = bits >> 8
        i = slow.find(1, i + 1)
    return bytes(out)


def f16_bytes_to_floats(data) -> list:
    """F16 bytes (little-endian) -> list of Python floats."""
    data = memoryview(data).cast("B")
    if len(data) % 2:
        raise ValueError(f"F16 data has an odd number of bytes ({len(data)})")
    return list(struct.unpack(f"<{len(data) // 2}e", data))


def f32_bytes_to_floats(data) -> list:
    """F32 bytes (little-endian) -> list of Python floats."""
    data = memoryview(data).cast("B")
    if len(data) % 4:
        raise ValueError(f"F32 data has a byte count not a multiple of 4 ({len(data)})")
    return list(struct.unpack(f"<{len(data) // 4}f", data))
