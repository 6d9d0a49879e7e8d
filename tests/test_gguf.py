"""app/gguf.py (the GGUF header parser) and app/gguf_meta.py (metadata -> config, tensor map, Q/K
permutation), on files written by the gguf package (llama.cpp's gguf-py), on hand-built files that
break one rule each, and on the real SmolLM2-135M-Instruct Q4_1 file."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import gguf  # noqa: E402

import gguf_files as gf  # noqa: E402
from app.errors import ModelFormatError  # noqa: E402
from app.gguf import (  # noqa: E402
    MAX_HEADER_BYTES,
    GGUFNeedMoreBytes,
    parse_gguf_header,
    read_gguf_header,
)
from app.gguf_meta import (  # noqa: E402
    gguf_config,
    gguf_tensor_map,
    llama3_factors,
    llama3_rope_scaling,
    permute_row_order,
    unpermute_row_order,
)
from tools import kquants  # noqa: E402
from tools.make_gguf import set_version  # noqa: E402
from tools.quants import quantize  # noqa: E402

SUPPORTED = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")


def parse(data: bytes, file_size="len", filename="test.gguf"):
    return parse_gguf_header(data, len(data) if file_size == "len" else file_size, filename)


def refused(data: bytes, *needles, file_size="len") -> str:
    with pytest.raises(ModelFormatError) as info:
        parse(data, file_size)
    message = str(info.value)
    assert message.startswith("test.gguf: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# ------------------------------------------------------------------------------ files from gguf-py


def write_with_gguf_py(path: Path, version: int = 3, endianess=None) -> dict:
    """A file of one random tensor per supported type, written with gguf-py's GGUFWriter; returns
    what was written: name -> (type, shape, raw bytes)."""
    rng = np.random.default_rng(11)
    kwargs = {} if endianess is None else {"endianess": endianess}
    writer = gguf.GGUFWriter(str(path), "llama", **kwargs)
    writer.add_uint32("test.u32", 7)
    writer.add_float32("test.f32", 0.1)
    writer.add_string("test.text", "h\u00e9llo \U0001f600")
    writer.add_array("test.strings", ["x", "", "\u65e5\u672c"])
    writer.add_bool("test.flag", True)
    writer.add_int64("test.i64", -(2**40))
    writer.add_float64("test.f64", 1e300)
    written = {}
    for type_name, shape in zip(SUPPORTED, [(3, 5), (2, 7), (4, 3), (3, 64), (5, 32), (2, 96), (3, 96), (5, 64),
                                                  (3, 256), (3, 512), (2, 768)], strict=True):
        values = rng.standard_normal(shape).astype(np.float32)
        if type_name == "F32":
            array, raw_dtype = values, None
        elif type_name == "F16":
            array, raw_dtype = values.astype(np.float16), None
        elif type_name == "BF16":
            array, raw_dtype = (values.view(np.uint32) >> 16).astype(np.uint16), gguf.GGMLQuantizationType.BF16
        else:
            pack = kquants.quantize if type_name in kquants.BLOCK_BYTES else quantize
            array, raw_dtype = pack(values, type_name), gguf.GGMLQuantizationType[type_name]
        writer.add_tensor(f"t.{type_name}", array, raw_dtype=raw_dtype)
        written[f"t.{type_name}"] = (type_name, shape, array.tobytes())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if version != 3:
        set_version(path, version)
    return written


@pytest.mark.parametrize("version", [3, 2])
def test_files_written_by_gguf_py_parse_exactly(tmp_path, version):
    """Every metadata value and tensor info (type, shape, offset, size) of a gguf-py file, and the
    tensor bytes at the offsets given, are what was written and what gguf-py's reader sees."""
    path = tmp_path / "types.gguf"
    written = write_with_gguf_py(path, version)
    header = read_gguf_header(path)
    assert header.version == version and header.alignment == 32 and header.data_start % 32 == 0
    m = header.metadata
    assert m["general.architecture"] == "llama" and m["test.u32"] == 7 and m["test.text"] == "h\u00e9llo \U0001f600"
    assert m["test.f32"] == struct.unpack("<f", struct.pack("<f", 0.1))[0] and m["test.f64"] == 1e300
    assert m["test.strings"] == ["x", "", "\u65e5\u672c"] and m["test.flag"] is True and m["test.i64"] == -(2**40)
    assert header.metadata_types["test.strings"] == "array[str]" and header.metadata_types["test.u32"] == "u32"

    reader = gguf.GGUFReader(path)
    data = path.read_bytes()
    assert list(header.tensors) == [t.name for t in reader.tensors] == list(written)
    for ref in reader.tensors:
        info = header.tensors[ref.name]
        type_name, shape, raw = written[ref.name]
        assert info.type_name == type_name == ref.tensor_type.name
        assert info.shape == shape and info.dims == tuple(int(d) for d in ref.shape)
        assert info.data_offset == ref.data_offset and info.nbytes == ref.n_bytes == len(raw)
        assert data[info.data_offset:info.data_offset + info.nbytes] == raw
        assert info.offset % 32 == 0


def test_big_endian_files_are_refused(tmp_path):
    """A big-endian GGUF (gguf-py can write one) is refused, naming the byte order."""
    path = tmp_path / "be.gguf"
    write_with_gguf_py(path, endianess=gguf.GGUFEndian.BIG)
    with pytest.raises(ModelFormatError, match="big-endian"):
        read_gguf_header(path)


def test_a_prefix_asks_for_more_bytes_until_the_header_is_whole(tmp_path):
    """Parsing a prefix raises GGUFNeedMoreBytes with a lower bound past the prefix, never a format
    error; following its advice from any start length ends with the same header."""
    path = tmp_path / "types.gguf"
    write_with_gguf_py(path)
    data = path.read_bytes()
    whole = parse(data)
    for cut in range(0, whole.header_len):
        with pytest.raises(GGUFNeedMoreBytes) as info:
            parse_gguf_header(data[:cut], len(data), "x.gguf")
        assert cut < info.value.needed <= len(data)
        with pytest.raises(GGUFNeedMoreBytes):
            parse_gguf_header(data[:cut], None, "x.gguf")
    for start in (1, 10, 100):
        have, rounds = data[:start], 0
        while True:
            try:
                header = parse_gguf_header(have, len(data), "test.gguf")
                break
            except GGUFNeedMoreBytes as more:
                have = data[:more.needed]
                rounds += 1
        assert header == whole and rounds < 200
    assert parse_gguf_header(data[:whole.header_len], len(data), "test.gguf") == whole


def test_the_real_smollm2_header(tmp_path):
    """SmolLM2-135M-Instruct Q4_1: version 3, 33 keys, 272 tensors (Q4_1, Q8_0 embedding, F32 norms),
    every tensor inside the file, and the same tensor infos as gguf-py's reader."""
    path = gf.smollm2_gguf()
    header = read_gguf_header(path)
    assert header.version == 3 and len(header.metadata) == 33 and len(header.tensors) == 272
    assert header.header_len == header.data_start == 1_785_664
    assert {t.type_name for t in header.tensors.values()} == {"Q4_1", "Q8_0", "F32"}
    assert header.tensors["token_embd.weight"].type_name == "Q8_0"
    assert header.tensors["token_embd.weight"].shape == (49152, 576)
    assert len(header.metadata["tokenizer.ggml.tokens"]) == 49152
    assert len(header.metadata["tokenizer.ggml.merges"]) == 48900
    reader = gguf.GGUFReader(path)
    assert [(t.name, t.data_offset, int(t.n_bytes), t.tensor_type.name) for t in reader.tensors] == [
        (t.name, t.data_offset, t.nbytes, t.type_name) for t in header.tensors.values()]


# ------------------------------------------------------------------------------ refusals, one rule each


ARCH = ("general.architecture", gf.STR, "llama")


def test_magic_and_versions():
    """Not GGUF, old GGML files, Git LFS pointers, versions 1 and 4, and a file shorter than the
    fixed header are refused with what they are."""
    good = gf.build([ARCH])
    assert parse(good).version == 3
    refused(b"PK\x03\x04" + good[4:], "not a GGUF file", "b'PK")
    refused(b"tjgg" + good[4:], "old GGJT")
    refused(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}", "safetensors")
    refused(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 123\n", "Git LFS pointer")
    refused(gf.build([ARCH], version=1), "version 1")
    refused(gf.build([ARCH], version=4), "unknown GGUF version 4")
    refused(gf.build([ARCH], version=3 << 24), "big-endian")
    refused(good[:10], "past the end of the file")
    refused(b"GG", "the file has 2 bytes")


def test_absurd_counts_fail_at_once():
    """A tensor or KV count that the file (or MAX_HEADER_BYTES) cannot hold fails before any entry is
    read, with or without the file size."""
    message = refused(gf.build([ARCH], kv_count=2**60), "1,152,921,504,606,846,976 metadata entries")
    assert "past the end of the file" in message
    refused(gf.build([ARCH], tensor_count=10**12), "tensor infos")
    with pytest.raises(ModelFormatError, match="longer than"):
        parse_gguf_header(gf.build([ARCH], tensor_count=2**40), None, "test.gguf")


def test_strings_and_arrays():
    """Lengths past the end, bad UTF-8, empty and duplicate keys, unknown value types (also inside
    arrays), bools other than 0/1, and arrays nested too deep are refused; nested arrays parse."""
    refused(gf.build([gf.string("k") + struct.pack("<I", gf.STR) + struct.pack("<Q", 2**62)]),
            "metadata 'k'", "past the end")
    refused(gf.build([("k", gf.STR, b"\xff\xfe")]), "metadata 'k' is not valid UTF-8")
    refused(gf.build([("", gf.U32, 1)]), "metadata key #0 is empty")
    refused(gf.build([("k", gf.U32, 1), ("k", gf.U32, 2)]), "'k' appears twice")
    refused(gf.build([gf.string("k") + struct.pack("<I", 13) + b"\0" * 8]), "unknown value type id 13")
    refused(gf.build([gf.string("k") + struct.pack("<IIQ", gf.ARR, 99, 1) + b"\0" * 8]),
            "array of unknown value type id 99")
    refused(gf.build([("k", gf.BOOL, 2)]), "bool stored as 2")
    refused(gf.build([("k", gf.ARR, (gf.BOOL, [0, 1, 5]))]), "neither 0 nor 1")
    refused(gf.build([gf.string("k") + struct.pack("<IIQ", gf.ARR, gf.STR, 2**61)]), "items", "past the end")
    deep = (gf.I32, [1])
    for _ in range(9):
        deep = (gf.ARR, [deep])
    refused(gf.build([("k", gf.ARR, deep)]), "nests arrays more than 8 deep")
    nested = parse(gf.build([("k", gf.ARR, (gf.ARR, [(gf.ARR, [(gf.U8, [1, 2])]), (gf.ARR, [])]))]))
    assert nested.metadata["k"] == [[[1, 2]], []] and nested.metadata_types["k"] == "array[array[array[u8]]]"


def test_alignment():
    """general.alignment must be a u32 power of two; tensor offsets must be multiples of it, and the
    data section starts at the header's end rounded up to it."""
    for bad, needle in ((("general.alignment", gf.U64, 32), "must be a u32"),
                        (("general.alignment", gf.U32, 48), "power of two"),
                        (("general.alignment", gf.U32, 0), "power of two")):
        refused(gf.build([ARCH, bad]), needle)
    header = parse(gf.build([ARCH, ("general.alignment", gf.U32, 64)], [("t", (64,), "F32", 0)], alignment=64))
    assert header.alignment == 64 and header.data_start % 64 == 0
    assert header.tensors["t"].data_offset == header.data_start
    refused(gf.build([ARCH], [("t", (4,), "F32", 16)]), "offset 16 is not a multiple of the alignment (32)")


def test_tensor_infos():
    """Tensor dims (1-4, each > 0, product under 2**62), unknown and unsupported types (named),
    rows that are not whole blocks, names too long, duplicates, offsets past the end and overlaps."""
    refused(gf.build([ARCH], [("t", (2, 2, 2, 2, 2), "F32", None)]), "5 dimensions")
    refused(gf.build([ARCH], [gf.tensor_info("t", (), 0, 0)]), "0 dimensions")
    refused(gf.build([ARCH], [("t", (4, 0), "F32", None)]), "dimension of size 0")
    refused(gf.build([ARCH], [("t", (2**31, 2**31, 2**31), "F32", 0)], data=b""), "2**62 elements")
    refused(gf.build([ARCH], [("t", (4,), 99, 0)]), "tensor 't' has unknown ggml type id 99")
    message = refused(gf.build([ARCH], [("blk.0.ffn_up.weight", (256,), "Q3_K", 0)], data=bytes(110)),
                      "tensor 'blk.0.ffn_up.weight' is of type Q3_K")
    assert "Q4_1" in message and "Q5_K" in message and "Q6_K" in message  # the supported types are listed
    refused(gf.build([ARCH], [("t", (256,), "Q2_K", 0)], data=bytes(84)), "of type Q2_K")
    refused(gf.build([ARCH], [("t", (128, 2), "Q4_K", 0)], data=bytes(144)), "whole blocks of 256", "has 128")
    refused(gf.build([ARCH], [("t", (768, 2), "Q6_K", 0)], data=bytes(1259)), "end past the end of the file")
    refused(gf.build([ARCH], [("t", (33, 2), "Q8_0", 0)], data=bytes(136)), "whole blocks of 32", "has 33")
    refused(gf.build([ARCH], [("n" * 64, (4,), "F32", None)]), "64 bytes long; the limit is 63")
    refused(gf.build([ARCH], [("", (4,), "F32", None)]), "empty name")
    refused(gf.build([ARCH], [("t", (4,), "F32", None), ("t", (4,), "F32", None)]), "'t' appears twice")
    refused(gf.build([ARCH], [("t", (64,), "F32", 0)], data=bytes(255)), "end past the end of the file")
    refused(gf.build([ARCH], [("a", (16,), "F32", 0), ("b", (4,), "F32", 32)]), "'a' [0, 64) and 'b' [32, 48) overlap")
    # without the file size, a tensor past the prefix is fine: only the file can say where it ends
    header = parse_gguf_header(gf.build([ARCH], [("t", (64,), "F32", 0)], data=b""), None, "x")
    assert header.tensors["t"].nbytes == 256 and header.data_size == 256


def test_messages_are_one_short_line():
    """A 1 MB tensor name or key is cut in the message (a message is shown in a banner)."""
    message = refused(gf.build([("k" * 60_000, gf.BOOL, 3)]), "bool stored as 3")
    assert len(message) < 300


# ------------------------------------------------------------------------------ metadata -> config


def header_of(kvs, tensors):
    return parse(gf.build(kvs, tensors))


def test_llama_config_and_tensor_map():
    """The config dict from llama metadata (shortest f32 decimals, tied embeddings without
    output.weight) and every tensor mapped to its HF name, Q/K with the row order to undo."""
    header = header_of(gf.llama_metadata(), gf.llama_tensors())
    config = gguf_config(header)
    assert config == {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "rope_scaling": None,
        "max_position_embeddings": 2048, "vocab_size": 32, "tie_word_embeddings": True, "attention_bias": False,
        "mlp_bias": False, "eos_token_id": 2}
    mapping = gguf_tensor_map(header, config)
    assert mapping["blk.1.attn_output.weight"].hf_name == "model.layers.1.self_attn.o_proj.weight"
    assert mapping["blk.0.ffn_norm.weight"].hf_name == "model.layers.0.post_attention_layernorm.weight"
    assert mapping["output_norm.weight"].hf_name == "model.norm.weight"
    assert mapping["token_embd.weight"].shape == (32, 64)
    assert mapping["blk.0.attn_q.weight"].unpermute_heads == 4 and mapping["blk.0.attn_k.weight"].unpermute_heads == 2
    assert mapping["blk.0.attn_v.weight"].row_order() is None
    assert gguf_config(header_of(gf.llama_metadata(), gf.llama_tensors(untied=True)))["tie_word_embeddings"] is False


def test_qwen2_and_qwen3_configs():
    """qwen2 (q/k/v biases, no permutation) and qwen3 (key_length head_dim, q/k norms) map their
    extra tensors; neither is permuted."""
    def metadata(arch, **extra):
        kvs = [(k.replace("llama", arch), t, v.replace("llama", arch) if t == gf.STR else v)
               for k, t, v in gf.llama_metadata()]
        return kvs + [(k, t, v) for k, (t, v) in extra.items()]

    biases = [("blk.{i}.attn_q.bias", (64,)), ("blk.{i}.attn_k.bias", (32,)), ("blk.{i}.attn_v.bias", (32,))]
    header = header_of(metadata("qwen2"), gf.llama_tensors(extra=biases))
    config = gguf_config(header)
    assert config["model_type"] == "qwen2" and config["use_sliding_window"] is False
    mapping = gguf_tensor_map(header, config)
    assert mapping["blk.1.attn_k.bias"].hf_name == "model.layers.1.self_attn.k_proj.bias"
    assert all(m.unpermute_heads is None for m in mapping.values())

    norms = [("blk.{i}.attn_q_norm.weight", (40,)), ("blk.{i}.attn_k_norm.weight", (40,))]
    header = header_of(metadata("qwen3", **{"qwen3.attention.key_length": (gf.U32, 40),
                                            "qwen3.attention.value_length": (gf.U32, 40)}),
                       gf.llama_tensors(q=160, kv=80, extra=norms))
    config = gguf_config(header)
    assert config["model_type"] == "qwen3" and config["head_dim"] == 40
    mapping = gguf_tensor_map(header, config)
    assert mapping["blk.0.attn_q_norm.weight"].hf_name == "model.layers.0.self_attn.q_norm.weight"
    assert mapping["blk.0.attn_q.weight"].shape == (160, 64)


def test_config_refusals():
    """Unsupported architectures, missing keys, wrong key types, KV heads that do not divide the
    heads, partial rotary, unsupported rope scaling, and missing / unknown / misshapen tensors."""
    def fails(kvs, tensors, needle, tensor_map=False):
        header = header_of(kvs, tensors)
        with pytest.raises(ModelFormatError, match=needle):
            gguf_tensor_map(header, gguf_config(header)) if tensor_map else gguf_config(header)

    tensors = gf.llama_tensors()
    fails(gf.llama_metadata(**{"general.architecture": (gf.STR, "gemma2")}), tensors, "'gemma2', which is not")
    fails(gf.llama_metadata(**{"llama.block_count": (None, None)}), tensors, "llama.block_count is missing")
    fails(gf.llama_metadata(**{"llama.block_count": (gf.STR, "2")}), tensors, "must be an integer, got a str")
    fails(gf.llama_metadata(**{"llama.attention.head_count_kv": (gf.U32, 3)}), tensors, "does not divide")
    fails(gf.llama_metadata(**{"llama.rope.dimension_count": (gf.U32, 8)}), tensors, "partial rotary")
    fails(gf.llama_metadata(**{"llama.rope.scaling.type": (gf.STR, "yarn")}), tensors, "'yarn'; only linear")
    fails(gf.llama_metadata(**{"tokenizer.ggml.eos_token_id": (gf.U32, 32)}), tensors, "outside the vocabulary")
    fails(gf.llama_metadata(), tensors[:-1], "tensors missing: blk.1.ffn_down.weight", tensor_map=True)
    fails(gf.llama_metadata(), tensors + [("blk.0.mystery.weight", (4,), "F32", None)],
          "does not have: 'blk.0.mystery.weight'", tensor_map=True)
    bad_shape = [t if t[0] != "blk.1.attn_k.weight" else (t[0], (64, 48), "F32", None) for t in tensors]
    fails(gf.llama_metadata(), bad_shape, r"blk.1.attn_k.weight has shape \[48, 64\], but the metadata gives "
          r"\[32, 64\]", tensor_map=True)


def test_linear_and_llama3_rope_scaling():
    """Linear rope scaling comes from rope.scaling.*; Llama 3's comes back from rope_freqs.weight's
    factors (as llama.cpp's converter computes them) to transformers' five parameters."""
    kvs = gf.llama_metadata(**{"llama.rope.scaling.type": (gf.STR, "linear"),
                               "llama.rope.scaling.factor": (gf.F32, 4.0)})
    assert gguf_config(header_of(kvs, gf.llama_tensors()))["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}

    for head_dim, theta, params in ((64, 500000.0, (32.0, 1.0, 4.0, 8192)), (128, 500000.0, (8.0, 1.0, 4.0, 8192)),
                                    (16, 10000.0, (4.0, 1.0, 8.0, 2048))):
        factors = llama3_factors(head_dim, theta, *params)
        assert llama3_rope_scaling(factors, head_dim, theta) == {
            "rope_type": "llama3", "factor": params[0], "low_freq_factor": params[1], "high_freq_factor": params[2],
            "original_max_position_embeddings": params[3]}
    factors = llama3_factors(64, 500000.0, 32.0, 1.0, 4.0, 8192)
    factors[-3] *= 1.5
    with pytest.raises(ModelFormatError, match="do not follow Llama 3's rope scaling"):
        llama3_rope_scaling(factors, 64, 500000.0)
    header = header_of(gf.llama_metadata(), gf.llama_tensors() + [("rope_freqs.weight", (8,), "F32", None)])
    with pytest.raises(ValueError, match="pass them as rope_freqs"):
        gguf_config(header)
    config = gguf_config(header, rope_freqs=llama3_factors(16, 500000.0, 8.0, 1.0, 16.0, 1024))
    assert config["rope_scaling"]["original_max_position_embeddings"] == 1024
    assert "rope_freqs.weight" not in gguf_tensor_map(header, config)


@pytest.mark.parametrize("heads,head_dim,cols", [(9, 64, 5), (3, 64, 1), (1, 2, 3), (4, 128, 2)])
def test_row_order_undoes_llama_cpps_permutation(heads, head_dim, cols):
    """unpermute_row_order inverts llama.cpp's LlamaModel.permute (reshape(n_head, 2, d/2).swapaxes)
    and equals transformers' _reverse_permute_weights, for weights and biases."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = heads * head_dim
    hf = np.random.default_rng(heads).standard_normal((rows, cols)).astype(np.float32)
    llama_cpp = hf.reshape(heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(rows, cols)
    assert np.array_equal(hf[permute_row_order(heads, rows)], llama_cpp)
    assert np.array_equal(llama_cpp[unpermute_row_order(heads, rows)], hf)
    processor = LlamaTensorProcessor(config={"num_attention_heads": heads, "num_key_value_heads": heads})
    assert np.array_equal(processor._reverse_permute_weights(llama_cpp, heads, heads), hf)
    bias = hf[:, 0]
    assert np.array_equal(llama_cpp[:, 0][unpermute_row_order(heads, rows)], bias)
    with pytest.raises(ValueError):
        unpermute_row_order(3, 10)


def test_smollm2_config_matches_transformers():
    """The real file's config: SmolLM2-135M's shape, and every key transformers reads from the same
    GGUF (load_gguf_checkpoint) has the same value."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    header = read_gguf_header(gf.smollm2_gguf())
    config = gguf_config(header)
    assert config == {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
        "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 100000.0, "rope_scaling": None,
        "max_position_embeddings": 8192, "vocab_size": 49152, "tie_word_embeddings": True, "attention_bias": False,
        "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    theirs = load_gguf_checkpoint(str(gf.smollm2_gguf()), return_tensors=False)["config"]
    for key, value in theirs.items():
        if key in config:
            assert config[key] == pytest.approx(value, rel=1e-6) if isinstance(value, float) else config[key] == value
    mapping = gguf_tensor_map(header, config)
    assert len(mapping) == 272 and sum(m.unpermute_heads is not None for m in mapping.values()) == 60
    assert MAX_HEADER_BYTES > header.header_len
