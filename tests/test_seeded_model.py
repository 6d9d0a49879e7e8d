"""tools/seeded_model.py rebuilds a model from its recipe and a seed, byte for byte, with values a
reference can run."""

import hashlib

import numpy as np
import pytest

from tools.make_model import cached_model
from tools.seeded_model import build, make_recipe, read_header

SHAPES = {"float16": "F16", "float32": "F32"}


@pytest.mark.parametrize("dtype", sorted(SHAPES))
def test_build_is_reproducible_and_runs_in_transformers(tmp_path_factory, tmp_path, dtype):
    """Two builds of one recipe and seed are the same bytes, another seed differs; tensors keep the
    template's names, shapes and dtype; gains lie in [0.5, 2) and every other value in [1/32, 1/8) in
    magnitude; transformers loads the result and gives finite, well separated logits."""
    template = cached_model(tmp_path_factory.getbasetemp() / "models", n_layer=2, n_head=2, n_embd=32,
                            n_positions=32, vocab_size=61, dtype=dtype)
    make_recipe(template, tmp_path / "recipe")
    first = build(tmp_path / "recipe", tmp_path / "a", seed=3)
    again = build(tmp_path / "recipe", tmp_path / "b", seed=3)
    other = build(tmp_path / "recipe", tmp_path / "c", seed=4)
    weights = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert first == again == hashlib.sha256(weights).hexdigest() != other
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == weights

    want, got = read_header(template / "model.safetensors"), read_header(tmp_path / "a" / "model.safetensors")
    names = sorted(k for k in want if k != "__metadata__")
    assert names == sorted(k for k in got if k != "__metadata__")
    from safetensors.numpy import load_file
    tensors = load_file(str(tmp_path / "a" / "model.safetensors"))
    for name in names:
        assert (got[name]["shape"], got[name]["dtype"]) == (want[name]["shape"], SHAPES[dtype])
        v = np.abs(tensors[name].astype(np.float64))
        low, high = (0.5, 2.0) if ".ln_" in name and name.endswith("weight") else (1 / 32, 1 / 8)
        assert low <= v.min() and v.max() < high, name

    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a", dtype=torch.float32)
    logits = model(torch.tensor([[1, 2, 3, 4]])).logits[0, -1].detach().numpy()
    assert np.isfinite(logits).all()
    top = np.sort(logits)[-2:]
    assert top[1] - top[0] > 1e-3
