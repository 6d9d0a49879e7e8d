"""Fuzzing the GGUF parser (app/gguf.py) and what reads its metadata (app/gguf_meta.py,
app/gguf_tokenizer.py): untrusted bytes from any URL or Hub file.

  truncation   a small valid file cut at every byte: with the file size known, always a
               ModelFormatError; as a prefix of a longer file, GGUFNeedMoreBytes with a bound past
               the prefix until the header is whole, then the header.
  bytes        the small file with byte-level damage (flips, u32/u64 fields overwritten with huge,
               zero and boundary values, insertions, deletions, truncation), file size known or not.
  structure    files built field by field with lies: counts, string and array lengths, value and
               item types, nested arrays, n_dims, dims, tensor types, offsets, alignment.
  metadata     a valid small llama model whose metadata values are replaced by values of any type
               (or removed): gguf_config, gguf_tensor_map and gguf_tokenizer.
  memory       hostile counts and lengths never make the parser allocate more than a few MB.

The only failure allowed is ModelFormatError with a non-empty one-line message of at most 1,000
characters (or GGUFNeedMoreBytes for a prefix); a header that parses must keep its promises: tensors
of supported types, inside the file, aligned, not overlapping, their sizes the type's block sizes.
Each property draws one short byte string and decodes it into a case (as tests/test_fuzz.py does),
so hypothesis shrinks failures to few mutations.
"""

from __future__ import annotations

import struct
import sys
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import gguf_files as gf  # noqa: E402
from app.errors import ModelFormatError  # noqa: E402
from app.gguf import MAX_HEADER_BYTES, TYPE_BLOCKS, GGUFNeedMoreBytes, parse_gguf_header  # noqa: E402
from app.gguf_meta import gguf_config, gguf_tensor_map, rope_freqs_tensor  # noqa: E402
from app.gguf_tokenizer import gguf_tokenizer  # noqa: E402

CASES = 3_000
FUZZ = settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
MAX_MESSAGE = 1000

U64_VALUES = [0, 1, 2, 3, 4, 5, 8, 31, 32, 33, 63, 64, 255, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40,
              2**62, 2**63 - 1, 2**63, 2**64 - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1]
U32_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 29, 30, 31, 41, 42, 99, 2**16, 2**31, 2**32 - 1]


class Draw:
    """Choices read from a byte string; past its end every choice is the first one (0)."""

    def __init__(self, data: bytes):
        self.data = data
        self.i = 0

    def byte(self) -> int:
        if self.i < len(self.data):
            self.i += 1
            return self.data[self.i - 1]
        return 0

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        if n <= 256:
            return self.byte() % n
        return ((self.byte() << 16) | (self.byte() << 8) | self.byte()) % n

    def pick(self, seq):
        return seq[self.below(len(seq))]


def check_error(exc: BaseException) -> None:
    assert isinstance(exc, ModelFormatError), f"{type(exc).__name__}: {exc!r}"[:2000]
    message = str(exc)
    assert message.strip() and "\n" not in message, repr(message[:500])
    assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters: {message[:300]!r}"


def check_header(header, data: bytes, file_size) -> None:
    """What a parsed header promises the engine."""
    assert header.header_len <= len(data) and header.data_start % header.alignment == 0
    assert header.alignment & (header.alignment - 1) == 0
    previous_end = 0
    for info in sorted(header.tensors.values(), key=lambda t: t.offset):
        block, size = TYPE_BLOCKS[info.type_name]
        assert 1 <= len(info.dims) <= 4 and all(d >= 1 for d in info.dims) and info.dims[0] % block == 0
        assert info.nbytes == info.numel // block * size and info.offset % header.alignment == 0
        assert info.offset >= previous_end and info.data_offset == header.data_start + info.offset
        previous_end = info.end
        if file_size is not None:
            assert info.data_offset + info.nbytes <= file_size


def parse_all(data: bytes, file_size) -> None:
    """Parse, then run every metadata reader the engine runs; only the typed errors may come out."""
    try:
        header = parse_gguf_header(data, file_size, "fuzz.gguf")
    except GGUFNeedMoreBytes as more:
        assert file_size is None or file_size > len(data), "asked for more bytes than the whole file"
        assert len(data) < more.needed <= (MAX_HEADER_BYTES if file_size is None else file_size)
        return
    except Exception as exc:  # noqa: BLE001 -- the property: nothing but a ModelFormatError
        check_error(exc)
        return
    check_header(header, data, file_size)
    read_metadata(header)


def read_metadata(header) -> None:
    try:
        freqs = rope_freqs_tensor(header)
        config = gguf_config(header, rope_freqs=[1.0] * freqs.numel if freqs is not None else None)
        gguf_tensor_map(header, config)
    except Exception as exc:  # noqa: BLE001
        check_error(exc)
    try:
        gguf_tokenizer(header)
    except Exception as exc:  # noqa: BLE001
        check_error(exc)


SMALL = gf.small_model_file()
SMALL_HEADER = parse_gguf_header(SMALL, len(SMALL), "small.gguf")


def llama_file(kvs=None, tensors=None) -> bytes:
    """A whole little llama model with a byte-level tokenizer (every reader has something to read)."""
    tokenizer = [
        ("tokenizer.ggml.model", gf.STR, "gpt2"), ("tokenizer.ggml.pre", gf.STR, "llama-bpe"),
        ("tokenizer.ggml.tokens", gf.ARR, (gf.STR, ["a", "b", "ab", "<s>"] + [f"t{i}" for i in range(28)])),
        ("tokenizer.ggml.token_type", gf.ARR, (gf.I32, [1, 1, 1, 3] + [1] * 28)),
        ("tokenizer.ggml.merges", gf.ARR, (gf.STR, ["a b"])), ("tokenizer.ggml.bos_token_id", gf.U32, 3),
        ("tokenizer.ggml.add_bos_token", gf.BOOL, 1), ("tokenizer.chat_template", gf.STR, "{{ x }}"),
    ]
    return gf.build(kvs if kvs is not None else gf.llama_metadata() + tokenizer,
                    tensors if tensors is not None else gf.llama_tensors())


LLAMA = llama_file()


def test_the_fuzz_inputs_are_valid():
    """The files mutated below parse, and the llama one reads as a model with a tokenizer."""
    assert len(SMALL_HEADER.tensors) == 6
    header = parse_gguf_header(LLAMA, len(LLAMA), "llama.gguf")
    config = gguf_config(header)
    assert len(gguf_tensor_map(header, config)) == len(header.tensors) and gguf_tokenizer(header)[0]["model"]


def test_truncation_at_every_byte():
    """A file cut anywhere is a ModelFormatError when its size is known; as a prefix of the whole
    file it asks for more bytes (past the prefix) until the header is complete."""
    for data in (SMALL, LLAMA):
        whole = parse_gguf_header(data, len(data), "t.gguf")
        # every byte of the header and the first tensor bytes; the rest of LLAMA's 250 KB of weights
        # only at a few places (a cut there fails the same check, "past the end of the file")
        cuts = [*range(min(len(data), whole.header_len + 600)), *range(whole.header_len + 600, len(data), 997)]
        for cut in cuts:
            try:
                parse_gguf_header(data[:cut], cut, "t.gguf")
                raise AssertionError(f"a file cut at {cut} of {len(data)} bytes parsed")
            except ModelFormatError as exc:
                check_error(exc)
            try:
                header = parse_gguf_header(data[:cut], len(data), "t.gguf")
                assert cut >= whole.header_len and header == whole
            except GGUFNeedMoreBytes as more:
                assert cut < whole.header_len and cut < more.needed <= len(data)


def damage(draw: Draw, raw: bytes, span: int) -> bytes:
    """Byte-level damage, mostly within the first `span` bytes (the header and the first tensor bytes)."""
    data = bytearray(raw)
    for _ in range(1 + draw.below(4)):
        kind = draw.below(8)
        i = draw.below(min(len(data), span) + 1) if draw.below(8) else draw.below(len(data) + 1)
        if kind == 0:
            del data[i:]
        elif kind == 1 and data:
            data[min(i, len(data) - 1)] ^= 1 << draw.below(8)
        elif kind == 2:
            data[i:i + 8] = struct.pack("<Q", draw.pick(U64_VALUES))
        elif kind == 3:
            data[i:i + 4] = struct.pack("<I", draw.pick(U32_VALUES))
        elif kind == 4:
            data[i:i] = bytes(draw.byte() for _ in range(draw.below(9)))
        elif kind == 5:
            del data[i:i + 1 + draw.below(64)]
        elif kind == 6:
            data[i:i] = data[draw.below(len(data) + 1):][:draw.below(40)]
        else:
            data[i:i + 1] = bytes([draw.byte()])
    return bytes(data)


@FUZZ
@given(st.binary(max_size=40))
def test_fuzz_gguf_bytes(seed):
    draw = Draw(seed)
    base = draw.pick([SMALL, LLAMA])
    data = damage(draw, base, 3000)
    parse_all(data, draw.pick([len(data), None, len(data) + draw.below(4096)]))


def lying_kv(draw: Draw, depth: int = 0) -> bytes:
    key = draw.pick(["general.architecture", "general.alignment", "tokenizer.ggml.tokens", "k", "", "\u00e9" * 3])
    value_type = draw.pick([gf.U8, gf.I32, gf.F32, gf.BOOL, gf.STR, gf.ARR, gf.U64, gf.F64, 13, 2**32 - 1])
    body = lying_value(draw, value_type, depth)
    return gf.string(key) + struct.pack("<I", value_type) + body


def lying_value(draw: Draw, value_type: int, depth: int) -> bytes:
    if value_type == gf.STR:
        text = draw.pick([b"", b"llama", b"\xff\xfe", b"x" * 70])
        length = draw.pick([len(text), len(text), 2**64 - 1, 2**40, len(text) + 1])
        return struct.pack("<Q", length) + text
    if value_type == gf.ARR:
        item_type = draw.pick([gf.U8, gf.I32, gf.F32, gf.BOOL, gf.STR, gf.ARR, gf.U64, 13, 99])
        count = draw.pick([0, 1, 2, 3, 2**62, 2**64 - 1, 10**6])
        items = b"".join(lying_value(draw, item_type, depth + 1) for _ in range(min(count, 3)) if depth < 12)
        return struct.pack("<IQ", item_type, count) + items
    if value_type in (gf.U8, gf.BOOL):
        return bytes([draw.pick([0, 1, 2, 255])])
    if value_type == gf.I32:
        return struct.pack("<i", draw.pick([0, 1, -1, 32, 2**31 - 1]))
    if value_type == gf.F32:
        return struct.pack("<f", draw.pick([0.0, 1e-5, float("nan"), float("inf"), -1.0]))
    return struct.pack("<Q", draw.pick(U64_VALUES))


def lying_tensor(draw: Draw) -> bytes:
    name = draw.pick(["token_embd.weight", "blk.0.attn_q.weight", "t", "", "n" * 64, "rope_freqs.weight"])
    n_dims = draw.pick([1, 2, 2, 3, 4, 0, 5, 2**32 - 1])
    dims = [draw.pick([1, 2, 31, 32, 33, 64, 0, 2**31, 2**32, 2**62, 2**64 - 1]) for _ in range(min(n_dims, 6))]
    type_id = draw.pick([0, 1, 30, 8, 2, 3, 12, 14, 4, 42, 2**32 - 1])
    offset = draw.pick([0, 0, 32, 64, 96, 16, 1, 2**63, 2**64 - 1])
    return gf.string(name) + struct.pack("<I", n_dims) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", type_id, offset)


@FUZZ
@given(st.binary(max_size=60))
def test_fuzz_gguf_structure(seed):
    draw = Draw(seed)
    kvs = [lying_kv(draw) for _ in range(draw.below(4))]
    if draw.below(2):
        kvs.append(gf.kv("general.alignment", gf.U32, draw.pick([32, 1, 64, 3, 0, 2**31])))
    tensors = [lying_tensor(draw) for _ in range(draw.below(4))]
    data = gf.build(kvs, tensors, version=draw.pick([3, 2, 1, 0, 2**32 - 1]),
                    kv_count=draw.pick([None, None, 0, 2**64 - 1, len(kvs) + 1]),
                    tensor_count=draw.pick([None, None, 0, 2**63, len(tensors) + 1]), data=bytes(draw.below(300)))
    parse_all(data, draw.pick([len(data), None]))


# metadata values of every kind, for keys the readers look at
VALUES = [(gf.U32, 0), (gf.U32, 1), (gf.U32, 3), (gf.U32, 64), (gf.U32, 2**32 - 1), (gf.I32, -1), (gf.U64, 2**63),
          (gf.F32, 0.0), (gf.F32, float("nan")), (gf.F32, float("inf")), (gf.F32, 1e-5), (gf.F64, 1e308),
          (gf.BOOL, 1), (gf.STR, ""), (gf.STR, "llama"), (gf.STR, "qwen3"), (gf.STR, "gpt2"), (gf.STR, "linear"),
          (gf.STR, "yarn"), (gf.STR, "a b"), (gf.ARR, (gf.U32, [])), (gf.ARR, (gf.U32, [2, 2])),
          (gf.ARR, (gf.U32, [1, 2])), (gf.ARR, (gf.STR, ["a", "a b", "ab b", "x y z"])),
          (gf.ARR, (gf.F32, [0.0, -1.0])), (gf.ARR, (gf.ARR, [(gf.U8, [1])])), (gf.ARR, (gf.I32, [3] * 32))]
KEYS = ["general.architecture", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
        "llama.attention.head_count", "llama.attention.head_count_kv", "llama.attention.key_length",
        "llama.attention.value_length", "llama.rope.dimension_count", "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon", "llama.context_length", "llama.vocab_size",
        "llama.rope.scaling.type", "llama.rope.scaling.factor", "llama.rope.scale_linear", "tokenizer.ggml.model",
        "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
        "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"]


@FUZZ
@given(st.binary(max_size=24))
def test_fuzz_gguf_metadata(seed):
    draw = Draw(seed)
    base = parse_gguf_header(LLAMA, len(LLAMA), "llama.gguf")
    kvs = {key: (base.metadata_types[key], base.metadata[key]) for key in base.metadata}
    for _ in range(1 + draw.below(4)):
        key = draw.pick(KEYS)
        if draw.below(4) == 0:
            kvs.pop(key, None)
        else:
            kvs[key] = draw.pick(VALUES)
    typed = []
    type_ids = {"u32": gf.U32, "f32": gf.F32, "str": gf.STR, "bool": gf.BOOL, "array[str]": gf.ARR,
                "array[i32]": gf.ARR}
    for key, (kind, value) in kvs.items():
        if isinstance(kind, str):  # from the base file: rebuild its typed value
            value_type = type_ids[kind]
            if kind.startswith("array["):
                value = (gf.STR if kind == "array[str]" else gf.I32, value)
            kind = value_type
        typed.append((key, kind, value))
    tensors = gf.llama_tensors(untied=draw.below(2) == 1)
    if draw.below(3) == 0:
        tensors = tensors[:draw.below(len(tensors))] + [("rope_freqs.weight", (8,), "F32", None)]
    data = gf.build(typed, tensors)
    parse_all(data, len(data))


def test_hostile_counts_and_lengths_allocate_nothing_big():
    """Counts and lengths of 2**40..2**64 (KVs, tensors, strings, arrays, arrays of arrays, dims) fail
    with at most a few MB allocated, file size known or not."""
    arch = ("general.architecture", gf.STR, "llama")
    cases = [
        gf.build([arch], kv_count=2**64 - 1), gf.build([arch], tensor_count=2**63),
        gf.build([gf.string("k") + struct.pack("<IQ", gf.STR, 2**63)]),
        gf.build([gf.string("k") + struct.pack("<IIQ", gf.ARR, gf.U8, 2**62)]),
        gf.build([gf.string("k") + struct.pack("<IIQ", gf.ARR, gf.STR, 2**60) + struct.pack("<Q", 1) + b"a"]),
        gf.build([gf.string("k") + struct.pack("<IIQIQ", gf.ARR, gf.ARR, 2**40, gf.U64, 2**61)]),
        gf.build([arch], [gf.tensor_info("t", (2**62, 2**62, 2**62, 2**62), 0, 0)]),
        gf.build([arch], [gf.tensor_info("t", (32,) * 4, 8, 2**64 - 32)]),
        gf.build([arch], [("t", (2**20, 2**20), "F32", 0)], data=b""),
    ]
    for data in cases:
        for file_size in (len(data), None, 2**50):
            tracemalloc.start()
            try:
                parse_all(data, file_size)
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            assert peak < 4 << 20, f"{peak:,} bytes allocated for a {len(data)}-byte file"
