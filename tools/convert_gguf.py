"""GGUF -> a standard Hugging Face folder (tools/convert.py's GGUF source).

    python tools/convert.py MODEL.gguf OUT_DIR [--dtype float32|float16|bfloat16]

Reads llama, qwen2 and qwen3 GGUF files (the tensor types of app/gguf.py TYPE_BLOCKS) with the
page's own parser (app/gguf.py: every bound checked), and writes what transformers'
`from_pretrained(OUT_DIR)` reads:

  config.json              from the metadata (app/gguf_meta.py): model_type, sizes, rope, eps, ids
  model.safetensors        Hugging Face names and nn.Linear [out, in] layout; quantized tensors
                           dequantized as ggml does (tools/quants.py), in float32 by default (exact:
                           a dequantized value is a float32 product); llama.cpp's Q/K row
                           permutation undone
  tokenizer.json,          from the tokenizer metadata (app/gguf_tokenizer.py), as transformers
  tokenizer_config.json    builds it for `AutoTokenizer.from_pretrained(dir, gguf_file=...)`, with
                           the chat template, bos/eos/unk/pad tokens and add_bos_token
  generation_config.json   bos/eos/pad ids, when the metadata gives an eos

The result gives transformers' own GGUF loading (`from_pretrained(dir, gguf_file=...)`) logits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.gguf import GGUF_MAGIC, read_gguf_header  # noqa: E402
from app.gguf_meta import gguf_config, gguf_tensor_map, rope_freqs_tensor  # noqa: E402
from app.gguf_tokenizer import gguf_tokenizer  # noqa: E402
from tools.quants import decode  # noqa: E402

DTYPES = ("float32", "float16", "bfloat16")


def is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def read_tensor(data, info):
    """The tensor's values as float32, in its row-major (Hugging Face) shape."""
    return decode(data[info.data_offset:info.data_offset + info.nbytes], info.type_name, info.shape)


def gguf_state_dict(path: Path):
    """-> (header, config dict, {HF name: float32 numpy array}) with the Q/K permutation undone."""
    import numpy as np

    header = read_gguf_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    freqs = rope_freqs_tensor(header)
    rope_freqs = read_tensor(data, freqs).reshape(-1).tolist() if freqs is not None else None
    config = gguf_config(header, rope_freqs=rope_freqs)
    tensors = {}
    for name, mapping in gguf_tensor_map(header, config).items():
        values = read_tensor(data, header.tensors[name])
        order = mapping.row_order()
        if order is not None:
            values = values[np.asarray(order)]
        tensors[mapping.hf_name] = np.ascontiguousarray(values)
    return header, config, tensors


def convert_gguf(src: Path, out_dir: Path, dtype: str | None, fail, notice) -> Path:
    """Write the Hugging Face folder; `fail(message)` returns the exception to raise."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    dtype = dtype or "float32"
    if dtype not in DTYPES:
        raise fail(f"--dtype {dtype} is not one of {', '.join(DTYPES)}")
    header, config, arrays = gguf_state_dict(src)
    target = getattr(torch, dtype)
    tensors = {}
    for name, values in arrays.items():
        tensor = torch.from_numpy(values).to(target).contiguous()
        if not torch.isfinite(tensor).all():
            worst = float(np.abs(values).max())
            raise fail(f"{src}: tensor {name!r} has values that are not finite in {dtype} (max |x| = {worst:g}); "
                       f"use --dtype float32")
        tensors[name] = tensor
    types = sorted({info.type_name for info in header.tensors.values()})
    notice(f"{src}: {len(tensors)} tensors ({', '.join(types)}) written as {dtype}")

    config = dict(config, dtype=dtype)
    tokenizer = None
    if "tokenizer.ggml.model" in header.metadata:
        tokenizer, tokenizer_config = gguf_tokenizer(header)
    else:
        notice(f"{src}: no tokenizer in the metadata; add tokenizer files to {out_dir}")

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out_dir / "model.safetensors", metadata={"format": "pt"})
    os.chmod(out_dir / "model.safetensors", 0o644)  # safetensors writes 0600; a web server must read it
    write_json(out_dir / "config.json", config)
    if tokenizer is not None:
        write_json(out_dir / "tokenizer.json", tokenizer, indent=None)
        write_json(out_dir / "tokenizer_config.json", tokenizer_config)
    generation = {key: config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id") if key in config}
    if "eos_token_id" in generation:
        write_json(out_dir / "generation_config.json", generation)
    return out_dir


def write_json(path: Path, content, indent: int | None = 2) -> None:
    path.write_text(json.dumps(content, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
