"""tools/convert.py: Hugging Face folders (safetensors, sharded, pytorch_model.bin) and nanoGPT
checkpoints to the folder the page loads; --dtype; pickles read safely, malicious ones refused."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tools import convert
from tools.make_model import make_model

ROOT = Path(__file__).resolve().parents[1]
SHAPE = dict(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=40, tokenizer="char", init_std=0.1)
LINEAR = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("convert") / "hf", **SHAPE)


def run(*args) -> int:
    return convert.main([str(a) for a in args])


def load_st(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def hf_logits(folder: Path, ids) -> torch.Tensor:
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


# ------------------------------------------------------------------------------------ HF folders


def test_hf_safetensors_roundtrip_and_float16(hf, tmp_path):
    assert run(hf, tmp_path / "f32") == 0
    original, out = load_st(hf), load_st(tmp_path / "f32")
    assert set(out) == set(original) - {k for k in original if k == "lm_head.weight"}
    assert all(torch.equal(out[k], original[k]) for k in out)
    assert json.loads((tmp_path / "f32/config.json").read_text())["dtype"] == "float32"
    assert (tmp_path / "f32/char_vocab.json").read_bytes() == (hf / "char_vocab.json").read_bytes()

    assert run(hf, tmp_path / "f16", "--dtype", "float16") == 0
    half = load_st(tmp_path / "f16")
    assert {t.dtype for t in half.values()} == {torch.float16}
    assert all(torch.equal(half[k], original[k].half()) for k in half)
    assert json.loads((tmp_path / "f16/config.json").read_text())["dtype"] == "float16"
    ids = [1, 5, 9, 3]
    assert torch.allclose(hf_logits(tmp_path / "f16", ids), hf_logits(hf, ids), atol=5e-2)


def test_pytorch_model_bin_and_sharded_sources(hf, tmp_path):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(hf)
    (tmp_path / "bin").mkdir()
    for name in ("config.json", "char_vocab.json"):
        (tmp_path / "bin" / name).write_bytes((hf / name).read_bytes())
    # the file transformers < 5 wrote: torch.save of the state dict (lm_head shares wte's storage)
    torch.save(model.state_dict(), tmp_path / "bin/pytorch_model.bin")
    assert run(tmp_path / "bin", tmp_path / "from_bin") == 0
    original, out = load_st(hf), load_st(tmp_path / "from_bin")
    assert all(torch.equal(out[k], original[k]) for k in out) and len(out) >= 2 + 12 * 2 + 2

    model.save_pretrained(tmp_path / "sharded", max_shard_size="50KB")
    assert (tmp_path / "sharded/model.safetensors.index.json").exists()
    assert run(tmp_path / "sharded", tmp_path / "from_sharded") == 0
    out = load_st(tmp_path / "from_sharded")
    assert all(torch.equal(out[k], original[k]) for k in out)


def test_bf16_source_becomes_float32_exactly(hf, tmp_path):
    from transformers import GPT2LMHeadModel

    GPT2LMHeadModel.from_pretrained(hf).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert run(tmp_path / "bf16", tmp_path / "out") == 0
    out, src = load_st(tmp_path / "out"), load_st(tmp_path / "bf16")
    assert {t.dtype for t in out.values()} == {torch.float32}
    assert all(torch.equal(out[k], src[k].float()) for k in out)


# ------------------------------------------------------------------------------------ nanoGPT


def nanogpt_state(hf_folder: Path, bias=True) -> dict:
    """The HF model's weights as nanoGPT stores them: nn.Linear [out, in], torch.compile prefix,
    causal-mask buffers, lm_head tied to wte."""
    state = {}
    for key, tensor in load_st(hf_folder).items():
        if key.endswith(LINEAR):
            tensor = tensor.t().contiguous()
        if not bias and key.endswith(".bias"):
            continue
        state["_orig_mod." + key] = tensor.clone()
    for i in range(SHAPE["n_layer"]):
        n = SHAPE["n_positions"]
        state[f"_orig_mod.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
    state["_orig_mod.lm_head.weight"] = state["_orig_mod.transformer.wte.weight"]
    return state


def nanogpt_forward(state: dict, ids) -> torch.Tensor:
    """nanoGPT's model.py forward (GELU exact, F.layer_norm eps 1e-5), on its own state dict."""
    s = {k.removeprefix("_orig_mod.transformer.").removeprefix("_orig_mod."): v for k, v in state.items()}
    E, H = SHAPE["n_embd"], SHAPE["n_head"]
    get = s.get
    idx = torch.tensor([ids])
    x = s["wte.weight"][idx] + s["wpe.weight"][: len(ids)]
    for i in range(SHAPE["n_layer"]):
        p = f"h.{i}."
        h = F.layer_norm(x, (E,), s[p + "ln_1.weight"], get(p + "ln_1.bias"), 1e-5)
        q, k, v = F.linear(h, s[p + "attn.c_attn.weight"], get(p + "attn.c_attn.bias")).split(E, dim=2)
        q, k, v = (t.view(1, len(ids), H, E // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(1, len(ids), E)
        x = x + F.linear(y, s[p + "attn.c_proj.weight"], get(p + "attn.c_proj.bias"))
        h = F.layer_norm(x, (E,), s[p + "ln_2.weight"], get(p + "ln_2.bias"), 1e-5)
        h = F.gelu(F.linear(h, s[p + "mlp.c_fc.weight"], get(p + "mlp.c_fc.bias")))
        x = x + F.linear(h, s[p + "mlp.c_proj.weight"], get(p + "mlp.c_proj.bias"))
    x = F.layer_norm(x, (E,), s["ln_f.weight"], get("ln_f.bias"), 1e-5)
    return (x @ s["wte.weight"].t())[0]


def write_ckpt(path: Path, state: dict, extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = dict(n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], n_embd=SHAPE["n_embd"],
                block_size=SHAPE["n_positions"], vocab_size=SHAPE["vocab_size"], bias=True, dropout=0.0)
    torch.save({"model": state, "model_args": args, "iter_num": 100, "best_val_loss": 1.5,
                "config": {"dataset": "shakespeare_char"}, **(extra or {})}, path)
    return path


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_nanogpt_checkpoint_matches_nanogpt_forward(hf, tmp_path, bias, capsys):
    state = nanogpt_state(hf, bias)
    ckpt = write_ckpt(tmp_path / "run/ckpt.pt", state)
    chars = json.loads((hf / "char_vocab.json").read_text())
    with open(tmp_path / "run/meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "stoi": chars, "itos": {i: c for c, i in chars.items()}}, f)
    assert run(ckpt.parent, tmp_path / "out") == 0
    config = json.loads((tmp_path / "out/config.json").read_text())
    assert config["activation_function"] == "gelu" and config["n_positions"] == SHAPE["n_positions"]
    assert json.loads((tmp_path / "out/char_vocab.json").read_text()) == chars
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    with torch.no_grad():
        want = nanogpt_forward(state, ids)
    assert torch.allclose(hf_logits(tmp_path / "out", ids), want, atol=1e-4), "transposes or GELU form wrong"
    if not bias:
        assert "zero biases" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ safety


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_and_never_run(hf, tmp_path, capsys):
    marker = tmp_path / "pwned"
    state = nanogpt_state(hf)
    ckpt = write_ckpt(tmp_path / "evil/ckpt.pt", state, {"payload": Evil(marker)})
    assert run(ckpt, tmp_path / "out1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "refused" in err and "needs code to load" in err and "\n" not in err, err
    assert not marker.exists()

    folder = tmp_path / "evil_hf"
    folder.mkdir()
    (folder / "config.json").write_bytes((hf / "config.json").read_bytes())
    torch.save({"transformer.wte.weight": torch.zeros(2, 2), "x": Evil(marker)}, folder / "pytorch_model.bin")
    assert run(folder, tmp_path / "out2") == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()

    good = write_ckpt(tmp_path / "meta_evil/ckpt.pt", state)
    with open(good.parent / "meta.pkl", "wb") as f:
        pickle.dump({"stoi": {"a": 0}, "x": Evil(marker)}, f)
    assert run(good, tmp_path / "out3") == 2
    assert "not a plain meta.pkl" in capsys.readouterr().err and not marker.exists()
    for out in ("out1", "out2", "out3"):
        assert not (tmp_path / out / "model.safetensors").exists()


def test_cli_errors_are_one_line_with_exit_2(hf, tmp_path):
    too_big = make_model(tmp_path / "big_values", **SHAPE)
    from safetensors.torch import load_file, save_file

    tensors = load_file(too_big / "model.safetensors")
    tensors["transformer.wte.weight"][0, 0] = 1e6  # beyond float16
    save_file(tensors, too_big / "model.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([tmp_path / "nope", tmp_path / "o1"], "no such file or folder"),
        ([empty, tmp_path / "o2"], "neither a Hugging Face folder"),
        ([hf, hf], "must differ from the source"),
        ([too_big, tmp_path / "o3", "--dtype", "float16"], "not finite in float16"),
    ]
    for args, expected in cases:
        proc = subprocess.run([sys.executable, str(ROOT / "tools/convert.py"), *map(str, args)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("note: ")]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
