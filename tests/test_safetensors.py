"""app/safetensors.py: header parsing, bad files refused with a clear message, a fuzz, dtype helpers."""

import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.safetensors import (
    DTYPE_SIZES,
    MAX_HEADER_LEN,
    ModelFormatError,
    bf16_to_f16_bytes,
    bf16_to_f32_bytes,
    f16_bytes_to_floats,
    f32_bytes_to_floats,
    parse_header,
    parse_header_length,
    read_header,
)
from tools.make_model import cached_model

FILE = "weights/tiny/model.safetensors"


# --- helpers ----------------------------------------------------------------------------------


def pack(header, data_size=None, pad_to=None) -> bytes:
    """A safetensors file from a header object (dict or raw str/bytes) and zeroed data."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    if data_size is None:
        data_size = max((v["data_offsets"][1] for k, v in json.loads(header).items() if k != "__metadata__"), default=0)
    return struct.pack("<Q", len(header)) + header + bytes(data_size)


def parse_file(data: bytes, filename=FILE):
    """What a loader does: the length from the first bytes, then the header."""
    n = parse_header_length(data[:256], len(data), filename)
    return parse_header(data[8 : 8 + n], len(data), filename)


def entry(dtype, shape, begin):
    nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[dtype]
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, begin + nbytes]}


def valid_header():
    return {
        "__metadata__": {"format": "pt"},
        "wte.weight": entry("F32", [5, 4], 0),  # 80 bytes
        "ln_f.bias": entry("F16", [4], 80),  # 8 bytes
        "ln_f.weight": entry("BF16", [4], 88),  # 8 bytes
    }


def assert_error(data_or_call, *needles, filename=FILE):
    with pytest.raises(ModelFormatError) as info:
        if callable(data_or_call):
            data_or_call()
        else:
            parse_file(data_or_call, filename)
    message = str(info.value)
    assert filename in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# --- valid files -------------------------------------------------------------------------------


def test_valid_header_parses():
    data = pack(valid_header())
    header = parse_file(data)
    assert header.metadata == {"format": "pt"}
    assert list(header.tensors) == ["wte.weight", "ln_f.bias", "ln_f.weight"]
    wte = header.tensors["wte.weight"]
    assert (wte.dtype, wte.shape, wte.begin, wte.end, wte.nbytes) == ("F32", (5, 4), 0, 80, 80)
    assert wte.data_offset == 8 + header.header_len
    assert header.tensors["ln_f.weight"].data_offset == 8 + header.header_len + 88
    assert header.data_size == 96 and header.data_start == 8 + header.header_len


def test_transformers_file_agrees_with_safetensors_library(tmp_path_factory):
    from safetensors import safe_open

    folder = cached_model(tmp_path_factory.getbasetemp() / "models", n_layer=1, n_head=2, n_embd=16,
                          n_positions=8, vocab_size=13, dtype="float16")
    path = folder / "model.safetensors"
    header = read_header(path)
    raw = path.read_bytes()
    with safe_open(path, "np") as f:
        assert set(f.keys()) == set(header.tensors)
        for name in f.keys():
            info = header.tensors[name]
            array = f.get_tensor(name)
            assert info.shape == array.shape and info.dtype == "F16"
            assert raw[info.data_offset : info.data_offset + info.nbytes] == array.astype("<f2").tobytes()


def test_zero_size_tensors_and_empty_file_are_fine():
    header = {"a": entry("F32", [0, 3], 0), "b": entry("F32", [2], 0), "c": entry("F16", [0], 8)}
    parsed = parse_file(pack(header))
    assert parsed.tensors["a"].nbytes == 0 and parsed.data_size == 8
    assert parse_file(pack({})).tensors == {}


def test_header_may_be_padded_with_spaces():
    text = json.dumps(valid_header()) + " " * 7  # writers align the data section to 8 bytes
    assert len(parse_file(pack(text, 96)).tensors) == 3


def test_size_unknown_checks_only_what_it_can():
    header_bytes = json.dumps(valid_header()).encode()
    parsed = parse_header(header_bytes, None, FILE)
    assert parsed.data_size == 96 and parsed.file_size is None
    assert parse_header_length(struct.pack("<Q", 10**6), None, FILE) == 10**6


# --- bad files: each must be refused with a clear message ---------------------------------------

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707\n"
    b"size 548105171\n"
)


def test_git_lfs_pointer():
    message = assert_error(LFS_POINTER, "Git LFS pointer", "not the model weights", "git lfs pull",
                           "548,105,171 bytes", "resolve/main/model.safetensors")
    # a loader that fetched only the first 8 bytes (a Range request) gets the same diagnosis
    assert_error(lambda: parse_header_length(LFS_POINTER[:8], None, FILE), "Git LFS pointer")
    assert_error(lambda: parse_header(LFS_POINTER, len(LFS_POINTER), FILE), "Git LFS pointer")
    assert "\n" not in message


def test_file_shorter_than_8_bytes():
    assert_error(b"", "truncated", "0 bytes")
    assert_error(b"\x10\x00\x00", "truncated", "3 bytes", "8-byte header length")


def test_header_length_larger_than_file():
    data = pack(valid_header())
    assert_error(data[:40], "header length", "larger than the file", "40 bytes")


def test_absurd_header_length():
    assert_error(lambda: parse_header_length(struct.pack("<Q", MAX_HEADER_LEN + 1), None, FILE),
                 "over the limit", f"{MAX_HEADER_LEN:,}")
    assert_error(lambda: parse_header_length(struct.pack("<Q", 2**64 - 1), 10**12, FILE), "over the limit")
    assert_error(lambda: parse_header_length(struct.pack("<Q", 0), 100, FILE), "header length is 0")


def test_truncated_data_section():
    data = pack(valid_header())
    # cut inside the last tensor: its offsets run past the end of the file
    assert_error(data[:-4], "'ln_f.weight'", "out of bounds", "92 bytes")


def test_header_not_json():
    assert_error(pack("this is not json", 0), "not valid JSON")
    assert_error(pack('{"a": {"dtype": "F32", ', 0), "not valid JSON")
    assert_error(pack(b"\xff\xfe{}", 0), "not UTF-8")
    assert_error(pack("[1, 2, 3]", 0), "must be a JSON object", "list")
    assert_error(pack('{"a": NaN}', 0), "NaN")
    assert_error(pack("[" * 100_000 + "]" * 100_000, 0), "not valid JSON")  # too deep for json
    assert_error(pack('{"w": ' + json.dumps(entry("F32", [1], 0)) + ', "w": '
                      + json.dumps(entry("F32", [1], 4)) + "}", 8), "duplicate key 'w'")


@pytest.mark.parametrize(
    "bad_entry, needle",
    [
        ("not an object", "entry must be a JSON object"),
        ({"shape": [1], "data_offsets": [0, 4]}, "missing 'dtype'"),
        ({"dtype": "F32", "data_offsets": [0, 4]}, "missing 'shape'"),
        ({"dtype": "F32", "shape": [1]}, "missing 'data_offsets'"),
        ({"dtype": 32, "shape": [1], "data_offsets": [0, 4]}, "'dtype' must be a string"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "'shape' must be a list of non-negative"),
        ({"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}, "'shape' must be a list of non-negative"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "'shape' must be a list of non-negative"),
        ({"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}, "'shape' must be a list of non-negative"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0]}, "'data_offsets' must be [begin, end]"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}, "'data_offsets' must be [begin, end]"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "end before begin"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "needs 8 bytes"),
        ({"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 4]}, "unknown dtype 'Q4_K'"),
    ],
)
def test_malformed_tensor_entries(bad_entry, needle):
    header = {"good": entry("F32", [1], 0), "bad.tensor": bad_entry}
    assert_error(pack(header, 8), "'bad.tensor'", needle)


def test_metadata_must_be_an_object():
    assert_error(pack({"__metadata__": [1], "a": entry("F32", [1], 0)}), "'__metadata__'", "JSON object")


def test_offsets_out_of_bounds():
    header = {"a": entry("F32", [2], 0), "b": entry("F32", [4], 8)}  # b ends at 24
    assert_error(pack(header, 16), "'b'", "out of bounds", "16 bytes")


def test_overlapping_tensors():
    header = {"a": entry("F32", [4], 0), "b": entry("F32", [4], 8)}  # a [0,16) b [8,24)
    message = assert_error(pack(header, 24), "'a'", "'b'", "overlap")
    assert "[0, 16]" in message and "[8, 24]" in message


def test_gap_between_tensors():
    header = {"a": entry("F32", [2], 0), "b": entry("F32", [2], 12)}  # bytes 8..12 unused
    assert_error(pack(header, 20), "[8, 12)", "'a'", "'b'", "cover the data")


def test_data_not_starting_at_zero():
    assert_error(pack({"a": entry("F32", [2], 4)}, 12), "[0, 4)", "start of the data", "'a'")


def test_trailing_data_not_covered():
    assert_error(pack({"a": entry("F32", [2], 0)}, 20), "last 12 bytes", "belong to no tensor")


def test_every_known_dtype_sizes_the_data():
    header, offset = {}, 0
    for i, (dtype, size) in enumerate(DTYPE_SIZES.items()):
        header[f"t{i}"] = entry(dtype, [3, 2], offset)
        offset += 6 * size
    parsed = parse_file(pack(header))
    assert parsed.data_size == offset
    assert {t.dtype for t in parsed.tensors.values()} == set(DTYPE_SIZES)


# --- fuzz: the only exception allowed is ModelFormatError ------------------------------------


def check_invariants(parsed, file_size):
    total = 0
    for t in parsed.tensors.values():
        assert t.nbytes == int(np.prod(t.shape, dtype=object)) * DTYPE_SIZES[t.dtype]
        assert t.data_offset == 8 + parsed.header_len + t.begin
        assert t.end <= parsed.data_size
        total += t.nbytes
    assert total == parsed.data_size == file_size - 8 - parsed.header_len


def parse_or_model_error(data):
    try:
        parsed = parse_file(data)
    except ModelFormatError as e:
        assert FILE in str(e) and str(e).strip()
        return None
    check_invariants(parsed, len(data))
    return parsed


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.binary(max_size=300),
    # bytes behind a plausible length: the JSON parser sees the garbage
    st.binary(max_size=300).map(lambda b: struct.pack("<Q", len(b)) + b),
    st.binary(min_size=1, max_size=300).flatmap(
        lambda b: st.integers(0, len(b) + 16).map(lambda n: struct.pack("<Q", n) + b)),
))
def test_fuzz_random_bytes(data):
    parse_or_model_error(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_files(draw):
    """A valid file, then mutations at the JSON level and/or at the byte level."""
    names = draw(st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=5, unique=True))
    header, offset = {}, 0
    for name in names:
        if name == "__metadata__":
            continue
        dtype = draw(st.sampled_from(sorted(DTYPE_SIZES)))
        shape = draw(st.lists(st.integers(0, 5), max_size=3))
        header[name] = entry(dtype, shape, offset)
        offset += header[name]["data_offsets"][1] - offset
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
    data_size = offset

    for _ in range(draw(st.integers(0, 3))):  # JSON-level mutations
        tensor_names = [n for n in header if n != "__metadata__"]
        kind = draw(st.sampled_from(["value", "field", "drop", "offset", "size", "add"]))
        if kind == "size":
            data_size = max(0, data_size + draw(st.integers(-8, 8)))
        elif kind == "add":
            header[draw(st.text(max_size=6))] = draw(json_values)
        elif tensor_names:
            name = draw(st.sampled_from(tensor_names))
            item = header[name]
            if kind == "value":
                header[name] = draw(json_values)
            elif isinstance(item, dict):
                key = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
                if kind == "field":
                    item[key] = draw(json_values)
                elif kind == "drop":
                    item.pop(key, None)
                elif kind == "offset" and isinstance(item.get("data_offsets"), list) and item["data_offsets"]:
                    i = draw(st.integers(0, len(item["data_offsets"]) - 1))
                    if isinstance(item["data_offsets"][i], int):
                        item["data_offsets"][i] += draw(st.integers(-9, 9))

    text = json.dumps(header, allow_nan=True).encode()
    data = bytearray(struct.pack("<Q", len(text)) + text + bytes(data_size))
    for _ in range(draw(st.integers(0, 2))):  # byte-level mutations
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_files())
def test_fuzz_mutated_headers(data):
    from safetensors import SafetensorError, deserialize

    ours = parse_or_model_error(data)
    # The reference implementation accepting a file means we accept it too, and agree on it.
    try:
        theirs = deserialize(data)
    except SafetensorError:
        return
    assert ours is not None, "the safetensors library accepts a file we refuse"
    assert set(ours.tensors) == {name for name, _ in theirs}
    raw = data
    for name, info in theirs:
        t = ours.tensors[name]
        assert (t.dtype, list(t.shape)) == (info["dtype"], list(info["shape"]))
        assert raw[t.data_offset : t.data_offset + t.nbytes] == bytes(info["data"])


# --- dtype helpers ---------------------------------------------------------------------------


def all_bf16_patterns():
    return np.arange(65536, dtype=np.uint16)


def torch_bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).float().numpy()


def test_bf16_to_f32_is_exact_for_every_pattern():
    bits = all_bf16_patterns()
    ours = np.frombuffer(bf16_to_f32_bytes(bits.tobytes()), "<f4")
    assert np.array_equal(ours.view(np.uint32), torch_bf16_to_f32(bits).view(np.uint32))


@pytest.mark.parametrize("layout", ["all patterns", "mostly normal values", "every pattern among many normal ones"])
def test_bf16_to_f16_matches_round_to_nearest_even(layout):
    bits = all_bf16_patterns()
    if layout != "all patterns":  # exercise the fast path plus its exceptions
        exponent = (bits >> 7) & 0xFF
        normal = bits[(exponent > 114) & (exponent < 141)]
        bits = np.concatenate([np.tile(normal, 8), bits if layout.startswith("every") else bits[:300]])
        np.random.default_rng(0).shuffle(bits)
    ours = np.frombuffer(bf16_to_f16_bytes(bits.tobytes()), "<f2")
    as_f32 = torch_bf16_to_f32(bits)
    expected = np.clip(as_f32, -65504, 65504).astype(np.float16)  # saturate, don't overflow to inf
    nan = np.isnan(as_f32)
    assert np.array_equal(ours[~nan].view(np.uint16), expected[~nan].view(np.uint16))
    assert np.isnan(ours[nan]).all()
    assert np.signbit(ours[nan]).tolist() == np.signbit(as_f32[nan]).tolist()


def test_float_readers():
    values = np.array([0.0, -1.5, 65504.0, 1e-7, np.inf], dtype=np.float32)
    assert f32_bytes_to_floats(values.tobytes()) == values.tolist()
    assert f16_bytes_to_floats(values.astype("<f2").tobytes()) == values.astype(np.float16).astype(float).tolist()
    with pytest.raises(ValueError):
        bf16_to_f32_bytes(b"\x00\x01\x02")
