"""The model shapes the benchmarks make with random weights (app/bench.py `synthetic`, tools/bench.py
--synthetic, tools/webgpt_peer.py): their configs as their config.json say, and their graphs.

Standard library only, and no browser: CPython tools import it as well as the page.
"""

from __future__ import annotations

import json

from .config import config_from_dict
from .model import model_graph

# The weight formats the GPU's random fill writes (shaders/roofline.wgsl FILL_FORMAT).
FILL_FORMATS = {"F32": 0, "F16": 1, "BF16": 2, "Q8_0": 3, "Q4_0": 4, "Q4_1": 5}  # roofline.wgsl FILL_FORMAT

# Workgroups of the dispatch-cost probe (app/roofline.py dispatch_cost): the bare launch, and GEMV-sized
# grids (GPT-2 XL's MLP projection in 8-row workgroups is 200, Llama-1B's gate|up 1,024).
DISPATCH_GROUPS = (1, 256, 1024)

# Configs of the model shapes `synthetic` runs, as their config.json say (rope scaling left out:
# it changes no kernel's work).
SYNTHETIC = {
    "llama-1b": {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256,
                 "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                 "tie_word_embeddings": True},
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
                     "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                     "tie_word_embeddings": True},
    "qwen2.5-0.5b": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                     "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
                     "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                     "tie_word_embeddings": True},
    "gpt2-117m": {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024,
                  "vocab_size": 50257},
    "gpt2-xl": {"model_type": "gpt2", "n_layer": 48, "n_head": 25, "n_embd": 1600, "n_positions": 1024,
                "vocab_size": 50257},
    # small shapes for tests (tests/test_bench.py) and quick looks on a CPU adapter
    "llama-tiny": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 300,
                   "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                   "tie_word_embeddings": True},
    "gpt2-tiny": {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 512,
                  "vocab_size": 100},
}
# Token tables stored in another format than the matrices, as the real files do: SmolLM2's Q4_1
# GGUF keeps token_embd in Q8_0.
SYNTHETIC_TABLE_FORMATS = {("smollm2-135m", "Q4_1"): "Q8_0"}


def synthetic_graph(name: str, fmt: str, shapes, limits: dict, context: int | None = None):
    """(config, model graph) of a SYNTHETIC shape with its matrices in `fmt` (f32, f16, bf16, q8_0,
    q4_0, q4_1; GPT-2's only in the float formats: its Conv1D matrices are transposed on load as floats)."""
    if name not in SYNTHETIC:
        raise ValueError(f"unknown synthetic model {name!r}; known: {', '.join(SYNTHETIC)}")
    cfg = config_from_dict(json.loads(json.dumps(SYNTHETIC[name])), f"synthetic {name}")
    dtype = fmt.upper()
    if dtype not in FILL_FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; known: {', '.join(f.lower() for f in FILL_FORMATS)}")
    options = {"matrix_dtype": dtype, "context": context}
    if SYNTHETIC[name]["model_type"] == "gpt2":
        if dtype not in ("F32", "F16", "BF16"):
            raise ValueError(f"GPT-2's matrices are read as floats: {fmt} is for the Llama family")
        options["context"] = min(context or cfg.n_positions, cfg.n_positions)
    else:
        table = SYNTHETIC_TABLE_FORMATS.get((name, dtype))
        if table:
            options["formats"] = {"model.embed_tokens.weight": table}
    return cfg, model_graph(cfg, shapes, limits, **options)
