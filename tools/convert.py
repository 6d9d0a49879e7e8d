"""Convert a GPT-2 checkpoint or a GGUF file into the folder the page loads.

    python tools/convert.py SRC OUT_DIR [--dtype float16|float32|bfloat16] [--meta META.pkl]

SRC is one of
  - a Hugging Face GPT-2 folder: config.json + model.safetensors, or sharded
    (model.safetensors.index.json), or pytorch_model.bin (sharded: pytorch_model.bin.index.json);
  - a nanoGPT checkpoint: ckpt.pt (a dict with 'model_args' and 'model'), or a folder holding one;
  - a GGUF file (llama, qwen2, qwen3; the tensor types of app/gguf.py TYPE_BLOCKS): written as a
    standard Hugging Face folder with a tokenizer.json, see tools/convert_gguf.py. --dtype defaults
    to float32 there (dequantized values are exact in float32); bfloat16 is for GGUF sources only.

OUT_DIR gets config.json, model.safetensors (keys as transformers writes them:
`transformer.` prefix, `lm_head.weight` only when not tied) and the tokenizer files:
vocab.json + merges.txt, tokenizer.json or char_vocab.json (char -> id).

--dtype: float16 halves the download; float32 is exact. Default: keep F32 or F16 as they
are, and BF16 becomes float32 (exact).

nanoGPT specifics:
  - nn.Linear stores [out, in]; HF GPT-2's Conv1D stores [in, out]: the c_attn, c_proj, c_fc
    and mlp.c_proj weights are transposed.
  - `_orig_mod.` prefixes (torch.compile) are stripped.
  - bias=False models get zero biases (LayerNorm and Linear): exactly the same function.
  - nanoGPT's GELU is the exact erf form: activation_function 'gelu'.
  - meta.pkl (char-level datasets; beside the checkpoint, or --meta) becomes char_vocab.json;
    it is read with an unpickler that allows only dict, str and int. Without one, a model with
    a vocabulary of 50257 or more gets GPT-2's BPE files (nanoGPT uses tiktoken's gpt2).

Pickles (ckpt.pt, pytorch_model.bin) are read only with torch.load(weights_only=True): a
checkpoint that needs code to load is refused, and nothing in it runs.
Every failure: exit status 2 and one line `error: ...` on stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.config import GPT2Config, canonical_name, match_tensors  # noqa: E402
from app.errors import ModelFormatError as EngineFormatError  # noqa: E402
from app.safetensors import ModelFormatError  # noqa: E402
from tools.convert_gguf import convert_gguf, is_gguf  # noqa: E402

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "char_vocab.json",
                   "tokenizer_config.json", "special_tokens_map.json")
GPT2_VOCAB_SIZE = 50257

# nanoGPT's nn.Linear weights that HF GPT-2 stores transposed (Conv1D)
LINEAR_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class ConvertError(Exception):
    """A failure with a one-line message for the user."""


def notice(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# reading


def torch_load_safely(path: Path):
    """torch.load with weights_only=True; a pickle that needs code is refused, never run."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol-version chatter from the safe unpickler
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[-1] if lines else "")
        raise ConvertError(
            f"{path}: refused: this pickle needs code to load ({why.rstrip('.')}); only plain "
            f"tensors and containers are read (torch.load weights_only=True). Re-save the "
            f"state dict from a trusted environment, or use safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvertError(f"{path}: cannot read the checkpoint ({first})") from None


class _SafeMetaUnpickler(pickle.Unpickler):
    """Allows only builtins dict, str and int: enough for nanoGPT's meta.pkl, nothing runnable."""

    ALLOWED = {("builtins", "dict"), ("builtins", "str"), ("builtins", "int")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def read_meta_pkl(path: Path) -> dict:
    """nanoGPT meta.pkl -> char_vocab (char -> id)."""
    try:
        meta = _SafeMetaUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError) as e:
        raise ConvertError(f"{path}: refused: not a plain meta.pkl ({e})") from None
    stoi = meta.get("stoi") if isinstance(meta, dict) else None
    if not isinstance(stoi, dict) or not all(
        isinstance(c, str) and isinstance(i, int) and not isinstance(i, bool) for c, i in stoi.items()
    ):
        raise ConvertError(f"{path}: expected a dict with 'stoi' (char -> id)")
    if sorted(stoi.values()) != list(range(len(stoi))):
        raise ConvertError(f"{path}: 'stoi' ids are not 0..{len(stoi) - 1}")
    return dict(sorted(stoi.items(), key=lambda item: item[1]))


def read_hf_state_dict(folder: Path) -> dict:
    """All tensors of a HF folder, as torch tensors keyed as stored."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from app.safetensors import read_header

    def load_safetensors(path: Path) -> dict:
        read_header(path)  # our validation first: clear messages for LFS pointers, truncation...
        try:
            return load_file(path)
        except SafetensorError as e:
            raise ConvertError(f"{path}: {e}") from None

    def shards(index_path: Path) -> list:
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
            return sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConvertError(f"{index_path}: not a valid index (needs a 'weight_map' object)") from None

    def merge(state: dict, part: dict, path: Path) -> None:
        for key, tensor in part.items():
            if key in state:
                raise ConvertError(f"{path}: tensor {key!r} is also in another shard")
            state[key] = tensor

    state = {}
    if (folder / "model.safetensors").exists():
        return load_safetensors(folder / "model.safetensors")
    if (folder / "model.safetensors.index.json").exists():
        for shard in shards(folder / "model.safetensors.index.json"):
            merge(state, load_safetensors(folder / shard), folder / shard)
        return state
    if (folder / "pytorch_model.bin").exists():
        return _tensor_dict(torch_load_safely(folder / "pytorch_model.bin"), folder / "pytorch_model.bin")
    if (folder / "pytorch_model.bin.index.json").exists():
        for shard in shards(folder / "pytorch_model.bin.index.json"):
            merge(state, _tensor_dict(torch_load_safely(folder / shard), folder / shard), folder / shard)
        return state
    raise ConvertError(
        f"{folder}: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
    )


def _tensor_dict(obj, path: Path) -> dict:
    import torch

    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state dict, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError(f"{path}: entry {bad[0]!r} is not a tensor")
    return obj


# ---------------------------------------------------------------------------------------------
# the two sources


def from_hf_folder(folder: Path):
    """-> (config dict to write, GPT2Config, {canonical name: tensor}, tokenizer files to copy)"""
    config_path = folder / "config.json"
    cfg = GPT2Config.from_json(config_path.read_bytes(), str(config_path))  # clear errors first
    config_dict = json.loads(config_path.read_bytes())
    state = read_hf_state_dict(folder)
    tensors = {}
    for key, tensor in state.items():
        name = canonical_name(key)
        if name in tensors:
            raise ConvertError(f"{folder}: tensor {name!r} is stored twice (with and without 'transformer.')")
        tensors[name] = tensor
    tokenizer_files = [folder / name for name in TOKENIZER_FILES if (folder / name).exists()]
    return config_dict, cfg, tensors, tokenizer_files


def find_nanogpt_checkpoint(src: Path) -> Path | None:
    if src.is_file():
        return src
    if (src / "ckpt.pt").exists():
        return src / "ckpt.pt"
    return None


def from_nanogpt(ckpt_path: Path, meta_path: Path | None):
    import torch

    checkpoint = torch_load_safely(ckpt_path)
    if not isinstance(checkpoint, dict) or "model_args" not in checkpoint or "model" not in checkpoint:
        raise ConvertError(f"{ckpt_path}: not a nanoGPT checkpoint (needs 'model_args' and 'model')")
    args = checkpoint["model_args"]
    if not isinstance(args, dict):
        raise ConvertError(f"{ckpt_path}: 'model_args' is not a dict")
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        if key not in args:
            raise ConvertError(f"{ckpt_path}: 'model_args' has no {key!r}")
    vocab_size = args["vocab_size"]
    eos = GPT2_VOCAB_SIZE - 1 if isinstance(vocab_size, int) and vocab_size >= GPT2_VOCAB_SIZE else None
    config_dict = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": args["n_layer"],
        "n_head": args["n_head"],
        "n_embd": args["n_embd"],
        "n_positions": args["block_size"],
        "n_ctx": args["block_size"],
        "vocab_size": vocab_size,
        "n_inner": None,
        "activation_function": "gelu",  # nanoGPT uses nn.GELU(): the exact erf form
        "layer_norm_epsilon": 1e-5,  # F.layer_norm's default in nanoGPT's LayerNorm
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    }
    cfg = GPT2Config.from_dict(config_dict, f"{ckpt_path} (model_args)")

    state = _tensor_dict(checkpoint["model"], ckpt_path)
    tensors = {}
    for key, tensor in state.items():
        key = key.removeprefix("_orig_mod.")  # torch.compile's wrapper
        name = canonical_name(key)
        if name.endswith(LINEAR_WEIGHTS) and tensor.ndim == 2:
            tensor = tensor.t()  # nn.Linear [out, in] -> Conv1D [in, out]
        tensors[name] = tensor

    # bias=False: zero biases compute exactly the same function
    zero_biases = []
    expected = _expected_shapes(cfg)
    for name, shape in expected.items():
        if name.endswith(".bias") and name not in tensors:
            bias_dtype = tensors["wte.weight"].dtype if "wte.weight" in tensors else torch.float32
            tensors[name] = torch.zeros(shape, dtype=bias_dtype)
            zero_biases.append(name)
    if zero_biases:
        notice(f"{ckpt_path}: the model has no biases (bias=False); wrote {len(zero_biases)} zero biases")

    tokenizer = {}
    meta_path = meta_path or (ckpt_path.parent / "meta.pkl")
    if meta_path.exists():
        char_vocab = read_meta_pkl(meta_path)
        if len(char_vocab) > cfg.vocab_size:
            raise ConvertError(f"{meta_path}: {len(char_vocab)} characters but vocab_size is {cfg.vocab_size}")
        tokenizer["char_vocab.json"] = char_vocab
    return config_dict, cfg, tensors, tokenizer


def _expected_shapes(cfg):
    from app.config import expected_tensor_shapes

    return expected_tensor_shapes(cfg)


# ---------------------------------------------------------------------------------------------
# writing


def convert(src, out_dir, dtype: str | None = None, meta: str | None = None) -> Path:
    import torch
    from safetensors.torch import save_file

    src, out_dir = Path(src), Path(out_dir)
    if not src.exists():
        raise ConvertError(f"{src}: no such file or folder")
    if out_dir.resolve() == (src if src.is_dir() else src.parent).resolve():
        raise ConvertError(f"{out_dir}: the output folder must differ from the source")
    if is_gguf(src):
        return convert_gguf(src, out_dir, dtype, ConvertError, notice)
    if dtype == "bfloat16":
        raise ConvertError("--dtype bfloat16 is for GGUF sources; GPT-2 folders are written as float16 or float32")

    copy_files, write_files = [], {}
    if src.is_dir() and (src / "config.json").exists():
        config_dict, cfg, tensors, copy_files = from_hf_folder(src)
    else:
        ckpt_path = find_nanogpt_checkpoint(src)
        if ckpt_path is None:
            raise ConvertError(f"{src}: neither a Hugging Face folder (no config.json) nor a nanoGPT ckpt.pt")
        config_dict, cfg, tensors, write_files = from_nanogpt(ckpt_path, Path(meta) if meta else None)

    # validate names, shapes and dtypes with the page's own rules
    dtype_names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}
    described = {
        name: SimpleNamespace(dtype=dtype_names.get(t.dtype, str(t.dtype).removeprefix("torch.")), shape=tuple(t.shape))
        for name, t in tensors.items()
    }
    if any(d.dtype == "F64" for d in described.values()):  # f64 checkpoints exist; store as f32
        for d in described.values():
            d.dtype = "F32" if d.dtype == "F64" else d.dtype
    mapping, notices = match_tensors(cfg, described, str(src))
    for message in notices:
        notice(message)

    # tied or not: keep lm_head.weight only if it differs from wte (transformers 5 uses it then)
    tie = cfg.tie_word_embeddings
    if "lm_head.weight" in mapping:
        if torch.equal(tensors["lm_head.weight"].to(torch.float32), tensors["wte.weight"].to(torch.float32)):
            del mapping["lm_head.weight"]
            tie = True
        elif tie:
            notice("lm_head.weight differs from wte.weight: written untied (tie_word_embeddings false)")
            tie = False

    target = {"float16": torch.float16, "float32": torch.float32, None: None}[dtype]
    out_tensors = {}
    for name in mapping:
        tensor = tensors[name]
        want = target or (torch.float32 if tensor.dtype in (torch.bfloat16, torch.float64) else tensor.dtype)
        converted = tensor.to(want).contiguous()
        if not torch.isfinite(converted).all():
            worst = float(tensor.to(torch.float32).abs().max())
            raise ConvertError(
                f"{src}: tensor {name!r} has values that are not finite in {str(want).removeprefix('torch.')}"
                f" (max |x| = {worst:g}); use --dtype float32"
            )
        key = name if name == "lm_head.weight" else "transformer." + name
        out_tensors[key] = converted
    dtypes = {str(t.dtype).removeprefix("torch.") for t in out_tensors.values()}

    config_dict.pop("torch_dtype", None)
    config_dict["dtype"] = dtypes.pop() if len(dtypes) == 1 else "float32"
    config_dict["tie_word_embeddings"] = tie
    config_dict.setdefault("model_type", "gpt2")

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(out_tensors, out_dir / "model.safetensors", metadata={"format": "pt"})
    os.chmod(out_dir / "model.safetensors", 0o644)  # safetensors writes 0600; a web server must read it
    (out_dir / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
    for path in copy_files:
        shutil.copyfile(path, out_dir / path.name)
    for name, content in write_files.items():
        (out_dir / name).write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")

    has_tokenizer = any((out_dir / n).exists() for n in ("vocab.json", "tokenizer.json", "char_vocab.json"))
    if not has_tokenizer and cfg.vocab_size >= GPT2_VOCAB_SIZE:
        from tools.make_model import gpt2_tokenizer_dir

        try:
            source = gpt2_tokenizer_dir()
            for name in ("vocab.json", "merges.txt"):
                shutil.copyfile(source / name, out_dir / name)
            notice("no tokenizer files in the source: wrote GPT-2's vocab.json + merges.txt")
            has_tokenizer = True
        except FileNotFoundError:
            pass
    if not has_tokenizer:
        notice("no tokenizer files found (vocab.json + merges.txt, tokenizer.json, char_vocab.json, meta.pkl); add one")
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert a Hugging Face GPT-2 folder, a nanoGPT ckpt.pt or a GGUF file into the folder the page "
                    "loads."
    )
    parser.add_argument("src", help="HF folder, nanoGPT ckpt.pt, a folder holding ckpt.pt, or a .gguf file")
    parser.add_argument("out_dir")
    parser.add_argument("--dtype", choices=("float16", "float32", "bfloat16"), default=None,
                        help="default: keep F32/F16, BF16 becomes float32 (GGUF: float32)")
    parser.add_argument("--meta", help="nanoGPT meta.pkl (default: beside the checkpoint)")
    args = parser.parse_args(argv)
    try:
        out_dir = convert(args.src, args.out_dir, args.dtype, args.meta)
    except (ConvertError, ModelFormatError, EngineFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 -- anything else still gets one line, no traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"error: {type(e).__name__}: {first}", file=sys.stderr)
        return 2
    print(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
