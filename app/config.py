"""Model configuration: read config.json, check it, and say which tensors the model needs.

Standard library only (runs in Pyodide and CPython). Every problem is a ModelFormatError
whose message names the file and the key at fault.

config_from_json(text, filename) is the one entry point: a GPT2Config for model_type gpt2
(or none), a LlamaConfig (app/config_llama.py) for llama, mistral, qwen2 and qwen3.
expected_tensor_shapes, match_tensors and param_count take either config.

GPT-2 tensor names here are Hugging Face GPT-2's without the `transformer.` prefix
("canonical" names): wte.weight, h.0.attn.c_attn.weight, ln_f.bias, lm_head.weight, ...
Weights of the attention and MLP projections are stored as HF's Conv1D does it:
[in_features, out_features], so y = x @ W + b.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config_common import SUPPORTED_WEIGHT_DTYPES, load_json, match_named_tensors, numel, require_object
from .config_common import finite as _finite
from .config_common import positive_int as _positive_int
from .config_common import shown as _shown
from .config_llama import (
    LLAMA_FAMILY,
    LlamaConfig,
    RopeScaling,
    llama_canonical_name,
    llama_param_count,
    llama_tensor_shapes,
    match_llama_tensors,
)
from .errors import ModelFormatError

# Hugging Face activation names -> the GELU form our kernels implement.
#   'tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2's original)
#   'erf':  0.5 x (1 + erf(x / sqrt(2)))                       (exact; nanoGPT, torch default)
# gelu_fast and gelu_accurate are the tanh formula written differently.
GELU_FORMS = {
    "gelu_new": "tanh",
    "gelu_pytorch_tanh": "tanh",
    "gelu_python_tanh": "tanh",
    "gelu_fast": "tanh",
    "gelu_accurate": "tanh",
    "gelu": "erf",
    "gelu_python": "erf",
}

GPT2_MODEL_TYPES = ("gpt2",)
SUPPORTED_MODEL_TYPES = GPT2_MODEL_TYPES + LLAMA_FAMILY

__all__ = [
    "GELU_FORMS", "SUPPORTED_MODEL_TYPES", "SUPPORTED_WEIGHT_DTYPES", "GPT2Config", "LlamaConfig", "RopeScaling",
    "config_from_json", "config_from_dict", "expected_tensor_shapes", "canonical_name", "match_tensors",
    "param_count", "llama_canonical_name",
]

# HF GPT-2 checkpoints may carry the causal-mask buffers of each attention block; they are
# not weights (the mask is implicit in our kernels), so they are skipped without a notice.
_MASK_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")

PREFIX = "transformer."


@dataclass(frozen=True)
class GPT2Config:
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int  # context length (HF's n_ctx is an older name for it)
    vocab_size: int
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_new"  # the HF name, as in config.json
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    model_type: str = "gpt2"
    filename: str = "config.json"
    notices: tuple = field(default=(), compare=False)  # things worth telling the user

    @property
    def gelu(self) -> str:
        """'tanh' or 'erf': the GELU formula this model was trained with."""
        return GELU_FORMS[self.activation_function]

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_json(cls, text, filename="config.json") -> "GPT2Config":
        return cls.from_dict(load_json(text, filename), filename)

    @classmethod
    def from_dict(cls, d, filename="config.json") -> "GPT2Config":
        require_object(d, filename)
        notices = []

        model_type = d.get("model_type")
        if model_type is None:
            model_type = "gpt2"
            notices.append(f"{filename}: no 'model_type'; assuming 'gpt2'")
        if model_type not in GPT2_MODEL_TYPES:
            raise ModelFormatError(
                f"{filename}: 'model_type' is {model_type!r:.60}; only GPT-2-family models "
                f"(model_type 'gpt2': gpt2, distilgpt2, gpt2-medium/large/xl, nanoGPT "
                f"exports) are supported"
            )

        n_layer = _positive_int(d, "n_layer", filename)
        n_head = _positive_int(d, "n_head", filename)
        n_embd = _positive_int(d, "n_embd", filename)
        vocab_size = _positive_int(d, "vocab_size", filename)

        # Context length: n_positions (modern) or n_ctx (old configs). HF sizes wpe by n_positions.
        if "n_positions" in d:
            n_positions = _positive_int(d, "n_positions", filename)
            if "n_ctx" in d and d["n_ctx"] != n_positions:
                notices.append(
                    f"{filename}: 'n_ctx' ({d['n_ctx']!r:.20}) differs from 'n_positions' "
                    f"({n_positions}); using n_positions, as transformers does"
                )
        elif "n_ctx" in d:
            n_positions = _positive_int(d, "n_ctx", filename)
        else:
            raise ModelFormatError(
                f"{filename}: missing key 'n_positions' (or 'n_ctx'): the context length"
            )

        if n_embd % n_head:
            raise ModelFormatError(
                f"{filename}: 'n_embd' ({_shown(n_embd)}) is not divisible by 'n_head' ({_shown(n_head)})"
            )

        n_inner = d.get("n_inner")
        if n_inner is not None:
            n_inner = _positive_int(d, "n_inner", filename)

        layer_norm_epsilon = d.get("layer_norm_epsilon", 1e-5)
        if (
            not isinstance(layer_norm_epsilon, (int, float))
            or isinstance(layer_norm_epsilon, bool)
            or not _finite(layer_norm_epsilon)
            or layer_norm_epsilon <= 0
        ):
            raise ModelFormatError(
                f"{filename}: 'layer_norm_epsilon' must be a positive number, got "
                f"{layer_norm_epsilon!r:.40}"
            )

        activation_function = d.get("activation_function", "gelu_new")
        if not isinstance(activation_function, str) or activation_function not in GELU_FORMS:
            raise ModelFormatError(
                f"{filename}: 'activation_function' {activation_function!r:.40} is not "
                f"supported; supported: {', '.join(GELU_FORMS)}"
            )

        tie_word_embeddings = d.get("tie_word_embeddings", True)
        if not isinstance(tie_word_embeddings, bool):
            raise ModelFormatError(
                f"{filename}: 'tie_word_embeddings' must be true or false, got "
                f"{tie_word_embeddings!r:.40}"
            )

        # GPT-2 variants that change the attention math: refuse rather than compute wrongly.
        for key, plain_value in (
            ("scale_attn_weights", True),
            ("scale_attn_by_inverse_layer_idx", False),
            ("add_cross_attention", False),
        ):
            value = d.get(key, plain_value)
            if value is None:
                continue
            if not isinstance(value, bool):
                raise ModelFormatError(
                    f"{filename}: {key!r} must be true or false, got {value!r:.40}"
                )
            if value != plain_value:
                raise ModelFormatError(
                    f"{filename}: {key!r} is {str(value).lower()}; this GPT-2 variant is "
                    f"not supported (only {key} = {str(plain_value).lower()})"
                )

        bos_token_id = _token_id(d, "bos_token_id", vocab_size, filename, notices)
        eos_token_id = _token_id(d, "eos_token_id", vocab_size, filename, notices)

        return cls(
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            n_positions=n_positions,
            vocab_size=vocab_size,
            layer_norm_epsilon=float(layer_norm_epsilon),
            activation_function=activation_function,
            n_inner=n_inner,
            tie_word_embeddings=tie_word_embeddings,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            model_type=model_type,
            filename=str(filename),
            notices=tuple(notices),
        )

    def to_dict(self) -> dict:
        """The HF config.json keys for this config (what tools write)."""
        return {
            "model_type": self.model_type,
            "architectures": ["GPT2LMHeadModel"],
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_inner": self.n_inner,
            "vocab_size": self.vocab_size,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation_function": self.activation_function,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
        }


def _token_id(d, key, vocab_size, filename, notices):
    """bos/eos ids: an int, a list of ints (first one used), or null.

    An id outside the vocabulary is dropped with a notice, not refused: transformers
    itself writes GPT-2's 50256 into configs of models with small vocabularies.
    """
    value = d.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelFormatError(
            f"{filename}: {key!r} must be an integer or null, got {value!r:.40}"
        )
    if not 0 <= value < vocab_size:
        notices.append(
            f"{filename}: {key!r} {_shown(value)} is outside the vocabulary (size {vocab_size}); ignored"
        )
        return None
    return value


def config_from_json(text, filename="config.json"):
    """config.json (bytes or text) -> GPT2Config or LlamaConfig, by its model_type."""
    return config_from_dict(load_json(text, filename), filename)


def config_from_dict(d, filename="config.json"):
    """A parsed config.json -> GPT2Config (model_type gpt2, or none) or LlamaConfig (llama, mistral,
    qwen2, qwen3); any other model_type is refused with the list of supported ones."""
    require_object(d, filename)
    model_type = d.get("model_type")
    if model_type in LLAMA_FAMILY:
        return LlamaConfig.from_dict(d, filename)
    if model_type is None or model_type in GPT2_MODEL_TYPES:
        return GPT2Config.from_dict(d, filename)
    raise ModelFormatError(
        f"{filename}: 'model_type' is {model_type!r:.60}, which is not supported; supported: "
        f"{', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def expected_tensor_shapes(cfg) -> dict:
    """Canonical tensor name -> shape, for every tensor the model needs.

    lm_head.weight is listed only when the embeddings are not tied (then it is required);
    with tied embeddings it is optional (see match_tensors).
    """
    if isinstance(cfg, LlamaConfig):
        return llama_tensor_shapes(cfg)
    E, V, P, M = cfg.n_embd, cfg.vocab_size, cfg.n_positions, cfg.d_mlp
    shapes = {"wte.weight": (V, E), "wpe.weight": (P, E)}
    for i in range(cfg.n_layer):
        h = f"h.{i}."
        shapes[h + "ln_1.weight"] = (E,)
        shapes[h + "ln_1.bias"] = (E,)
        shapes[h + "attn.c_attn.weight"] = (E, 3 * E)  # Conv1D: [in, out], q|k|v along out
        shapes[h + "attn.c_attn.bias"] = (3 * E,)
        shapes[h + "attn.c_proj.weight"] = (E, E)
        shapes[h + "attn.c_proj.bias"] = (E,)
        shapes[h + "ln_2.weight"] = (E,)
        shapes[h + "ln_2.bias"] = (E,)
        shapes[h + "mlp.c_fc.weight"] = (E, M)
        shapes[h + "mlp.c_fc.bias"] = (M,)
        shapes[h + "mlp.c_proj.weight"] = (M, E)
        shapes[h + "mlp.c_proj.bias"] = (E,)
    shapes["ln_f.weight"] = (E,)
    shapes["ln_f.bias"] = (E,)
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, E)
    return shapes


def canonical_name(key: str) -> str:
    """'transformer.h.0.ln_1.weight' -> 'h.0.ln_1.weight'; other names unchanged (GPT-2)."""
    return key[len(PREFIX):] if key.startswith(PREFIX) else key


def match_tensors(cfg, tensors: dict, filename="model.safetensors"):
    """Check a file's tensors against the config (GPT2Config or LlamaConfig).

    `tensors` maps the stored key to something with .dtype ('F32', ...) and .shape
    (a TensorInfo). Returns (mapping canonical name -> that object, notices). The mapping
    holds every tensor of expected_tensor_shapes(cfg), plus lm_head.weight when the file
    has one: transformers 5 uses a stored lm_head.weight even with tie_word_embeddings
    when it differs from the embeddings, so a runtime should too (or check that the bytes are equal).
    Raises ModelFormatError naming the tensor for a missing tensor, a wrong shape, an
    unsupported dtype, or the same tensor stored twice (with and without the prefix).
    Unknown extra tensors are ignored and reported in the notices.
    """
    if isinstance(cfg, LlamaConfig):
        return match_llama_tensors(cfg, tensors, filename)
    return match_named_tensors(
        tensors, filename,
        expected=expected_tensor_shapes(cfg),
        optional={"lm_head.weight": (cfg.vocab_size, cfg.n_embd)},
        canonical=canonical_name,
        skip=lambda name: bool(_MASK_BUFFER.match(name)),
        missing_help=(
            f"(looked for names with and without the {PREFIX!r} prefix) required by "
            f"{cfg.filename} (n_layer={cfg.n_layer}, tie_word_embeddings="
            f"{str(cfg.tie_word_embeddings).lower()})"
        ),
        shape_help=(
            f"{cfg.filename} (n_embd={cfg.n_embd}, vocab_size={cfg.vocab_size}, n_positions={cfg.n_positions})"
        ),
        transposed_hint=(
            " (transposed: nn.Linear stores [out, in], HF GPT-2's Conv1D [in, out];"
            " convert it with tools/convert.py)"
        ),
        family="GPT-2",
        notices=cfg.notices,
    )


def param_count(cfg) -> int:
    """Number of parameters (the tied lm_head counted once, like HF's num_parameters)."""
    if isinstance(cfg, LlamaConfig):
        return llama_param_count(cfg)
    return sum(numel(shape) for shape in expected_tensor_shapes(cfg).values())
