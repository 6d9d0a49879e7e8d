"""GGUF header parsing and validation, standard library only (CPython and Pyodide).

A GGUF file (llama.cpp's format; versions 2 and 3 share this layout, all little-endian here) is:

    [4]   magic b"GGUF"
    [4]   version, u32 (2 or 3; version 1 used 32-bit counts and is refused)
    [8]   tensor_count, u64
    [8]   kv_count, u64
    kv_count times:   key (string), value type (u32), value
    tensor_count times: name (string), n_dims (u32), n_dims dims (u64 each, fastest-varying first),
                        ggml type (u32), offset (u64, relative to the data section)
    padding to general.alignment (default 32)
    the data section; each tensor's bytes start at data_start + offset

    string = length (u64) + that many UTF-8 bytes
    value  = u8 i8 u16 i16 u32 i32 f32 bool(1 byte) string, array = item type (u32) + count (u64) +
             items (arrays of arrays allowed), u64 i64 f64

The header comes first, so the page checks a model before it downloads or allocates anything.
A header is often megabytes long (SmolLM2's is 1.8 MB: the vocabulary and merges are metadata), so
parsing works on a prefix of the file:

    data = first chunk of the file (1 MiB, say)
    while True:
        try:
            header = parse_gguf_header(data, file_size, filename)
            break
        except GGUFNeedMoreBytes as more:      # not an error: the header goes on past `data`
            data += read(len(data), max(more.needed, 2 * len(data)) - len(data))

`more.needed` is a lower bound on the bytes (from the start of the file) the header needs. Every
length and count is checked against the file size (when known) and MAX_HEADER_BYTES before
anything is read or allocated, so a corrupt count fails at once instead of asking for more bytes.
Every other problem is a ModelFormatError whose one-line message names the file and the field.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from dataclasses import dataclass, field

from .errors import ModelFormatError
from .safetensors import brief, is_lfs_pointer, lfs_pointer_error

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_ALIGNMENT = 1 << 20
# Headers of real models are a few MB (a 256k vocabulary with merges is ~10 MB); anything past
# this is a corrupt length or count.
MAX_HEADER_BYTES = 256 << 20
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME is 64 with the terminating NUL
MAX_KEY_BYTES = 65535  # the GGUF spec's limit on a key
MAX_ARRAY_DEPTH = 8  # arrays of arrays: real files use one level, a hostile one could nest forever
MAX_ELEMENTS = 1 << 62  # ggml counts elements and bytes in int64

FIXED_HEADER_BYTES = 24  # magic + version + tensor_count + kv_count
MIN_KV_BYTES = 14  # key length + a 1-byte key + value type + a 1-byte value
MIN_TENSOR_INFO_BYTES = 25  # name length + a 1-byte name + n_dims + type + offset

# value type id -> (name, struct format, size); strings and arrays have a variable size, their
# size here is the least they occupy (a length, or an item type and a count).
VALUE_TYPES = {
    0: ("u8", "B", 1),
    1: ("i8", "b", 1),
    2: ("u16", "H", 2),
    3: ("i16", "h", 2),
    4: ("u32", "I", 4),
    5: ("i32", "i", 4),
    6: ("f32", "f", 4),
    7: ("bool", "B", 1),
    8: ("str", None, 8),
    9: ("array", None, 12),
    10: ("u64", "Q", 8),
    11: ("i64", "q", 8),
    12: ("f64", "d", 8),
}
STRING, ARRAY, BOOL = 8, 9, 7

# Every ggml type id llama.cpp has used, so that a message can name the type it refuses
# (ids 4, 5, 31-33 and 36-38 were removed from ggml, and files using them are rejected there too).
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_2", 5: "Q4_3", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
    9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
    24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 31: "Q4_0_4_4",
    32: "Q4_0_4_8", 33: "Q4_0_8_8", 34: "TQ1_0", 35: "TQ2_0", 36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8",
    38: "IQ4_NL_8_8", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}

# The tensor types this engine reads: name -> (elements per block, bytes per block).
# Q8_0: f16 scale + 32 int8. Q4_0: f16 scale + 16 bytes of nibbles. Q4_1: f16 scale, f16 min + 16 bytes.
# Q5_0 / Q5_1: Q4_0 / Q4_1 with 4 bytes of fifth bits before the nibbles.
# The k-quants are super-blocks of 256: Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128
# bytes of nibbles. Q5_K: Q4_K's header, 32 bytes of fifth bits, 128 bytes of nibbles. Q6_K: 128 bytes
# of low nibbles, 64 of high 2-bit pairs, 16 int8 scales, f16 d.
TYPE_BLOCKS = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q8_0": (32, 34),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
}
GGML_TYPE_IDS = {name: type_id for type_id, name in GGML_TYPE_NAMES.items() if name in TYPE_BLOCKS}

_OLD_GGML_MAGICS = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT", b"algg": "GGLA"}
_LITTLE_ENDIAN_HOST = sys.byteorder == "little"


class GGUFNeedMoreBytes(Exception):
    """The header goes on past the bytes given: read at least `needed` bytes from the file's start
    (more is better: every retry re-parses from the beginning) and call again. Not a format error."""

    def __init__(self, needed: int, have: int, filename):
        self.needed = needed
        self.have = have
        super().__init__(f"{filename}: the GGUF header goes on past the {have:,} bytes read; "
                         f"read at least {needed:,} bytes from the start of the file")


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    type_name: str  # a TYPE_BLOCKS key
    type_id: int
    dims: tuple  # ggml order: dims[0] is the fastest-varying (a row's length)
    offset: int  # relative to the data section
    data_offset: int  # absolute offset in the file
    nbytes: int

    @property
    def shape(self) -> tuple:
        """Row-major shape (numpy, torch and Hugging Face order): dims reversed. A Linear weight
        stored with dims (in, out) has shape (out, in), nn.Linear's own layout."""
        return tuple(reversed(self.dims))

    @property
    def numel(self) -> int:
        return _product(self.dims)

    @property
    def block_elements(self) -> int:
        return TYPE_BLOCKS[self.type_name][0]

    @property
    def block_bytes(self) -> int:
        return TYPE_BLOCKS[self.type_name][1]

    @property
    def rows(self) -> int:
        return self.numel // self.dims[0]

    @property
    def row_bytes(self) -> int:
        """Bytes per row (dims[0] elements): rows are whole blocks, so a row can be moved as is."""
        return self.dims[0] // self.block_elements * self.block_bytes

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


@dataclass
class GGUFHeader:
    filename: str
    version: int
    alignment: int
    header_len: int  # bytes from the start of the file to the end of the tensor infos
    data_start: int  # header_len rounded up to the alignment: where the data section starts
    file_size: int | None
    metadata: dict = field(default_factory=dict)  # key -> value (int, float, bool, str or list)
    metadata_types: dict = field(default_factory=dict)  # key -> 'u32', 'str', 'array[str]', ...
    tensors: dict = field(default_factory=dict)  # name -> GGUFTensorInfo, in file order

    @property
    def architecture(self):
        return self.metadata.get("general.architecture")

    @property
    def data_size(self) -> int:
        """The data section's size: to the end of the file when its size is known, else to the
        end of the last tensor."""
        if self.file_size is not None:
            return max(0, self.file_size - self.data_start)
        return max((t.end for t in self.tensors.values()), default=0)


def _product(values) -> int:
    result = 1
    for value in values:
        result *= value
    return result


def tensor_nbytes(type_name: str, dims) -> int:
    """Bytes of a tensor of this type and these dims (ggml order); dims[0] must be whole blocks."""
    block_elements, block_bytes = TYPE_BLOCKS[type_name]
    if dims[0] % block_elements:
        raise ValueError(f"{type_name} rows of {dims[0]} elements are not whole blocks of {block_elements}")
    return _product(dims) // block_elements * block_bytes


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


class _Reader:
    """Reads little-endian fields from a prefix of the file, checking every length first."""

    def __init__(self, data: bytes, file_size: int | None, filename):
        self.data = data
        self.view = memoryview(data)
        self.file_size = file_size
        self.filename = filename
        self.pos = 0

    def need(self, n: int, what: str, after: int = 0) -> None:
        """n bytes must follow, and at least `after` more after them (later items of an array)."""
        end = self.pos + n
        if end + after <= len(self.data):
            return
        least = end + after
        if self.file_size is not None and least > self.file_size:
            raise ModelFormatError(
                f"{self.filename}: {what} at offset {self.pos:,} needs {least - self.pos:,} bytes, past the end "
                f"of the file ({self.file_size:,} bytes): the file is truncated or corrupt")
        if least > MAX_HEADER_BYTES:
            raise ModelFormatError(
                f"{self.filename}: {what} at offset {self.pos:,} would make the header longer than "
                f"{MAX_HEADER_BYTES:,} bytes: a corrupt length or count")
        raise GGUFNeedMoreBytes(least, len(self.data), self.filename)

    def unpack(self, fmt: str, size: int, what: str, after: int = 0):
        self.need(size, what, after)
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def u32(self, what: str, after: int = 0) -> int:
        return self.unpack("I", 4, what, after)

    def u64(self, what: str, after: int = 0) -> int:
        return self.unpack("Q", 8, what, after)

    def string(self, what: str, after: int = 0, limit: int | None = None) -> str:
        length = self.u64(f"{what} (its length)", after)
        if limit is not None and length > limit:
            raise ModelFormatError(f"{self.filename}: {what} is {length:,} bytes long; the limit is {limit:,}")
        self.need(length, what, after)
        raw = self.view[self.pos:self.pos + length]
        try:
            text = str(raw, "utf-8")
        except UnicodeDecodeError as e:
            raise ModelFormatError(
                f"{self.filename}: {what} is not valid UTF-8 (bad byte at offset {self.pos + e.start:,})") from None
        self.pos += length
        return text


def parse_gguf_header(data, file_size: int | None = None, filename="model.gguf") -> GGUFHeader:
    """Parse and validate a GGUF header from `data`, the first bytes of the file (or all of it).

    `file_size` is the whole file's size, or None when not known yet: then lengths are only
    checked against MAX_HEADER_BYTES and tensors are not checked against the end of the file.
    Raises GGUFNeedMoreBytes when `data` ends inside the header (never when data holds the whole
    file: a file that ends inside its header is a ModelFormatError), ModelFormatError for anything
    malformed or unsupported.
    """
    data = data if isinstance(data, bytes) else bytes(data)
    if file_size is not None and (not isinstance(file_size, int) or file_size < 0):
        raise ValueError(f"file_size must be a non-negative int or None, got {file_size!r}")
    reader = _Reader(data, file_size, filename)
    _check_magic(data, file_size, filename)
    reader.pos = len(GGUF_MAGIC)
    version = _read_version(reader, filename)
    tensor_count = reader.u64("tensor_count")
    kv_count = reader.u64("kv_count")
    # The least each entry occupies: a KV is a key (8-byte length + 1 byte) + a type + a 1-byte
    # value; a tensor info a name (8 + 1) + n_dims + type + offset (and its dims).
    least = kv_count * MIN_KV_BYTES + tensor_count * MIN_TENSOR_INFO_BYTES
    reader.need(0, f"{kv_count:,} metadata entries and {tensor_count:,} tensor infos", after=least)

    metadata, metadata_types = {}, {}
    for index in range(kv_count):
        left = (kv_count - index - 1) * MIN_KV_BYTES + tensor_count * MIN_TENSOR_INFO_BYTES
        key = reader.string(f"metadata key #{index}", after=left, limit=MAX_KEY_BYTES)
        if not key:
            raise ModelFormatError(f"{filename}: metadata key #{index} is empty")
        if key in metadata:
            raise ModelFormatError(f"{filename}: metadata key {brief(key)} appears twice")
        where = f"metadata {brief(key)}"
        value_type = reader.u32(f"{where} (its type)", after=left)
        metadata[key], metadata_types[key] = _read_value(reader, value_type, where, left, 0)

    alignment = _alignment(metadata, metadata_types, filename)
    tensors = {}
    for index in range(tensor_count):
        left = (tensor_count - index - 1) * MIN_TENSOR_INFO_BYTES
        info = _read_tensor_info(reader, index, left, filename)
        if info[0] in tensors:
            raise ModelFormatError(f"{filename}: tensor {brief(info[0])} appears twice")
        tensors[info[0]] = info

    header_len = reader.pos
    data_start = _align(header_len, alignment)
    header = GGUFHeader(filename=str(filename), version=version, alignment=alignment, header_len=header_len,
                        data_start=data_start, file_size=file_size, metadata=metadata,
                        metadata_types=metadata_types)
    header.tensors = _check_tensors(tensors, header)
    return header


def _check_magic(data: bytes, file_size, filename) -> None:
    head = data[:8]
    if len(head) >= 8 and is_lfs_pointer(head):
        raise ModelFormatError(str(lfs_pointer_error(data[:1024], filename)))
    if len(data) < 4:
        if file_size is not None and file_size <= len(data):
            raise ModelFormatError(
                f"{filename}: the file has {len(data)} bytes; a GGUF file starts with {FIXED_HEADER_BYTES}")
        raise GGUFNeedMoreBytes(FIXED_HEADER_BYTES, len(data), filename)
    magic = data[:4]
    if magic == GGUF_MAGIC:
        return
    if magic in _OLD_GGML_MAGICS:
        raise ModelFormatError(
            f"{filename}: this is an old {_OLD_GGML_MAGICS[magic]} model file (before GGUF, 2023), not GGUF; "
            f"convert it to GGUF with llama.cpp")
    if magic == b"FUGG":
        raise ModelFormatError(f"{filename}: the magic is b'FUGG': a GGUF file written with its bytes swapped")
    hint = ""
    if len(data) >= 9 and data[8:9] == b"{":
        hint = " (it looks like a safetensors file)"
    elif data[:1] == b"<":
        hint = " (it looks like an HTML or XML page: a wrong URL or an error page?)"
    raise ModelFormatError(f"{filename}: not a GGUF file: it starts with {bytes(magic)!r}, not b'GGUF'{hint}")


def _read_version(reader: _Reader, filename) -> int:
    reader.need(FIXED_HEADER_BYTES - 4, "the version and counts")
    version = reader.u32("version")
    if version in SUPPORTED_VERSIONS:
        return version
    swapped = struct.unpack("<I", struct.pack(">I", version))[0]
    if version & 0xFFFF == 0 and swapped in (1, 2, 3):
        raise ModelFormatError(
            f"{filename}: a big-endian GGUF file (version {swapped} written big-endian); only little-endian "
            f"GGUF files are supported (llama.cpp's converter writes little-endian by default)")
    if version == 1:
        raise ModelFormatError(
            f"{filename}: GGUF version 1 (2023, 32-bit counts) is not supported; re-convert the model "
            f"with a current llama.cpp (versions 2 and 3 are read)")
    raise ModelFormatError(f"{filename}: unknown GGUF version {version} (versions 2 and 3 are read)")


def _read_value(reader: _Reader, value_type: int, where: str, left: int, depth: int):
    """-> (value, type label). `left`: the least number of bytes that must follow this value."""
    if value_type not in VALUE_TYPES:
        raise ModelFormatError(
            f"{reader.filename}: {where} has unknown value type id {value_type} (known: 0-12)")
    name, fmt, size = VALUE_TYPES[value_type]
    if value_type == STRING:
        return reader.string(where, after=left), name
    if value_type == ARRAY:
        return _read_array(reader, where, left, depth)
    value = reader.unpack(fmt, size, where, after=left)
    if value_type == BOOL:
        if value > 1:
            raise ModelFormatError(f"{reader.filename}: {where} is a bool stored as {value} (must be 0 or 1)")
        value = bool(value)
    return value, name


def _read_array(reader: _Reader, where: str, left: int, depth: int):
    if depth >= MAX_ARRAY_DEPTH:
        raise ModelFormatError(f"{reader.filename}: {where} nests arrays more than {MAX_ARRAY_DEPTH} deep")
    item_type = reader.u32(f"{where} (its item type)", after=8 + left)
    count = reader.u64(f"{where} (its length)", after=left)
    if item_type not in VALUE_TYPES:
        raise ModelFormatError(
            f"{reader.filename}: {where} is an array of unknown value type id {item_type} (known: 0-12)")
    name, fmt, size = VALUE_TYPES[item_type]
    reader.need(0, f"{where} ({count:,} items)", after=count * size + left)
    if fmt is not None:  # fixed-size items: one C-speed copy
        raw = reader.data[reader.pos:reader.pos + count * size]
        reader.pos += count * size
        values = _numbers(raw, fmt, size)
        if item_type == BOOL:
            if any(v > 1 for v in values):
                raise ModelFormatError(f"{reader.filename}: {where} holds a bool that is neither 0 nor 1")
            values = [bool(v) for v in values]
        return values, f"array[{name}]"
    values = []
    label = f"array[{name}]"
    if item_type == STRING:
        return _read_strings(reader, count, where, left), label
    for index in range(count):
        after = (count - index - 1) * size + left
        value, item_label = _read_array(reader, f"{where} item {index}", after, depth + 1)
        values.append(value)
        if index == 0:
            label = f"array[{item_label}]"
    return values, label


_U64 = struct.Struct("<Q")


def _read_strings(reader: _Reader, count: int, where: str, left: int) -> list:
    """`count` strings; the vocabulary of a model is one such array of up to ~256k items, so the
    common case (the bytes are all there and valid) runs in a tight loop, and anything else goes
    through reader.string's checks and messages."""
    data, length_of = reader.data, _U64.unpack_from
    size = len(data)
    values = []
    pos = reader.pos
    for index in range(count):
        if pos + 8 <= size:
            end = pos + 8 + length_of(data, pos)[0]
            if end <= size:
                try:
                    values.append(data[pos + 8:end].decode("utf-8"))
                    pos = end
                    continue
                except UnicodeDecodeError:
                    pass
        reader.pos = pos
        values.append(reader.string(f"{where} item {index}", after=(count - index - 1) * 8 + left))
        pos = reader.pos
    reader.pos = pos
    return values


def _numbers(raw: bytes, code: str, size: int) -> list:
    values = array(code)
    if values.itemsize != size:  # 'I'/'i' are 4 bytes and 'Q'/'q' 8 wherever CPython and Pyodide run
        raise ModelFormatError(f"this platform's array type {code!r} has {values.itemsize} bytes, not {size}")
    values.frombytes(raw)
    if not _LITTLE_ENDIAN_HOST:
        values.byteswap()
    return values.tolist()


def _alignment(metadata: dict, metadata_types: dict, filename) -> int:
    if "general.alignment" not in metadata:
        return DEFAULT_ALIGNMENT
    if metadata_types["general.alignment"] != "u32":
        raise ModelFormatError(
            f"{filename}: general.alignment must be a u32, got a {metadata_types['general.alignment']}")
    alignment = metadata["general.alignment"]
    if alignment == 0 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
        raise ModelFormatError(
            f"{filename}: general.alignment is {alignment}; it must be a power of two up to {MAX_ALIGNMENT:,}")
    return alignment


def _read_tensor_info(reader: _Reader, index: int, left: int, filename):
    """-> a tuple (name, type_name, type_id, dims, offset); sizes are checked in _check_tensors."""
    name = reader.string(f"tensor #{index}'s name", after=left + 16, limit=MAX_TENSOR_NAME_BYTES)
    if not name:
        raise ModelFormatError(f"{filename}: tensor #{index} has an empty name")
    where = f"tensor {brief(name)}"
    n_dims = reader.u32(f"{where} (n_dims)", after=left + 12)
    if not 1 <= n_dims <= MAX_DIMS:
        raise ModelFormatError(f"{filename}: {where} has {n_dims} dimensions; 1 to {MAX_DIMS} are allowed")
    dims = []
    for axis in range(n_dims):
        dim = reader.u64(f"{where} (dimension {axis})", after=left + 12 + 8 * (n_dims - axis - 1))
        if dim == 0:
            raise ModelFormatError(f"{filename}: {where} has a dimension of size 0")
        dims.append(dim)
    type_id = reader.u32(f"{where} (type)", after=left + 8)
    offset = reader.u64(f"{where} (offset)", after=left)
    type_name = GGML_TYPE_NAMES.get(type_id)
    if type_name is None:
        raise ModelFormatError(f"{filename}: {where} has unknown ggml type id {type_id}")
    if type_name not in TYPE_BLOCKS:
        raise ModelFormatError(
            f"{filename}: {where} is of type {type_name}, which this engine does not read "
            f"(supported: {', '.join(TYPE_BLOCKS)}); re-quantize the model to one of those")
    return (name, type_name, type_id, tuple(dims), offset)


def _check_tensors(raw: dict, header: GGUFHeader) -> dict:
    filename = header.filename
    tensors = {}
    for name, type_name, type_id, dims, offset in raw.values():
        where = f"{filename}: tensor {brief(name)}"
        numel = 1
        for dim in dims:
            numel *= dim
            if numel >= MAX_ELEMENTS:
                raise ModelFormatError(f"{where}: dims {brief(list(dims))} hold 2**62 elements or more")
        block_elements, block_bytes = TYPE_BLOCKS[type_name]
        if dims[0] % block_elements:
            raise ModelFormatError(
                f"{where}: {type_name} rows must be whole blocks of {block_elements} elements, but a row "
                f"(dims[0]) has {dims[0]:,}")
        nbytes = numel // block_elements * block_bytes
        if offset % header.alignment:
            raise ModelFormatError(
                f"{where}: offset {offset:,} is not a multiple of the alignment ({header.alignment})")
        if header.file_size is not None and header.data_start + offset + nbytes > header.file_size:
            raise ModelFormatError(
                f"{where}: its {nbytes:,} bytes at offset {offset:,} of the data section end past the end of the "
                f"file (the data section has {max(0, header.file_size - header.data_start):,} bytes): truncated?")
        if header.data_start + offset + nbytes >= 1 << 63:
            raise ModelFormatError(f"{where}: offset {offset:,} is past any possible file")
        tensors[name] = GGUFTensorInfo(name=name, type_name=type_name, type_id=type_id, dims=dims, offset=offset,
                                       data_offset=header.data_start + offset, nbytes=nbytes)
    previous = None
    for info in sorted(tensors.values(), key=lambda t: (t.offset, t.end)):
        if previous is not None and info.offset < previous.end:
            raise ModelFormatError(
                f"{filename}: tensors {brief(previous.name)} [{previous.offset:,}, {previous.end:,}) and "
                f"{brief(info.name)} [{info.offset:,}, {info.end:,}) overlap")
        previous = info
    return tensors


def read_gguf_header(path, first_read: int = 1 << 20) -> GGUFHeader:
    """Read and validate the header of a GGUF file on a local file system (CPython tools)."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read(first_read)
        while True:
            try:
                return parse_gguf_header(data, file_size, path)
            except GGUFNeedMoreBytes as more:
                f.seek(len(data))
                data += f.read(max(more.needed, 2 * len(data)) - len(data))
