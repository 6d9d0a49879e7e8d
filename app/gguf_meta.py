"""GGUF metadata -> what the engine needs: a config.json dict, the tensor map GGUF -> Hugging Face
and the Q/K row order to undo. Standard library only (CPython and Pyodide).

    header = parse_gguf_header(...)                       # app/gguf.py
    config = gguf_config(header)                          # a config.json-style dict
    tensors = gguf_tensor_map(header, config)             # GGUF name -> TensorMapping
    # a file with rope_freqs.weight (Llama 3.1+): read its floats first, then
    config = gguf_config(header, rope_freqs=[...])

Architectures (general.architecture): llama (SmolLM2, Llama 3.x, TinyLlama, Mistral as llama.cpp
writes it), qwen2 and qwen3. The keys are llama.cpp's (gguf-py's constants.py), prefixed with the
architecture: `llama.embedding_length`, `qwen3.attention.key_length`, ...

llama.cpp's converter permutes the rows of Q and K of `llama` models (LlamaModel.permute in
convert_hf_to_gguf.py): within each head, HF's rotate-half layout [x0..x(d/2-1), y0..y(d/2-1)]
becomes the interleaved [x0, y0, x1, y1, ...] its rope kernel wants. transformers undoes it on load
(LlamaTensorProcessor._reverse_permute_weights); so does `unpermute_row_order`. qwen2 and qwen3 use
llama.cpp's NeoX rope and are stored unpermuted.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .errors import ModelFormatError
from .safetensors import brief

# general.architecture -> (config.json model_type, architectures entry)
ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}
PERMUTED_ARCHITECTURES = ("llama",)

# blk.N.<GGUF leaf> -> model.layers.N.<HF leaf>
LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# the weights every layer has
LAYER_WEIGHTS = ("attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
# rope_freqs.weight holds Llama 3's rope scaling as per-frequency factors: it is config, not a weight
ROPE_FREQS = "rope_freqs.weight"

_F32 = struct.Struct("<f")


@dataclass(frozen=True)
class TensorMapping:
    gguf_name: str
    hf_name: str
    shape: tuple  # the Hugging Face shape: nn.Linear [out, in], the GGUF dims reversed
    unpermute_heads: int | None = None  # undo llama.cpp's Q/K permutation with this many heads

    def row_order(self) -> list | None:
        """HF row r is GGUF row order[r] (None: rows as stored)."""
        if self.unpermute_heads is None:
            return None
        return unpermute_row_order(self.unpermute_heads, self.shape[0])


def unpermute_row_order(n_head: int, rows: int) -> list:
    """The row order that undoes llama.cpp's Q/K permutation: HF row r = GGUF row order[r].

    llama.cpp stores head h's row h*d + 2*i + j (d = rows / n_head, i < d/2, j in {0, 1}) from HF's
    row h*d + j*d/2 + i. A weight [rows, cols] or a bias [rows] is permuted the same way; rows are
    whole quantization blocks, so packed rows of the block formats move as they are.
    """
    if n_head <= 0 or rows % (2 * n_head):
        raise ValueError(f"{rows} rows do not split into {n_head} heads of an even size")
    head_dim = rows // n_head
    half = head_dim // 2
    order = []
    for head in range(n_head):
        base = head * head_dim
        order.extend(base + 2 * i for i in range(half))
        order.extend(base + 2 * i + 1 for i in range(half))
    return order


def permute_row_order(n_head: int, rows: int) -> list:
    """llama.cpp's own permutation (HF -> GGUF), the inverse of unpermute_row_order."""
    order = unpermute_row_order(n_head, rows)
    inverse = [0] * rows
    for hf_row, gguf_row in enumerate(order):
        inverse[gguf_row] = hf_row
    return inverse


def shortest_f32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (1e-05, not 9.999999747378752e-06)."""
    if not math.isfinite(value):
        return value
    bits = _F32.pack(value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _F32.pack(candidate) == bits:
            return candidate
    return value


class _Meta:
    """Typed access to one architecture's keys, with messages naming the file and the key."""

    def __init__(self, header):
        self.header = header
        self.metadata = header.metadata
        self.types = header.metadata_types
        self.filename = header.filename
        self.arch = header.metadata.get("general.architecture")

    def _fail(self, key: str, what: str):
        return ModelFormatError(f"{self.filename}: metadata {key} {what}")

    def integer(self, key: str, default=None, minimum: int = 1):
        if key not in self.metadata:
            if default is None:
                raise self._fail(key, "is missing")
            return default
        value, kind = self.metadata[key], self.types[key]
        if kind.startswith("array["):  # per-layer values (some converters): fine while all are equal
            if not value or len({repr(v) for v in value}) != 1:
                raise self._fail(key, f"differs between layers ({brief(value)}); this engine needs one value")
            value, kind = value[0], kind[6:-1]
        if kind not in ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"):
            raise self._fail(key, f"must be an integer, got a {kind}")
        if value < minimum:
            raise self._fail(key, f"is {value}; it must be at least {minimum}")
        return value

    def number(self, key: str, default=None, positive: bool = True) -> float:
        if key not in self.metadata:
            if default is None:
                raise self._fail(key, "is missing")
            return default
        value, kind = self.metadata[key], self.types[key]
        if kind not in ("f32", "f64", "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"):
            raise self._fail(key, f"must be a number, got a {kind}")
        value = float(value)
        if not math.isfinite(value) or (positive and value <= 0):
            raise self._fail(key, f"is {value}; it must be a finite number above 0")
        return shortest_f32(value) if kind == "f32" else value

    def string(self, key: str, default=None) -> str | None:
        if key not in self.metadata:
            return default
        if self.types[key] != "str":
            raise self._fail(key, f"must be a string, got a {self.types[key]}")
        return self.metadata[key]

    def token_id(self, key: str, vocab_size: int):
        if key not in self.metadata:
            return None
        value = self.integer(key, minimum=0)
        if value >= vocab_size:
            raise self._fail(key, f"is {value}, outside the vocabulary of {vocab_size} tokens")
        return value


def architecture(header) -> str:
    arch = header.metadata.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFormatError(f"{header.filename}: metadata general.architecture is missing or not a string")
    if arch not in ARCHITECTURES:
        raise ModelFormatError(
            f"{header.filename}: general.architecture is {brief(arch)}, which is not supported; "
            f"supported: {', '.join(ARCHITECTURES)}")
    return arch


def rope_freqs_tensor(header):
    """The tensor of Llama 3's rope factors (read its floats and pass them to gguf_config), or None."""
    return header.tensors.get(ROPE_FREQS)


def gguf_config(header, rope_freqs=None) -> dict:
    """A Hugging Face config.json dict for this GGUF (llama, qwen2 or qwen3), as transformers reads
    the same file, plus what it leaves out: rope scaling, head_dim for qwen3, biases, tied output.

    rope_freqs: the float values of rope_freqs.weight when the file has that tensor (Llama 3.1+).
    """
    arch = architecture(header)
    meta = _Meta(header)
    key = f"{arch}."
    model_type, class_name = ARCHITECTURES[arch]
    tensors = header.tensors

    hidden = meta.integer(key + "embedding_length")
    heads = meta.integer(key + "attention.head_count")
    kv_heads = meta.integer(key + "attention.head_count_kv", default=heads)
    if heads % kv_heads:
        raise meta._fail(key + "attention.head_count_kv", f"is {kv_heads}, which does not divide the {heads} heads")
    head_dim = _head_dim(meta, key, hidden, heads)

    embedding = tensors.get("token_embd.weight")
    if embedding is None:
        raise ModelFormatError(f"{header.filename}: no tensor token_embd.weight (the token embedding)")
    vocab_size = embedding.shape[0]
    if key + "vocab_size" in header.metadata and meta.integer(key + "vocab_size") != vocab_size:
        raise meta._fail(key + "vocab_size", f"is {header.metadata[key + 'vocab_size']}, but token_embd.weight has "
                                             f"{vocab_size} rows")
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and len(tokens) > vocab_size:
        raise ModelFormatError(f"{header.filename}: tokenizer.ggml.tokens lists {len(tokens)} tokens, more than the "
                               f"{vocab_size} rows of token_embd.weight")

    config = {
        "model_type": model_type,
        "architectures": [class_name],
        "hidden_size": hidden,
        "intermediate_size": meta.integer(key + "feed_forward_length"),
        "num_hidden_layers": meta.integer(key + "block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": meta.number(key + "attention.layer_norm_rms_epsilon"),
        "rope_theta": meta.number(key + "rope.freq_base", default=10000.0),
        "rope_scaling": _rope_scaling(meta, key, head_dim, rope_freqs),
        "max_position_embeddings": meta.integer(key + "context_length"),
        "vocab_size": vocab_size,
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    if arch == "llama":
        config["attention_bias"] = "blk.0.attn_q.bias" in tensors
        config["mlp_bias"] = "blk.0.ffn_up.bias" in tensors
    elif arch == "qwen2":
        config["use_sliding_window"] = False
    elif arch == "qwen3":
        config["attention_bias"] = "blk.0.attn_q.bias" in tensors
        config["use_sliding_window"] = False
    for name, gguf_key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                           ("pad_token_id", "padding_token_id")):
        token = meta.token_id(f"tokenizer.ggml.{gguf_key}", vocab_size)
        if token is not None:
            config[name] = token
    return config


def _head_dim(meta: _Meta, key: str, hidden: int, heads: int) -> int:
    """attention.key_length when given (Qwen3's head_dim is not hidden / heads), else the rows of
    blk.0.attn_q.weight per head, else hidden / heads; rope.dimension_count must equal it (llama.cpp
    writes the head size there for these architectures; a smaller one would be partial rotary)."""
    query = meta.header.tensors.get("blk.0.attn_q.weight")
    if key + "attention.key_length" in meta.metadata:
        head_dim = meta.integer(key + "attention.key_length")
    elif query is not None and query.shape[0] % heads == 0:
        head_dim = query.shape[0] // heads
    elif hidden % heads == 0:
        head_dim = hidden // heads
    else:
        raise meta._fail(key + "embedding_length", f"is {hidden}, not a multiple of the {heads} heads, and there "
                                                   f"is no {key}attention.key_length")
    value_length = meta.integer(key + "attention.value_length", default=head_dim)
    if value_length != head_dim:
        raise meta._fail(key + "attention.value_length", f"is {value_length}, but the key length is {head_dim}; "
                                                         f"this engine needs them equal")
    if head_dim % 2:
        raise meta._fail(key + "attention.key_length", f"gives an odd head size ({head_dim})")
    rope_dims = meta.integer(key + "rope.dimension_count", default=head_dim)
    if rope_dims != head_dim:
        raise meta._fail(key + "rope.dimension_count", f"is {rope_dims}, but heads have {head_dim} dimensions; "
                                                       f"partial rotary embeddings are not supported")
    return head_dim


def _rope_scaling(meta: _Meta, key: str, head_dim: int, rope_freqs):
    kind = meta.string(key + "rope.scaling.type")
    factor = None
    if kind is None and key + "rope.scale_linear" in meta.metadata:  # the older key
        factor = meta.number(key + "rope.scale_linear")
        kind = "linear" if factor != 1.0 else "none"
    if ROPE_FREQS in meta.header.tensors:
        if kind not in (None, "none"):
            raise meta._fail(key + "rope.scaling.type", f"is {brief(kind)} and the file also has {ROPE_FREQS}; "
                                                        f"only one rope scaling can apply")
        if rope_freqs is None:
            raise ValueError(f"{meta.filename} has {ROPE_FREQS}: read its values and pass them as rope_freqs")
        return llama3_rope_scaling(rope_freqs, head_dim, meta.number(key + "rope.freq_base", default=10000.0),
                                   meta.filename)
    if kind in (None, "none"):
        return None
    if kind == "linear":
        factor = factor or meta.number(key + "rope.scaling.factor")
        return {"rope_type": "linear", "factor": factor}
    raise meta._fail(key + "rope.scaling.type", f"is {brief(kind)}; only linear rope scaling (and Llama 3's, "
                                                f"from {ROPE_FREQS}) is supported")


def default_rope_frequencies(head_dim: int, rope_theta: float) -> list:
    """1 / theta ** (2i / head_dim) in float32 steps, as llama.cpp's converter computes them."""
    def f32(x):
        return _F32.unpack(_F32.pack(x))[0]
    return [f32(1.0 / f32(f32(rope_theta) ** f32(f32(2 * i) / head_dim))) for i in range(head_dim // 2)]


def llama3_factors(head_dim: int, rope_theta: float, factor: float, low_freq_factor: float,
                   high_freq_factor: float, original: int) -> list:
    """The rope_freqs.weight values llama.cpp's converter writes for this llama3 rope_scaling."""
    low_wavelen = original / low_freq_factor
    high_wavelen = original / high_freq_factor
    factors = []
    for freq in default_rope_frequencies(head_dim, rope_theta):
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return [_F32.unpack(_F32.pack(f))[0] for f in factors]


def llama3_rope_scaling(factors, head_dim: int, rope_theta: float, filename="model.gguf"):
    """Recover transformers' llama3 rope_scaling from llama.cpp's per-frequency factors.

    Factors are 1 for high frequencies, `factor` for low ones and 1 / ((1 - s) / factor + s) between,
    with s linear in 1 / wavelength: s = (original / wavelength - low) / (high - low). Scaling
    (original, low, high) together changes nothing, so low_freq_factor is taken as 1 (Llama 3's) and
    the rest fitted from the in-between factors; the result is checked by recomputing every factor.
    """
    where = f"{filename}: {ROPE_FREQS}"
    factors = [float(f) for f in factors]
    if len(factors) != head_dim // 2:
        raise ModelFormatError(f"{where} has {len(factors)} values; heads of {head_dim} need {head_dim // 2}")
    if not all(math.isfinite(f) and f > 0 for f in factors):
        raise ModelFormatError(f"{where} holds a value that is not a finite positive number")
    factor = max(factors)
    if factor == 1.0:
        return None
    freqs = default_rope_frequencies(head_dim, rope_theta)
    points = [(freq / (2 * math.pi), (1 / f - 1 / factor) / (1 - 1 / factor))
              for freq, f in zip(freqs, factors) if f != 1.0 and abs(f - factor) > 1e-6 * factor]
    if len(points) < 2:
        raise ModelFormatError(f"{where}: too few in-between factors to recover Llama 3's rope scaling")
    # least squares fit of s = a * x + b (x = 1 / wavelength)
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_s = sum(s for _, s in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (s - mean_s) for x, s in points) / var_x if var_x else 0.0
    intercept = mean_s - slope * mean_x
    if slope <= 0 or intercept >= 0:
        raise ModelFormatError(f"{where}: the factors do not follow Llama 3's rope scaling")
    original = round(-slope / intercept)  # with low_freq_factor 1: original / low = -a / b
    factor = shortest_f32(factor)
    fitted = 1 + original / slope
    for digits in range(7):  # the shortest high_freq_factor that gives the file's factors back
        high = round(fitted, digits)
        if high > 1.0:
            again = llama3_factors(head_dim, rope_theta, factor, 1.0, high, original)
            if all(abs(a - b) <= 1e-5 * max(1.0, abs(b)) for a, b in zip(again, factors)):
                return {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": high,
                        "original_max_position_embeddings": original}
    raise ModelFormatError(f"{where}: the factors do not follow Llama 3's rope scaling")


def gguf_tensor_map(header, config: dict) -> dict:
    """GGUF name -> TensorMapping for every tensor of the file (rope_freqs.weight, which is config,
    is left out), after checking that the model's tensors are all there with the shapes `config`
    gives. Unknown and missing tensors are ModelFormatErrors listing them."""
    arch = architecture(header)
    filename = header.filename
    layers = config["num_hidden_layers"]
    if layers * len(LAYER_WEIGHTS) > len(header.tensors):  # before listing billions of expected names
        raise ModelFormatError(f"{filename}: metadata {arch}.block_count is {layers:,}, but the file has only "
                               f"{len(header.tensors):,} tensors")
    expected = expected_gguf_tensors(arch, config, header.tensors)
    missing = [name for name in expected if name not in header.tensors]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ModelFormatError(f"{filename}: tensors missing: {', '.join(missing[:5])}{more}")
    unknown = [name for name in header.tensors if name not in expected and name != ROPE_FREQS]
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        names = ", ".join(brief(n, 60) for n in unknown[:5])
        raise ModelFormatError(f"{filename}: tensors this {arch} model does not have: {names}{more}")
    result = {}
    for name, (hf_name, shape) in expected.items():
        info = header.tensors[name]
        if info.shape != shape:
            raise ModelFormatError(
                f"{filename}: tensor {name} has shape {list(info.shape)}, but the metadata gives {list(shape)}")
        heads = None
        if arch in PERMUTED_ARCHITECTURES:
            if ".attn_q." in name:
                heads = config["num_attention_heads"]
            elif ".attn_k." in name:
                heads = config["num_key_value_heads"]
        result[name] = TensorMapping(name, hf_name, shape, heads)
    return result


def expected_gguf_tensors(arch: str, config: dict, present=()) -> dict:
    """GGUF name -> (HF name, HF shape) of every tensor the model needs."""
    hidden = config["hidden_size"]
    head_dim = config["head_dim"]
    q_rows = config["num_attention_heads"] * head_dim
    kv_rows = config["num_key_value_heads"] * head_dim
    inter = config["intermediate_size"]
    weights = {
        "attn_norm": (hidden,), "ffn_norm": (hidden,),
        "attn_q": (q_rows, hidden), "attn_k": (kv_rows, hidden), "attn_v": (kv_rows, hidden),
        "attn_output": (hidden, q_rows),
        "ffn_gate": (inter, hidden), "ffn_up": (inter, hidden), "ffn_down": (hidden, inter),
    }
    biases = {}
    if arch == "qwen2" or config.get("attention_bias"):
        biases.update({"attn_q": (q_rows,), "attn_k": (kv_rows,), "attn_v": (kv_rows,)})
    if arch != "qwen2" and config.get("attention_bias"):
        biases["attn_output"] = (hidden,)
    if config.get("mlp_bias"):
        biases.update({"ffn_gate": (inter,), "ffn_up": (inter,), "ffn_down": (hidden,)})
    if arch == "qwen3":
        weights.update({"attn_q_norm": (head_dim,), "attn_k_norm": (head_dim,)})

    expected = {"token_embd.weight": ("model.embed_tokens.weight", (config["vocab_size"], hidden))}
    for layer in range(config["num_hidden_layers"]):
        for leaf, shape in weights.items():
            expected[f"blk.{layer}.{leaf}.weight"] = (f"model.layers.{layer}.{LAYER_TENSORS[leaf]}.weight", shape)
        for leaf, shape in biases.items():
            expected[f"blk.{layer}.{leaf}.bias"] = (f"model.layers.{layer}.{LAYER_TENSORS[leaf]}.bias", shape)
    expected["output_norm.weight"] = ("model.norm.weight", (hidden,))
    if not config["tie_word_embeddings"]:
        expected["output.weight"] = ("lm_head.weight", (config["vocab_size"], hidden))
    return expected
