"""Llama-family configuration (model_type llama, mistral, qwen2, qwen3): read config.json as
transformers 5.24 reads it, check it, and say which tensors the model needs.

Standard library only (runs in Pyodide and CPython). Every problem is a ModelFormatError whose
message names the file and the key at fault.

The four families are one graph: RMSNorm, rotary embeddings (half-split layout), grouped-query
attention, a SwiGLU MLP. What differs, as transformers' modeling_*.py files build it:

    model_type  q/k/v bias          o_proj bias         MLP bias   q_norm/k_norm  sliding window
    llama       attention_bias      attention_bias      mlp_bias   no             never
    mistral     no                  no                  no         no             sliding_window (all layers)
    qwen2       always              no                  no         no             use_sliding_window + layer_types
    qwen3       attention_bias      attention_bias      no         yes            use_sliding_window + layer_types

Defaults for keys a config.json leaves out are transformers' own, and they differ by family (the
Qwen and Mistral classes do not default num_key_value_heads to the number of heads; Qwen3's
head_dim defaults to 128, not hidden_size / heads).

Tensor names are Hugging Face's (model.layers.0.self_attn.q_proj.weight, ...); names stored
without the leading 'model.' are accepted too. Linear weights are nn.Linear's [out, in]: y = x W^T + b.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config_common import (
    boolean,
    finite,
    match_named_tensors,
    numel,
    positive_int,
    positive_number,
    require_object,
    shown,
    token_ids,
)
from .errors import ModelFormatError

LLAMA_FAMILY = ("llama", "mistral", "qwen2", "qwen3")

# transformers' defaults (configuration_<type>.py) for keys a config.json may leave out
_DEFAULTS = {
    "llama": {"num_key_value_heads": None, "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2},
    "mistral": {"num_key_value_heads": 8, "max_position_embeddings": 4096 * 32, "bos_token_id": 1,
                "eos_token_id": 2, "sliding_window": 4096},
    "qwen2": {"num_key_value_heads": 32, "max_position_embeddings": 32768, "bos_token_id": None,
              "eos_token_id": None, "sliding_window": 4096, "max_window_layers": 28},
    "qwen3": {"num_key_value_heads": 32, "max_position_embeddings": 32768, "bos_token_id": None,
              "eos_token_id": None, "sliding_window": 4096, "max_window_layers": 28, "head_dim": 128},
}

# transformers' ACT2FN maps both names to x * sigmoid(x)
SILU_NAMES = ("silu", "swish")

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
LAYER_TYPES = ("full_attention", "sliding_attention")

PREFIX = "model."

# rotary inverse frequencies that old checkpoints saved as buffers: transformers recomputes them
_ROPE_BUFFER = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")

@dataclass(frozen=True)
class RopeScaling:
    """rope_scaling of type 'linear' (factor) or 'llama3' (all five fields)."""

    rope_type: str
    factor: float
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    original_max_position_embeddings: int | None = None


@dataclass(frozen=True)
class LlamaConfig:
    model_type: str  # llama, mistral, qwen2 or qwen3
    hidden_size: int
    intermediate_size: int  # the MLP's width
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # divides num_attention_heads; 1 is multi-query attention
    head_dim: int  # even; may differ from hidden_size / num_attention_heads (Qwen3)
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: RopeScaling | None  # None: plain rotary embeddings
    tie_word_embeddings: bool
    qkv_bias: bool  # q_proj, k_proj, v_proj have biases
    o_proj_bias: bool
    mlp_bias: bool  # gate_proj, up_proj, down_proj have biases
    qk_norm: bool  # per-head RMSNorm of q and k (weights [head_dim]) before the rotation
    sliding_window: int | None  # a key at distance >= this from the query is masked (None: no window)
    bos_token_id: int | None = None
    eos_token_ids: tuple = ()  # every end-of-sequence id (config.json may list several)
    hidden_act: str = "silu"
    filename: str = "config.json"
    notices: tuple = field(default=(), compare=False)

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None

    @property
    def kv_groups(self) -> int:
        """Query heads per KV head (transformers' num_key_value_groups)."""
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    # GPT2Config's names, so that code describing any model (sizes, context) reads either config
    @property
    def n_layer(self) -> int:
        return self.num_hidden_layers

    @property
    def n_head(self) -> int:
        return self.num_attention_heads

    @property
    def n_embd(self) -> int:
        return self.hidden_size

    @property
    def n_positions(self) -> int:
        return self.max_position_embeddings

    def check_context(self, context: int) -> None:
        """Refuse a context longer than the sliding window: this engine attends to every earlier
        position, which equals transformers' windowed attention only while context <= window."""
        if self.sliding_window is not None and context > self.sliding_window:
            raise ModelFormatError(
                f"{self.filename}: 'sliding_window' is {self.sliding_window}, shorter than the context of "
                f"{context} tokens; sliding-window attention is not supported, so use a context of at most "
                f"{self.sliding_window}"
            )

    @classmethod
    def from_dict(cls, d, filename="config.json") -> "LlamaConfig":
        require_object(d, filename)
        notices = []
        model_type = d.get("model_type")
        if model_type not in LLAMA_FAMILY:
            raise ModelFormatError(
                f"{filename}: 'model_type' is {model_type!r:.60}; this reader takes "
                f"{', '.join(LLAMA_FAMILY)}"
            )
        defaults = _DEFAULTS[model_type]

        hidden_size = positive_int(d, "hidden_size", filename)
        intermediate_size = positive_int(d, "intermediate_size", filename)
        num_hidden_layers = positive_int(d, "num_hidden_layers", filename)
        num_attention_heads = positive_int(d, "num_attention_heads", filename)
        vocab_size = positive_int(d, "vocab_size", filename)
        num_key_value_heads = _kv_heads(d, model_type, num_attention_heads, filename)
        head_dim = _head_dim(d, model_type, hidden_size, num_attention_heads, filename)

        max_position_embeddings = d.get("max_position_embeddings")
        if max_position_embeddings is None:
            max_position_embeddings = defaults["max_position_embeddings"]
            notices.append(f"{filename}: no 'max_position_embeddings'; using {model_type}'s default, "
                           f"{max_position_embeddings}, as transformers does")
        else:
            max_position_embeddings = positive_int(d, "max_position_embeddings", filename)

        rms_norm_eps = positive_number(d, "rms_norm_eps", filename) if "rms_norm_eps" in d else 1e-6
        hidden_act = d.get("hidden_act", "silu")
        if hidden_act not in SILU_NAMES:
            raise ModelFormatError(
                f"{filename}: 'hidden_act' {hidden_act!r:.40} is not supported; the {model_type} MLP here "
                f"takes only 'silu'"
            )
        rope_theta, rope_scaling = _rope(d, max_position_embeddings, filename)
        tie_word_embeddings = boolean(d, "tie_word_embeddings", False, filename)

        qkv_bias = o_proj_bias = mlp_bias = qk_norm = False
        if model_type in ("llama", "qwen3"):
            qkv_bias = o_proj_bias = boolean(d, "attention_bias", False, filename)
        if model_type == "llama":
            mlp_bias = boolean(d, "mlp_bias", False, filename)
        if model_type == "qwen2":
            qkv_bias = True
        if model_type == "qwen3":
            qk_norm = True
        sliding_window = _sliding_window(d, model_type, num_hidden_layers, filename)

        bos = token_ids(d.get("bos_token_id", defaults["bos_token_id"]), "bos_token_id", vocab_size, filename,
                        notices)
        eos = token_ids(d.get("eos_token_id", defaults["eos_token_id"]), "eos_token_id", vocab_size, filename,
                        notices)
        return cls(
            model_type=model_type,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            vocab_size=vocab_size,
            max_position_embeddings=max_position_embeddings,
            rms_norm_eps=rms_norm_eps,
            rope_theta=rope_theta,
            rope_scaling=rope_scaling,
            tie_word_embeddings=tie_word_embeddings,
            qkv_bias=qkv_bias,
            o_proj_bias=o_proj_bias,
            mlp_bias=mlp_bias,
            qk_norm=qk_norm,
            sliding_window=sliding_window,
            bos_token_id=bos[0] if bos else None,
            eos_token_ids=eos,
            hidden_act="silu",
            filename=str(filename),
            notices=tuple(notices),
        )


def _kv_heads(d, model_type, num_attention_heads, filename) -> int:
    if "num_key_value_heads" not in d:
        value = _DEFAULTS[model_type]["num_key_value_heads"] or num_attention_heads
        where = f"(no 'num_key_value_heads': transformers' {model_type} default is {value}) "
    elif d["num_key_value_heads"] is None:
        value, where = num_attention_heads, ""
    else:
        value, where = positive_int(d, "num_key_value_heads", filename), ""
    if num_attention_heads % value:
        raise ModelFormatError(
            f"{filename}: {where}'num_attention_heads' ({shown(num_attention_heads)}) is not a multiple of "
            f"'num_key_value_heads' ({shown(value)})"
        )
    return value


def _head_dim(d, model_type, hidden_size, num_attention_heads, filename) -> int:
    if model_type == "llama" and hidden_size % num_attention_heads:  # LlamaConfig.validate_architecture
        raise ModelFormatError(
            f"{filename}: 'hidden_size' ({shown(hidden_size)}) is not a multiple of 'num_attention_heads' "
            f"({shown(num_attention_heads)}), which transformers' LlamaConfig requires"
        )
    if d.get("head_dim") is not None:
        head_dim = positive_int(d, "head_dim", filename)
    elif model_type == "qwen3":
        if "head_dim" in d:
            raise ModelFormatError(f"{filename}: 'head_dim' must be an integer for qwen3, got null")
        head_dim = _DEFAULTS["qwen3"]["head_dim"]
    elif hidden_size % num_attention_heads:
        raise ModelFormatError(
            f"{filename}: 'hidden_size' ({shown(hidden_size)}) is not a multiple of 'num_attention_heads' "
            f"({shown(num_attention_heads)}) and there is no 'head_dim'"
        )
    else:
        head_dim = hidden_size // num_attention_heads
    if head_dim % 2:
        raise ModelFormatError(
            f"{filename}: the head size ('head_dim', or hidden_size / num_attention_heads) is {head_dim}; "
            f"rotary embeddings need an even head size"
        )
    return head_dim


def _rope(d, max_position_embeddings, filename) -> tuple:
    """(rope_theta, RopeScaling or None), read as transformers 5.24's convert_rope_params_to_dict does:
    `rope_scaling` (v4's key) wins over `rope_parameters` (v5's) when both are set and not empty;
    a rope_theta inside that object wins over the top-level one; the default theta is 10000;
    the type is `rope_type`, else the older `type`, else 'default'."""
    key = "rope_scaling" if d.get("rope_scaling") else "rope_parameters"
    params = d.get(key) or {}
    if not isinstance(params, dict):
        raise ModelFormatError(f"{filename}: {key!r} must be an object or null, got {params!r:.60}")
    nested = [name for name in params if name in LAYER_TYPES]
    if nested:
        raise ModelFormatError(
            f"{filename}: {key!r} has separate settings per layer type ({', '.join(nested)}); only one rotary "
            f"embedding for all layers is supported"
        )
    if "rope_theta" in params:
        theta = positive_number(params, "rope_theta", filename, where=f"{key!r} ")
    else:
        theta = d.get("rope_theta", 10000.0)
        if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not finite(theta) or theta <= 0:
            raise ModelFormatError(f"{filename}: 'rope_theta' must be a positive number, got {theta!r:.40}")
    for where, holder in ((f"{key!r} ", params), ("", d)):
        factor = holder.get("partial_rotary_factor", 1.0)
        if factor != 1.0:
            raise ModelFormatError(
                f"{filename}: {where}'partial_rotary_factor' is {factor!r:.40}; only rotary embeddings over the "
                f"whole head (1.0) are supported"
            )
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return float(theta), None
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ModelFormatError(
            f"{filename}: {key!r} has rope type {rope_type!r:.40}, which is not supported; supported: "
            f"{', '.join(SUPPORTED_ROPE_TYPES)} (or no {key!r})"
        )
    where = f"{key!r} "
    factor = positive_number(params, "factor", filename, where=where)
    if rope_type == "linear":
        return float(theta), RopeScaling("linear", factor)
    low = positive_number(params, "low_freq_factor", filename, where=where)
    high = positive_number(params, "high_freq_factor", filename, where=where)
    if high <= low:
        raise ModelFormatError(
            f"{filename}: {where}'high_freq_factor' ({high}) must be greater than 'low_freq_factor' ({low})"
        )
    if params.get("original_max_position_embeddings") is None:  # transformers' standardize_rope_params
        original = max_position_embeddings
    else:
        original = positive_int(params, "original_max_position_embeddings", filename, where=where)
    return float(theta), RopeScaling("llama3", factor, low, high, original)


def _sliding_window(d, model_type, num_hidden_layers, filename) -> int | None:
    """The attention window of the layers that have one, None when no layer has one."""
    if model_type == "llama":
        return None
    window = d.get("sliding_window", _DEFAULTS[model_type]["sliding_window"])
    if window is not None:
        window = positive_int({"sliding_window": window}, "sliding_window", filename)
    if model_type == "mistral":
        return window
    if not boolean(d, "use_sliding_window", False, filename):
        window = None
    layer_types = d.get("layer_types")
    if layer_types is None:
        first = d.get("max_window_layers", _DEFAULTS[model_type]["max_window_layers"])
        if not isinstance(first, int) or isinstance(first, bool):
            raise ModelFormatError(f"{filename}: 'max_window_layers' must be an integer, got {first!r:.40}")
        sliding = window is not None and first < num_hidden_layers
    else:
        if (not isinstance(layer_types, list) or len(layer_types) != num_hidden_layers
                or any(t not in LAYER_TYPES for t in layer_types)):
            raise ModelFormatError(
                f"{filename}: 'layer_types' must list {num_hidden_layers} of {', '.join(map(repr, LAYER_TYPES))}, "
                f"got {layer_types!r:.80}"
            )
        sliding = "sliding_attention" in layer_types
        if sliding and window is None:
            raise ModelFormatError(
                f"{filename}: 'layer_types' has sliding_attention layers but there is no sliding window "
                f"('use_sliding_window' false or 'sliding_window' null)"
            )
    return window if sliding else None


def llama_tensor_shapes(cfg: LlamaConfig) -> dict:
    """Tensor name -> shape, for every tensor the model needs (HF names, nn.Linear [out, in]).

    lm_head.weight is listed only when the embeddings are not tied (then it is required);
    with tied embeddings it is optional (see match_llama_tensors).
    """
    E, V, M, D = cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size, cfg.head_dim
    Q, KV = cfg.q_size, cfg.kv_size
    shapes = {"model.embed_tokens.weight": (V, E)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (E,)
        for proj, out in (("q_proj", Q), ("k_proj", KV), ("v_proj", KV)):
            shapes[p + f"self_attn.{proj}.weight"] = (out, E)
            if cfg.qkv_bias:
                shapes[p + f"self_attn.{proj}.bias"] = (out,)
        if cfg.qk_norm:
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
        shapes[p + "self_attn.o_proj.weight"] = (E, Q)
        if cfg.o_proj_bias:
            shapes[p + "self_attn.o_proj.bias"] = (E,)
        shapes[p + "post_attention_layernorm.weight"] = (E,)
        for proj, shape in (("gate_proj", (M, E)), ("up_proj", (M, E)), ("down_proj", (E, M))):
            shapes[p + f"mlp.{proj}.weight"] = shape
            if cfg.mlp_bias:
                shapes[p + f"mlp.{proj}.bias"] = shape[:1]
    shapes["model.norm.weight"] = (E,)
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, E)
    return shapes


def llama_canonical_name(key: str) -> str:
    """'layers.0.mlp.up_proj.weight' -> 'model.layers.0.mlp.up_proj.weight'; HF names unchanged."""
    return key if key.startswith(PREFIX) or key.startswith("lm_head.") else PREFIX + key


def match_llama_tensors(cfg: LlamaConfig, tensors: dict, filename="model.safetensors"):
    """match_tensors for the Llama family: (HF name -> tensor info, notices), or a ModelFormatError
    naming the tensor. A stored lm_head.weight is used even with tie_word_embeddings, as
    transformers 5 does (it unties them on load)."""
    facts = (f"hidden_size={cfg.hidden_size}, num_attention_heads={cfg.num_attention_heads}, "
             f"num_key_value_heads={cfg.num_key_value_heads}, head_dim={cfg.head_dim}, "
             f"intermediate_size={cfg.intermediate_size}, vocab_size={cfg.vocab_size}")
    return match_named_tensors(
        tensors, filename,
        expected=llama_tensor_shapes(cfg),
        optional={"lm_head.weight": (cfg.vocab_size, cfg.hidden_size)},
        canonical=llama_canonical_name,
        skip=lambda name: bool(_ROPE_BUFFER.match(name)),
        missing_help=(
            f"(looked for names with and without the {PREFIX!r} prefix) required by {cfg.filename} "
            f"(model_type {cfg.model_type}, num_hidden_layers={cfg.num_hidden_layers}, tie_word_embeddings="
            f"{str(cfg.tie_word_embeddings).lower()}, q/k/v biases {_yes(cfg.qkv_bias)}, o_proj bias "
            f"{_yes(cfg.o_proj_bias)}, MLP biases {_yes(cfg.mlp_bias)}, q/k norms {_yes(cfg.qk_norm)})"
        ),
        shape_help=f"{cfg.filename} ({facts})",
        transposed_hint=" (transposed: Hugging Face stores nn.Linear weights as [out_features, in_features])",
        family=cfg.model_type,
        notices=cfg.notices,
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def llama_param_count(cfg: LlamaConfig) -> int:
    """Number of parameters (a tied lm_head counted once, like HF's num_parameters)."""
    return sum(numel(shape) for shape in llama_tensor_shapes(cfg).values())
