"""The fuzz properties of the parsers and validators that take untrusted input: each is a function
of one hypothesis case that returns how the case ended ('valid', 'refused', ...) and fails on
anything but the library's own typed error. tests/test_fuzz.py runs them 10,000 cases each in CI;
tools/fuzz.py runs the same functions with more cases. What each property covers: tests/test_fuzz.py.
"""


from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.config import GELU_FORMS, SUPPORTED_WEIGHT_DTYPES, GPT2Config, expected_tensor_shapes, match_tensors  # noqa: E402
from app.safetensors import DTYPE_SIZES, MAX_HEADER_LEN, ModelFormatError, parse_header, parse_header_length  # noqa: E402
from app.sampling import SAMPLING_KEYS, Sampler, SamplingParams, generation_options  # noqa: E402
from app.tokenizer import GPT2Tokenizer, StreamingDetokenizer  # noqa: E402

FILE = "model.safetensors"
MAX_MESSAGE = 1000  # an error message is shown in a banner: one line, not a wall of digits


# ---------------------------------------------------------------------------------------------
# choices from bytes


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
        return ((self.byte() << 8) | self.byte()) % n

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def left(self) -> int:
        return len(self.data) - self.i


def check_error(exc: BaseException, kind=ValueError, needle: str | None = None) -> str:
    """The error is the library's typed error with a usable message."""
    assert isinstance(exc, kind), f"{type(exc).__name__} is not a {kind.__name__}: {exc!r}"[:2000]
    message = str(exc)
    assert message.strip(), f"empty message from {type(exc).__name__}"
    assert "\n" not in message, f"message on several lines: {message[:500]!r}"
    assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters: {message[:300]!r}..."
    if needle is not None:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# Values a JSON file or a JS caller can hand over. Integers stay within Python's 4,300-digit limit
# for int <-> str conversion, as json.loads does (longer numbers are tested as text, below).
HUGE = 10**4000
JSON_VALUES = [
    None, True, False, 0, 1, -1, 2, 3, 4, 8, 64, 1024, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
    2**64, 2**64 + 1, -(2**63), 10**30, 10**308, 10**400, HUGE, -HUGE,
    0.0, -0.0, 0.5, 1.0, 1.5, 2.0, 0.999999, 1.0000001, 1e-300, 5e-324, 1e308, -1e308, 1e-5, -0.5,
    float("inf"), float("-inf"), float("nan"),
    "", "0", "1", " ", "F32", "f32", "F16", "BF16", "I8", "Q4", "F4", "gpt2", "GPT2", "llama", "gelu", "gelu_new",
    "<img src=x onerror=window.__xss=1>", "\ud800", "\x00", "\n", "é", "🙂", "a" * 300, "null", "true",
    [], [0], [1], [-1], [2, 2], [1.5], [None], ["a"], [[1]], [0, 0], [0, 2**64], [HUGE, HUGE], [True],
    {}, {"a": 1}, {"__metadata__": {}}, {"dtype": "F32"}, {"": None},
]


def json_value(draw: Draw, depth: int = 0):
    """Any JSON value: one of JSON_VALUES, or a small list/object of them."""
    kind = draw.below(8)
    if kind == 6 and depth < 2:
        return [json_value(draw, depth + 1) for _ in range(draw.below(4))]
    if kind == 7 and depth < 2:
        return {draw.pick(["a", "", "dtype", "shape", "n_layer", "\ud800", "<b>"]): json_value(draw, depth + 1)
                for _ in range(draw.below(3))}
    return draw.pick(JSON_VALUES)


def text_damage(draw: Draw, raw: bytes) -> bytes:
    """Byte-level damage to a JSON document."""
    data = bytearray(raw)
    for _ in range(draw.below(3)):
        kind = draw.below(10)
        i = draw.below(len(data) + 1) if len(data) < 65536 else draw.below(65536)
        if kind == 0:
            del data[i:]  # truncated
        elif kind == 1 and data:
            data[min(i, len(data) - 1)] = draw.byte()  # a flipped byte
        elif kind == 2:
            data[i:i] = draw.pick([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"])
        elif kind == 3:  # deep nesting: the C JSON parser gives up with RecursionError
            depth = draw.pick([3, 200, 5000])
            data[i:i] = b"[" * depth + b"]" * depth
        elif kind == 4:  # a number past Python's 4,300-digit int conversion limit
            data[i:i] = b"1" * 5000
        elif kind == 5:  # duplicate keys
            data[:1] = b'{"k": 1, "k": 2, ' if data[:1] == b"{" else data[:1]
        elif kind == 6:
            data[i:i] = draw.pick([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"0x10", b"'a'", b"\x00"])
        elif kind == 7:
            data += b" " * draw.below(9)  # padding, as safetensors writers do
        elif kind == 8:
            data = bytearray(draw.pick([b"[]", b"null", b"1", b'"x"', b"", b"{", b"\xef\xbb\xbf{}", b"{}"]))
        else:
            data[i:i] = draw.pick([b",", b"}", b"]", b'"', b"\\", b":", b" "])
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# safetensors header parser + validator


TINY = GPT2Config(n_layer=1, n_head=1, n_embd=2, n_positions=2, vocab_size=3)
TINY_SHAPES = expected_tensor_shapes(TINY)
DTYPE_CHOICES = sorted(DTYPE_SIZES) + ["F32"] * 6 + ["F16"] * 3 + ["Q4", "F4", "f32", "", "F32 ", "INT8"]


def _nbytes(entry) -> int | None:
    try:
        n = DTYPE_SIZES[entry["dtype"]]
        for d in entry["shape"]:
            if not (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**20):
                return None
            n *= d
        return n
    except (KeyError, TypeError):
        return None


def _relayout(header: dict) -> int:
    """Give well-formed entries consecutive offsets; the data size."""
    offset = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        n = _nbytes(entry)
        if n is not None:
            entry["data_offsets"] = [offset, offset + n]
            offset += n
    return offset


def safetensors_case(data: bytes) -> bytes:
    """A model.safetensors file from fuzz bytes: raw bytes, or a mutated valid tiny GPT-2."""
    draw = Draw(data)
    mode = draw.below(8)
    if mode == 0:  # arbitrary bytes
        return data[1:]
    if mode == 1:  # arbitrary bytes behind a plausible header length
        rest = data[2:]
        return struct.pack("<Q", max(0, len(rest) - draw.below(4))) + rest

    header = {}
    names = list(TINY_SHAPES)
    if draw.below(4) == 0:
        names = ["transformer." + n for n in names]
    for name in names:
        header[name] = {"dtype": "F32", "shape": list(TINY_SHAPES[name.removeprefix("transformer.")]),
                        "data_offsets": [0, 0]}
    if draw.below(2):
        header = {"__metadata__": {"format": "pt"}, **header}
    data_size = _relayout(header)
    relayout = draw.below(4) != 0

    for _ in range(1 + draw.below(4)):  # JSON-level mutations
        tensors = [n for n in header if n != "__metadata__"]
        kind = draw.pick([8, 4, 5, 7, 6, 10, 9, 0, 1, 2, 3, 4, 5, 7, 8, 11])
        name = draw.pick(tensors) if tensors else "wte.weight"
        entry = header.get(name)
        if kind == 0:
            header[name] = json_value(draw)
        elif kind in (1, 2) and isinstance(entry, dict):
            entry[draw.pick(["dtype", "shape", "data_offsets"])] = json_value(draw)
        elif kind == 3 and isinstance(entry, dict):
            entry.pop(draw.pick(["dtype", "shape", "data_offsets"]), None)
        elif kind == 4 and isinstance(entry, dict):
            entry["dtype"] = draw.pick(DTYPE_CHOICES)
        elif kind == 5 and isinstance(entry, dict) and isinstance(entry.get("shape"), list):
            shape = list(entry["shape"])
            op = draw.below(6)
            if op == 0:
                shape = shape[::-1]
            elif op == 1:
                shape.append(draw.pick([0, 1, 2, 2**32, 2**64, HUGE]))
            elif op == 2 and shape:
                shape.pop()
            elif op == 3 and shape:
                j = draw.below(len(shape))
                shape[j] = draw.pick([0, 1, 3, -1, 2**31, 2**63, 2**64 + 1, HUGE, 1.0, True, "2"])
            else:
                shape = [draw.pick([0, 1, 2, 3])] * draw.below(5)
            entry["shape"] = shape
        elif kind == 6 and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list):
            offsets = list(entry["data_offsets"])
            if offsets and isinstance(offsets[-1], int):
                j = draw.below(len(offsets))
                delta = draw.pick([-9, -4, -1, 1, 2, 4, 8, 2**32, 2**63, 2**64, HUGE])
                if isinstance(offsets[j], int) and not isinstance(offsets[j], bool):
                    offsets[j] += delta
            entry["data_offsets"] = offsets
        elif kind == 7 and tensors:
            del header[name]
        elif kind == 8 and isinstance(entry, dict):  # the same tensor under another name
            other = name[len("transformer."):] if name.startswith("transformer.") else "transformer." + name
            renamed = draw.pick([other, name + "x", "h.1." + name.split(".")[-1], "<img src=x>", "\ud800", ""])
            header[renamed] = dict(entry)
        elif kind == 9:
            header["__metadata__"] = json_value(draw)
        elif kind == 10 and len(tensors) > 1:
            a, b = draw.pick(tensors), draw.pick(tensors)
            if isinstance(header[a], dict) and isinstance(header[b], dict):
                header[a]["data_offsets"], header[b]["data_offsets"] = (header[b].get("data_offsets"),
                                                                        header[a].get("data_offsets"))
        else:
            data_size = max(0, data_size + draw.pick([-8, -4, -1, 1, 4, 8, 100]))
    if relayout:
        data_size = _relayout(header)

    try:
        text = json.dumps(header, ensure_ascii=draw.below(2) == 0).encode("utf-8", "surrogatepass")
    except ValueError:  # a non-finite float is still valid Python JSON output; this is not reached
        text = b"{}"
    if draw.below(3) == 0:
        text = text_damage(draw, text)
    length = len(text)
    how = draw.below(10)
    if how == 1:
        length += draw.pick([-8, -1, 1, 8, 100])
    elif how == 2:
        length = draw.pick([0, 1, 2, 2**63, 2**64 - 1, MAX_HEADER_LEN + 1, MAX_HEADER_LEN])
    file = struct.pack("<Q", max(0, min(length, 2**64 - 1))) + text + bytes(data_size)
    if how == 3:
        file = file[: draw.below(len(file) + 1)]
    elif how == 4:
        size = str(draw.pick(JSON_VALUES)).encode("utf-8", "surrogatepass")
        file = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize " + size
    return file


def _check_parsed(parsed, file_size, header_len):
    assert parsed.header_len == header_len
    position = 0
    for t in sorted(parsed.tensors.values(), key=lambda t: t.begin):
        assert t.dtype in DTYPE_SIZES and all(isinstance(d, int) and d >= 0 for d in t.shape)
        assert t.nbytes == math.prod(t.shape) * DTYPE_SIZES[t.dtype]
        assert t.begin == position, "tensors must tile the data section"
        assert t.data_offset == 8 + header_len + t.begin
        position = t.end
    if file_size is not None:
        assert position == parsed.data_size == file_size - 8 - header_len


def check_safetensors(data: bytes) -> str:
    """Property: parse + validate a file; only ModelFormatError (one line, names the file)."""
    file = safetensors_case(data)
    try:
        n = parse_header_length(file[:64], len(file), FILE)
    except Exception as exc:  # noqa: BLE001 - checked: only ModelFormatError may come out
        check_error(exc, ModelFormatError, FILE)
        return "bad length"
    outcome = "?"
    for size in (len(file), None):
        try:
            parsed = parse_header(file[8:8 + n], size, FILE)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, ModelFormatError, FILE)
            outcome = "bad header"
            continue
        _check_parsed(parsed, size, n)
        try:
            mapping, notices = match_tensors(TINY, parsed.tensors, FILE)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, ModelFormatError, FILE)
            outcome = "wrong tensors"
            continue
        assert set(TINY_SHAPES) <= set(mapping)
        for name, info in mapping.items():
            assert tuple(info.shape) == TINY_SHAPES.get(name, (TINY.vocab_size, TINY.n_embd))
            assert info.dtype in SUPPORTED_WEIGHT_DTYPES
        assert all(isinstance(n, str) and "\n" not in n for n in notices)
        outcome = "valid"
    return outcome




# ---------------------------------------------------------------------------------------------
# config.json


VALID_CONFIG = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 16, "n_ctx": 16,
                "vocab_size": 10, "n_inner": None, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
                "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 1, "scale_attn_weights": True,
                "architectures": ["GPT2LMHeadModel"]}
CONFIG_KEYS = ["model_type", "n_layer", "n_head", "n_embd", "n_positions", "n_ctx", "vocab_size", "n_inner",
               "layer_norm_epsilon", "activation_function", "tie_word_embeddings", "bos_token_id", "eos_token_id",
               "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention", "architectures",
               "torch_dtype", "_name_or_path"]
CONFIG_SPECIAL = {  # values that are valid for one key, to reach the checks behind it
    "n_head": [1, 2, 3, 4, 8], "n_embd": [2, 6, 8, 9], "n_positions": [1, 16, 2**40], "activation_function":
    sorted(GELU_FORMS), "model_type": ["gpt2"], "n_inner": [None, 1, 32], "bos_token_id": [0, 9, 10, [1, 2], []],
    "eos_token_id": [0, 9, 10, [], [3]], "layer_norm_epsilon": [1e-5, 1, 1e300]}


def config_case(data: bytes):
    """(config dict or JSON text, how to read it) from fuzz bytes."""
    draw = Draw(data)
    mode = draw.below(4)
    config = dict(VALID_CONFIG) if draw.below(8) else {}
    for _ in range(draw.below(5)):
        key = draw.pick(CONFIG_KEYS)
        action = draw.below(6)
        if action == 0:
            config.pop(key, None)
        elif action in (1, 2) and key in CONFIG_SPECIAL:
            config[key] = draw.pick(CONFIG_SPECIAL[key])
        else:
            config[key] = json_value(draw)
    if mode == 0:
        return config, "dict"
    text = json.dumps(config, ensure_ascii=draw.below(2) == 0).encode("utf-8", "surrogatepass")
    if mode >= 2:
        text = text_damage(draw, text)
    if mode == 3 and draw.below(4) == 0:
        text = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n"
    return (text if draw.below(2) else text.decode("utf-8", "surrogateescape")), "json"


def check_config(data: bytes) -> str:
    """Property: any config -> a consistent GPT2Config or a ModelFormatError naming config.json."""
    config, how = config_case(data)
    try:
        cfg = GPT2Config.from_dict(config) if how == "dict" else GPT2Config.from_json(config)
    except Exception as exc:  # noqa: BLE001 - checked: only ModelFormatError may come out
        check_error(exc, ModelFormatError, "config.json")
        return "refused"
    for key in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size"):
        value = getattr(cfg, key)
        assert type(value) is int and value > 0, (key, value)
    assert cfg.n_embd % cfg.n_head == 0 and cfg.head_dim * cfg.n_head == cfg.n_embd
    assert cfg.n_inner is None or (type(cfg.n_inner) is int and cfg.n_inner > 0)
    eps = cfg.layer_norm_epsilon
    assert type(eps) is float and math.isfinite(eps) and eps > 0
    assert cfg.gelu in ("tanh", "erf") and type(cfg.tie_word_embeddings) is bool
    for token in (cfg.bos_token_id, cfg.eos_token_id):
        assert token is None or (type(token) is int and 0 <= token < cfg.vocab_size)
    assert all(isinstance(n, str) and n and "\n" not in n for n in cfg.notices)
    # what tools write back reads the same
    again = GPT2Config.from_dict(json.loads(json.dumps(cfg.to_dict())), cfg.filename)
    assert again == cfg, (again, cfg)
    if cfg.n_layer <= 4 and cfg.n_embd * max(cfg.vocab_size, cfg.n_positions, cfg.d_mlp) <= 10**7:
        assert len(expected_tensor_shapes(cfg)) == 12 * cfg.n_layer + 4 + (not cfg.tie_word_embeddings)
    return "valid"




# ---------------------------------------------------------------------------------------------
# tokenizer: GPT-2 BPE round trip and streaming


TOKENIZER_DIR = ROOT / "weights" / "gpt2-tokenizer"
_TOKENIZER: list = []


def gpt2_tokenizer() -> GPT2Tokenizer:
    if not _TOKENIZER:
        _TOKENIZER.append(GPT2Tokenizer.from_files(TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt"))
    return _TOKENIZER[0]


# Any code point except surrogates (st.characters(codec="utf-8")); 24 control characters that
# hypothesis draws often are swapped for strings that tokenizers get wrong.
SLOTS = [chr(c) for c in (*range(0x01, 0x09), *range(0x0E, 0x1C), 0x7F, *range(0x80, 0x84))]
FRAGMENTS = ["  ", "\r\n", "\u00a0", "\u3000", "'s", "'LL", "<|endoftext|>", "<|", "٣", "½", "\u0301", "\u200d",
             "\ufe0f", "😀", "👨\u200d👩", "🇫🇷", "\ufeff", "\x00", "中文", "ǅ", "\U0001e5d0", " 123", "\t\t", "é",
             "\u2028", "'ve", "𝔸"]
assert len(SLOTS) == len(FRAGMENTS)
_TO_FRAGMENT = {ord(s): f for s, f in zip(SLOTS, FRAGMENTS)}
TEXT = st.text(st.characters(codec="utf-8"), max_size=24).map(lambda t: t.translate(_TO_FRAGMENT))
BAD_IDS = [-1, 50257, 50258, 2**70, -(2**70), None, 1.5, 1.0, "7", [1], float("nan")]


def check_tokenizer(text: str) -> str:
    """Property: decode(encode(s)) == s, streaming pieces concatenate to it, bad ids are ValueError."""
    tok = gpt2_tokenizer()
    ids = tok.encode(text)
    assert all(type(i) is int and 0 <= i < 50257 for i in ids)
    assert tok.decode(ids) == text
    special = tok.encode(text, allow_special=True)
    assert tok.decode(special) == text
    assert (special == ids) == ("<|endoftext|>" not in text)
    detok = StreamingDetokenizer(tok)
    pieces = []
    for i in ids:
        pieces.append(detok.push(i))
        assert len(detok.pending_bytes) <= 3
    assert "".join(pieces) + detok.flush() == text and detok.invalid_tail_bytes == 0
    # a corrupted id list: a ValueError that says which id, never another exception
    bad = BAD_IDS[len(text) % len(BAD_IDS)]
    where = len(ids) // 2
    corrupted = ids[:where] + [bad] + ids[where:]
    for fn in (tok.decode, tok.decode_bytes, lambda c: [StreamingDetokenizer(tok).push(i) for i in c]):
        try:
            fn(corrupted)
        except Exception as exc:  # noqa: BLE001 - checked: only ValueError may come out
            check_error(exc, ValueError)
        else:
            raise AssertionError(f"decoding {bad!r} at position {where} did not fail")
    return "ok"




# ---------------------------------------------------------------------------------------------
# sampler parameters


OPTION_KEYS = list(SAMPLING_KEYS) + ["prompt_ids", "return_logits", "bogus", "", "maxNewTokens"]
OPTION_SPECIAL = {  # valid values, to reach the checks behind the first key
    "max_new_tokens": [1, 5, 200, 1.0], "temperature": [0, 0.7, 1, 2.5, 1e-300, 1e300], "top_k": [0, 1, 40, 10**6],
    "top_p": [1, 0.5, 1e-300, 0.9999999], "repetition_penalty": [1, 1.3, 0.5, 1e-300, 1e300],
    "seed": [None, 0, 42, 2**64 - 1, 7.0], "stop": [["\n"], [], None, ["a", "bb"]], "stop_on_eos": [True, False]}
LOGITS = [0.0, 2.5, -1.0, float("-inf"), 1e4, -1e4, 0.0]


def sampling_case(data: bytes):
    draw = Draw(data)
    opts = {}
    for _ in range(draw.below(6)):
        key = draw.pick(OPTION_KEYS)
        opts[key] = draw.pick(OPTION_SPECIAL[key]) if key in OPTION_SPECIAL and draw.below(2) else json_value(draw)
    return opts, draw.below(2) == 0


def check_sampling(data: bytes) -> str:
    """Property: options -> a SamplingParams that samples a valid token, or a ValueError."""
    opts, direct = sampling_case(data)
    try:
        if direct:
            params = SamplingParams(**{k: v for k, v in opts.items() if k in SAMPLING_KEYS})
        else:
            params = SamplingParams(**{k: v for k, v in generation_options(opts).items()
                                       if k in SAMPLING_KEYS})
    except Exception as exc:  # noqa: BLE001 - checked: only ValueError may come out
        message = str(exc)
        assert isinstance(exc, ValueError) and message.strip(), f"{type(exc).__name__}: {exc!r}"[:2000]
        assert "\n" not in message or "stop" in message, message[:300]
        return "refused"
    assert type(params.max_new_tokens) is int and params.max_new_tokens >= 1
    assert type(params.top_k) is int and params.top_k >= 0
    for value in (params.temperature, params.top_p, params.repetition_penalty):
        assert type(value) is float and math.isfinite(value)
    assert params.temperature >= 0 and 0 < params.top_p <= 1 and params.repetition_penalty > 0
    assert params.seed is None or (type(params.seed) is int and 0 <= params.seed < 2**64)
    assert isinstance(params.stop, tuple) and all(isinstance(s, str) and s for s in params.stop)
    assert type(params.stop_on_eos) is bool
    # the sampler takes any valid settings: a finite token, with or without seen tokens
    sampler = Sampler(params)
    for seen in ((), (1, 1, 4)):
        token = sampler.sample(LOGITS, seen)
        assert type(token) is int and 0 <= token < len(LOGITS) and LOGITS[token] != float("-inf"), token
    return "valid"




# ---------------------------------------------------------------------------------------------
# for tools/fuzz.py: name -> (strategy, property)

PROPERTIES = {
    "safetensors": (st.binary(max_size=48), check_safetensors),
    "config": (st.binary(max_size=32), check_config),
    "tokenizer": (TEXT, check_tokenizer),
    "sampling": (st.binary(max_size=24), check_sampling),
}
