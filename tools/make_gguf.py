"""Write a GGUF file from a Hugging Face llama / qwen2 / qwen3 folder, as llama.cpp's converter does.

    python tools/make_gguf.py HF_DIR OUT.gguf
        [--type F32|F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1|Q4_K|Q5_K|Q6_K|Q4_K_M|Q5_K_M]
        [--version 2|3]
        [--pre gpt2|llama-bpe|qwen2|smollm|...]

For tests and benchmarks: a random-weight model of your own (tools/make_family.py, or transformers'
save_pretrained) becomes a GGUF of each supported type, written with the gguf package's GGUFWriter:

  - metadata under llama.cpp's keys ({arch}.embedding_length, .attention.head_count_kv,
    .attention.key_length, .rope.freq_base, ...); linear rope scaling as rope.scaling.*, llama3 rope
    scaling as the rope_freqs.weight tensor of per-frequency factors (as the converter does);
  - tensor names blk.N.attn_q.weight, ...; Q and K rows of llama models permuted as
    convert_hf_to_gguf.py's LlamaModel.permute does;
  - 2-D weights stored as --type (quantized by tools/quants.py, which equals ggml's quantizer; the
    k-quants Q4_K / Q5_K / Q6_K by tools/kquants.py: ggml's layout, plain round-to-nearest, rows of
    whole super-blocks of 256 or refused), 1-D ones (norms, biases) as F32, as llama.cpp stores them;
    Q4_K_M / Q5_K_M mix types tensor by tensor as llama.cpp does (tensor_type: Q6_K output and the
    attn_v and ffn_down of the layers use_more_bits picks; Q5_0 / Q5_1 / Q8_0 for rows that are not
    whole super-blocks);
  - the tokenizer, when the folder has one (vocab.json + merges.txt, or a byte-level BPE
    tokenizer.json), as tokenizer.ggml.model "gpt2" with tokens, token types, merges, the special
    ids of config.json and the chat template of tokenizer_config.json.

Importable: write_gguf(path, config, tensors, type_name, tokenizer=None, version=3, overrides=None) and
hf_folder_to_gguf(hf_dir, out_path, type_name, ..., overrides=None) (overrides: GGUF tensor name ->
its type, for files llama-quantize's --tensor-type would make).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.gguf_meta import GLOBAL_TENSORS, LAYER_TENSORS, ROPE_FREQS, llama3_factors, permute_row_order  # noqa: E402
from tools import kquants  # noqa: E402
from tools.quants import quantize  # noqa: E402

TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")
MIXES = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}  # llama.cpp's mixes: their base type (tensor_type)
K_TYPES = ("Q4_K", "Q5_K", "Q6_K", *MIXES)  # k-quants: the pure ones need rows of whole super-blocks of 256
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q4_K": 14, "Q4_K_M": 15,
              "Q5_K": 16, "Q5_K_M": 17, "Q6_K": 18, "BF16": 32}
ARCHITECTURES = ("llama", "qwen2", "qwen3")
CONTROL, USER_DEFINED, NORMAL = 3, 4, 1


def gguf_name(hf_name: str) -> str:
    """model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight (the inverse of app/gguf_meta's map)."""
    stem, suffix = hf_name.rsplit(".", 1)
    for gguf_leaf, hf_leaf in GLOBAL_TENSORS.items():
        if stem == hf_leaf:
            return f"{gguf_leaf}.{suffix}"
    if stem.startswith("model.layers."):
        layer, leaf = stem[len("model.layers."):].split(".", 1)
        for gguf_leaf, hf_leaf in LAYER_TENSORS.items():
            if leaf == hf_leaf:
                return f"blk.{layer}.{gguf_leaf}.{suffix}"
    raise ValueError(f"no GGUF name for tensor {hf_name!r}")


def _ggml_array(values: np.ndarray, type_name: str):
    """-> (array to write, raw_dtype for GGUFWriter)."""
    import gguf

    if values.ndim == 1 or type_name == "F32":
        return values.astype(np.float32), None
    if type_name == "F16":
        return values.astype(np.float16), None
    if type_name == "BF16":
        import torch

        bf16 = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(torch.bfloat16)
        return bf16.view(torch.int16).numpy().view(np.uint16), gguf.GGMLQuantizationType.BF16
    if type_name in kquants.BLOCK_BYTES:
        return kquants.quantize(values, type_name), gguf.GGMLQuantizationType[type_name]
    if values.shape[-1] % 32:
        print(f"note: rows of {values.shape[-1]} values are not whole blocks of 32: stored as F32", file=sys.stderr)
        return values.astype(np.float32), None
    return quantize(values, type_name), gguf.GGMLQuantizationType[type_name]


def write_gguf(path, config: dict, tensors: dict, type_name: str = "F32", tokenizer: dict | None = None,
               version: int = 3, name: str = "random model", overrides: dict | None = None) -> Path:
    """config: a config.json dict; tensors: HF name -> float numpy array; tokenizer: GGUF tokenizer
    keys (tokenizer.ggml.*, tokenizer.chat_template) -> values; overrides: GGUF tensor name -> the
    type to write it in instead (as llama-quantize's --tensor-type does)."""
    import gguf

    arch = config["model_type"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"model_type {arch!r} is not one of {ARCHITECTURES}")
    if type_name not in TYPES + K_TYPES:
        raise ValueError(f"type {type_name!r} is not one of {TYPES + K_TYPES}")
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch)
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    # transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; older files rope_theta + rope_scaling
    rope = dict(config.get("rope_parameters") or {})
    theta = float(config.get("rope_theta", rope.get("rope_theta", 10000.0)))
    scaling = config.get("rope_scaling") or {k: v for k, v in rope.items() if k != "rope_theta"}
    rope_type = scaling.get("rope_type", scaling.get("type"))
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if "head_dim" in config:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(FILE_TYPES[type_name])
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
    for key, value in (tokenizer or {}).items():
        _add_key(writer, key, value)

    if rope_type == "llama3":
        factors = llama3_factors(head_dim, theta, scaling["factor"],
                                 scaling["low_freq_factor"], scaling["high_freq_factor"],
                                 scaling["original_max_position_embeddings"])
        writer.add_tensor(ROPE_FREQS, np.asarray(factors, np.float32))
    for hf_name, values in tensors.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        values = np.asarray(values, dtype=np.float32)
        target = gguf_name(hf_name)
        if arch == "llama" and (".attn_q." in target or ".attn_k." in target):
            values = values[np.asarray(permute_row_order(heads if ".attn_q." in target else kv_heads, len(values)))]
        kind = (overrides or {}).get(target) or tensor_type(
            target, type_name, config["num_hidden_layers"], bool(config.get("tie_word_embeddings")), values.shape[-1])
        array, raw_dtype = _ggml_array(values, kind)
        writer.add_tensor(target, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if version != 3:
        set_version(path, version)
    return path


def use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of the layers whose attn_v and ffn_down Q4_K_M / Q5_K_M keep in Q6_K."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


# llama.cpp's tensor_type_fallback: the type a k-quant tensor whose rows are not whole super-blocks
# of 256 is written in instead (F16 where the rows are not whole blocks of 32 either)
FALLBACKS = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def tensor_type(target: str, type_name: str, layers: int, tied: bool = False, cols: int = 256) -> str:
    """The type GGUF tensor `target` (rows of `cols` values) is written in for the file type
    `type_name`, as llama.cpp's llama_tensor_get_type picks it for a dense model (src/llama-quant.cpp):
    Q4_K_M and Q5_K_M are Q4_K / Q5_K with Q6_K for output.weight (token_embd.weight when the head is
    tied to it; Q8_0 when its rows are not whole super-blocks) and for attn_v and ffn_down of the
    layers use_more_bits picks, so a layer's q and k (Q4_K) and v (Q6_K) may differ; a k-quant
    tensor whose rows are not whole super-blocks falls back to FALLBACKS (a 576-wide model's Q4_K_M
    is mostly Q5_0, with Q8_0 where it would be Q6_K)."""
    if type_name not in MIXES:
        kind = type_name
    elif target == "output.weight" or (tied and target == "token_embd.weight"):
        kind = "Q6_K" if cols % 256 == 0 else "Q8_0"
    else:
        leaf = target.split(".")
        more = leaf[0] == "blk" and leaf[2] in ("attn_v", "ffn_down") and use_more_bits(int(leaf[1]), layers)
        kind = "Q6_K" if more else MIXES[type_name]
    if type_name in MIXES and kind in FALLBACKS and cols % 256:
        kind = FALLBACKS[kind] if cols % 32 == 0 else "F16"
    return kind


def set_version(path: Path, version: int) -> None:
    """Versions 2 and 3 share one layout (3 added big-endian files): rewrite the version field."""
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(int(version).to_bytes(4, "little"))


def _add_key(writer, key: str, value) -> None:
    import gguf

    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif key in ("tokenizer.ggml.token_type",):
        writer.add_array(key, [int(v) for v in value])
    elif key == "tokenizer.ggml.scores":
        writer.add_key_value(key, [float(v) for v in value], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT32)
    else:
        writer.add_array(key, list(value))


def hf_tokenizer_metadata(folder: Path, config: dict, pre: str = "gpt2") -> dict | None:
    """A byte-level BPE tokenizer of a HF folder as GGUF metadata (None when the folder has none)."""
    added = {}
    if (folder / "tokenizer.json").exists():
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        model = spec.get("model", {})
        if model.get("type") != "BPE":
            raise ValueError(f"{folder / 'tokenizer.json'}: only BPE tokenizers are written")
        vocab = model["vocab"]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
        added = {t["id"]: t for t in spec.get("added_tokens", [])}
    elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [line for line in lines if line and not line.startswith("#version")]
    else:
        return None
    tokens = [None] * config["vocab_size"]
    for token, index in vocab.items():
        if index < len(tokens):
            tokens[index] = token
    for index, entry in added.items():
        if index < len(tokens):
            tokens[index] = entry["content"]
    types = []
    for index, token in enumerate(tokens):
        if token is None:  # rows of the embedding past the tokenizer's vocabulary
            tokens[index] = f"[PAD{index}]"
            types.append(USER_DEFINED)
        elif index in added:
            types.append(CONTROL if added[index].get("special") else USER_DEFINED)
        elif token == "<|endoftext|>":
            types.append(CONTROL)
        else:
            types.append(NORMAL)
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
                "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
    for key, gguf_key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                          ("pad_token_id", "padding_token_id")):
        if isinstance(config.get(key), int):
            metadata[f"tokenizer.ggml.{gguf_key}"] = config[key]
    settings_path = folder / "tokenizer_config.json"
    if settings_path.exists():
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        if isinstance(settings.get("chat_template"), str):
            metadata["tokenizer.chat_template"] = settings["chat_template"]
        if isinstance(settings.get("add_bos_token"), bool):
            metadata["tokenizer.ggml.add_bos_token"] = settings["add_bos_token"]
    return metadata


def hf_folder_to_gguf(hf_dir, out_path, type_name: str = "F32", version: int = 3, pre: str = "gpt2",
                      overrides: dict | None = None) -> Path:
    from safetensors.torch import load_file

    hf_dir = Path(hf_dir)
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    tensors = {}
    for path in sorted(hf_dir.glob("*.safetensors")):
        tensors.update({name: t.float().numpy() for name, t in load_file(path).items()})
    return write_gguf(out_path, config, tensors, type_name, hf_tokenizer_metadata(hf_dir, config, pre), version,
                      name=hf_dir.name, overrides=overrides)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write a GGUF file from a Hugging Face llama/qwen2/qwen3 folder.")
    parser.add_argument("hf_dir")
    parser.add_argument("out")
    parser.add_argument("--type", default="F32", choices=TYPES + K_TYPES,
                        help="type of the 2-D weights (default F32)")
    parser.add_argument("--version", type=int, default=3, choices=(2, 3))
    parser.add_argument("--pre", default="gpt2", help="tokenizer.ggml.pre (default gpt2)")
    args = parser.parse_args(argv)
    print(hf_folder_to_gguf(args.hf_dir, args.out, args.type, args.version, args.pre))
    return 0


if __name__ == "__main__":
    sys.exit(main())
