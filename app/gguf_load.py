"""A GGUF file as the loader reads it: one file holding the config (metadata), the tokenizer
(metadata) and the weights, kept in the formats the file stores them in.

Standard library only, with the reading done through a source (app/sources.py), so the same code
runs in the page and in CPython tests with a fake source. The pure parts: app/gguf.py (the
header), app/gguf_meta.py (config and tensor names), app/gguf_tokenizer.py (tokenizer.json).

What reaches the GPU: matrices in every format of app/weights.py WEIGHT_FORMATS as their bytes (the
kernels dequantize in registers), the small vectors widened to F32, and llama.cpp's Q/K row
permutation undone row by row on upload (rows are whole blocks). A matrix the graph concatenates
(q|k|v, gate|up) whose parts are stored in different float formats is widened to F32; parts in
different formats with a block format among them stay as stored, each run of parts of one format in
its own GPU buffer and dispatch (app/model.py Llama.fused_weights).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from .config import config_from_json
from .errors import LoadError, ModelFormatError
from .generation_config import GenerationConfig
from .gguf import GGUFNeedMoreBytes, parse_gguf_header
from .gguf_meta import gguf_config, gguf_tensor_map, rope_freqs_tensor
from .gguf_tokenizer import gguf_tokenizer
from .tokenizer import load_tokenizer_from_texts
from .weights import MATRIX_DTYPES

GGUF_PROBE = 4 << 20  # bytes asked for first: the header of most GGUF files (the tokenizer is in it)


def is_gguf_name(name) -> bool:
    return isinstance(name, str) and name.lower().endswith(".gguf")


@dataclass
class GGUFTensor:
    """A weight as runner.py uploads it: format, Hugging Face shape, bytes, and the HF row order
    (HF row r is stored row row_order[r]) or None."""

    dtype: str
    shape: tuple
    data: object
    row_order: list | None = None


async def read_header(source, name: str, probe):
    """The parsed header, reading further into the file while the header goes on."""
    head, size = probe.head, probe.size
    while True:
        try:
            return parse_gguf_header(head, size, name)
        except GGUFNeedMoreBytes as more:
            want = max(more.needed, 2 * len(head))
            if size is not None:
                want = min(want, size)
            extra = await source.read_range(name, len(head), want - 1)
            if not extra:
                raise LoadError(f"{name}: the file ends inside its GGUF header ({len(head):,} bytes)", "format") \
                    from None
            head = head + extra
        except ModelFormatError as exc:
            raise LoadError(str(exc), "format") from None


async def read_rope_freqs(source, name: str, header):
    """Llama 3's rope factors (rope_freqs.weight, F32), or None."""
    info = rope_freqs_tensor(header)
    if info is None:
        return None
    if info.type_name != "F32":
        raise LoadError(f"{name}: rope_freqs.weight is {info.type_name}; expected F32", "format")
    raw = await source.read_range(name, info.data_offset, info.data_offset + info.nbytes - 1)
    return list(struct.unpack(f"<{info.numel}f", raw[:info.numel * 4]))


@dataclass
class GGUFModel:
    config: object          # LlamaConfig
    tokenizer: object
    generation: GenerationConfig
    mapping: dict           # HF name -> (GGUFTensorInfo, TensorMapping)
    notices: list

    def stored_formats(self) -> dict:
        """HF tensor name -> its format in the file."""
        return {hf: info.type_name for hf, (info, _) in self.mapping.items()}

    def placed(self) -> dict:
        """HF name -> (first byte in the file, bytes, GGUFTensor without its bytes yet)."""
        return {hf: (info.data_offset, info.nbytes, GGUFTensor(info.type_name, tuple(m.shape), None, m.row_order()))
                for hf, (info, m) in self.mapping.items()}


def describe(header, name: str, rope_freqs=None) -> GGUFModel:
    """Config, tokenizer, generation defaults and tensor map of a parsed header (LoadError if any
    is missing or wrong)."""
    try:
        config = gguf_config(header, rope_freqs=rope_freqs)
        cfg = config_from_json(json.dumps(config), f"{name} (metadata)")
        mapping = gguf_tensor_map(header, config)
        if "tokenizer.ggml.model" not in header.metadata:
            raise ModelFormatError(f"{name}: the file has no tokenizer in its metadata (tokenizer.ggml.model)")
        tokenizer_json, tokenizer_config = gguf_tokenizer(header)
        tokenizer = load_tokenizer_from_texts({"tokenizer.json": json.dumps(tokenizer_json),
                                               "tokenizer_config.json": json.dumps(tokenizer_config)})
        ids = {key: config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id") if key in config}
        generation = GenerationConfig.from_json(json.dumps(ids), cfg.vocab_size)
    except (ModelFormatError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, LoadError):
            raise
        message = str(exc)
        raise LoadError(message if name in message else f"{name}: {message}", "format") from None
    by_hf = {m.hf_name: (header.tensors[g], m) for g, m in mapping.items()}
    types = sorted({info.type_name for info, _ in by_hf.values()})
    notices = [f"{name}: GGUF weights kept as stored ({', '.join(types)}), dequantized inside the kernels"]
    return GGUFModel(cfg, tokenizer, generation, by_hf, notices)


def weight_formats(weights, stored: dict) -> tuple:
    """(the graph's default matrix format, {key: format} where it differs) for a graph's WeightSpecs
    whose sources are stored in the formats `stored` (HF name -> format). The key is the tensor's
    name for a weight of one tensor (the token table's splits share it), else the weight's label. A
    weight of several tensors (q|k|v, gate|up) in float formats only is widened to F32; one whose
    tensors mix a block format with others keeps each tensor's own format, keyed by the tensor's name
    (llama.cpp's Q4_K_M stores some layers' attn_v as Q6_K): app/model.py then runs it in one
    dispatch per run of parts of one format."""
    chosen = {}
    for w in weights:
        kinds = {stored[s] for s in w.sources if s in stored}
        if not kinds or (w.rows == 1 and w.dtype == "F32"):
            continue  # computed tensors, and vectors (widened to F32 on upload)
        if len(kinds) == 1:
            fmt = kinds.pop()
        elif kinds <= set(MATRIX_DTYPES):
            fmt = "F32"
        else:
            chosen.update({s: stored[s] for s in w.sources})
            continue
        chosen[w.sources[0] if len(w.sources) == 1 else w.label] = fmt  # the key graph.fmt() looks up
    if not chosen:
        return "F32", {}
    counts: dict = {}
    for fmt in chosen.values():
        counts[fmt] = counts.get(fmt, 0) + 1
    default = max(sorted(counts), key=counts.get)
    return default, {label: fmt for label, fmt in chosen.items() if fmt != default}
