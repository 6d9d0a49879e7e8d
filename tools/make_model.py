"""Make a random-weight model in the Hugging Face layout, for tests and benchmarks: GPT-2, or a
Llama-family model (llama, mistral, qwen2, qwen3).

    python tools/make_model.py OUT_DIR --n-layer 2 --n-head 3 --n-embd 96 --n-positions 128
        --vocab-size 97 [--dtype float32|float16|bfloat16] [--seed 0] [--activation gelu_new|gelu]
        [--init-std 0.02] [--tokenizer gpt2|char] [--untied] [--plain-init]
    python tools/make_model.py OUT_DIR --model-type qwen3 --n-layer 2 --n-head 4 --n-embd 96
        --n-positions 128 --vocab-size 97 [--n-inner 160] [--kv-heads 2] [--head-dim 40]
        [--rope-theta 1e6] [--rope-scaling '{"rope_type": "llama3", ...}'] [--attention-bias]
        [--mlp-bias] [--sliding-window N] [--shard-size 200KB] [...the options above]

Writes config.json, model.safetensors (transformers' own save_pretrained, so the key names
are exactly what transformers writes; with --shard-size, shards and model.safetensors.index.json)
and tokenizer files: GPT-2's vocab.json + merges.txt for a vocabulary of 50257 or more, else a
char_vocab.json (char -> id) of V distinct characters.

Why --init-std: with transformers' default init (std 0.02) a random model's logits are
nearly uniform, so greedy decoding meets near-ties that any rounding difference flips.
An std of 0.1-0.2 gives well separated logits (see --report). By default the norm
gains/biases and the linear biases are randomized too (transformers initializes them to
1 and 0), so that a kernel that drops a bias or a norm parameter cannot pass a test;
--plain-init keeps transformers' init.

Importable: make_model(out_dir, model_type="gpt2", **shape) -> Path (GPT-2 takes
make_gpt2_model's arguments, the Llama family make_family_model's: transformers' config keys),
and cached_model(root, **shape) -> Path which reuses a model made earlier with the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import string
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TORCH_DTYPES = ("float32", "float16", "bfloat16")
GPT2_VOCAB_SIZE = 50257
FAMILY = ("llama", "mistral", "qwen2", "qwen3")
MODEL_TYPES = ("gpt2",) + FAMILY

# a Llama-family model's shape when a caller names only what its test is about
FAMILY_SHAPE = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                    vocab_size=97, max_position_embeddings=128, tie_word_embeddings=True)


def gpt2_tokenizer_dir() -> Path:
    """Where GPT-2's vocab.json + merges.txt live: weights/gpt2-tokenizer, shipped with the repository."""
    folder = REPO / "weights" / "gpt2-tokenizer"
    if not ((folder / "vocab.json").exists() and (folder / "merges.txt").exists()):
        raise FileNotFoundError(f"GPT-2 tokenizer files (vocab.json, merges.txt) not found in {folder}")
    return folder


def char_vocab(vocab_size: int) -> dict:
    """vocab_size distinct characters -> ids: newline, printable ASCII, then printable Unicode."""
    chars = ["\n"] + [c for c in string.printable if c.isprintable()]
    code_point = 0xA1
    while len(chars) < vocab_size:
        c = chr(code_point)
        if c.isprintable() and not c.isspace() and not 0xD800 <= code_point < 0xE000:
            chars.append(c)
        code_point += 1
    return {c: i for i, c in enumerate(chars[:vocab_size])}


def make_model(out_dir, model_type="gpt2", **shape) -> Path:
    """Write a random model of model_type to out_dir (created or overwritten); returns the folder."""
    if model_type == "gpt2":
        return make_gpt2_model(out_dir, **shape)
    return make_family_model(out_dir, model_type, **shape)


def make_gpt2_model(
    out_dir,
    n_layer=2,
    n_head=2,
    n_embd=64,
    n_positions=64,
    vocab_size=97,
    dtype="float32",
    seed=0,
    activation="gelu_new",
    init_std=0.02,
    tokenizer=None,
    tie_word_embeddings=True,
    layer_norm_epsilon=1e-5,
    n_inner=None,
    plain_init=False,
) -> Path:
    """Write a random GPT-2 to out_dir (created or overwritten); returns the folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    _quiet_transformers()
    tokenizer, eos = _check_dtype_and_tokenizer(dtype, tokenizer, vocab_size)
    config = GPT2Config(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        n_positions=n_positions,
        vocab_size=vocab_size,
        n_inner=n_inner,
        activation_function=activation,
        layer_norm_epsilon=layer_norm_epsilon,
        initializer_range=init_std,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    if not plain_init:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".ln_" in name:  # LayerNorm gain around 1, bias around 0
                    center = 1.0 if name.endswith("weight") else 0.0
                    param.copy_(center + 0.1 * torch.randn(param.shape, generator=generator))
                elif name.endswith(".bias"):
                    param.copy_(init_std * torch.randn(param.shape, generator=generator))

    return _save(model, out_dir, dtype, tokenizer, vocab_size)


def make_family_model(out_dir, model_type="llama", *, dtype="float32", seed=0, init_std=0.02, tokenizer=None,
                      plain_init=False, shard_size=None, **config) -> Path:
    """Write a random Llama-family model to out_dir (created or overwritten); returns the folder.

    Every keyword that is not one of this function's own goes to transformers' config class of
    model_type as is (FAMILY_SHAPE fills in the sizes not given, and ties the embeddings unless
    tie_word_embeddings=False), so any shape transformers can build
    can be made: num_key_value_heads, head_dim, rope_theta, rope_scaling ({"rope_type": "llama3", ...}
    or {"rope_type": "linear", "factor": 2.0}), tie_word_embeddings, attention_bias, mlp_bias,
    sliding_window, rms_norm_eps, ... transformers builds the model and save_pretrained writes it, so
    the names, shapes and config.json are by definition what transformers loads. Without a tokenizer
    of GPT-2's, bos/eos are null (the Llama classes would otherwise default them to ids 1 and 2).
    shard_size (e.g. "200KB"): shards of at most that size, and model.safetensors.index.json.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    _quiet_transformers()
    if model_type not in FAMILY:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    config = {**FAMILY_SHAPE, **config}
    tokenizer, eos = _check_dtype_and_tokenizer(dtype, tokenizer, config["vocab_size"])
    config.setdefault("bos_token_id", eos)
    config.setdefault("eos_token_id", eos)
    # multi-head attention unless told: the Qwen and Mistral classes default to 32 and 8 KV heads
    config.setdefault("num_key_value_heads", config["num_attention_heads"])

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, initializer_range=init_std, **config))
    model.eval()
    if not plain_init:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):  # RMSNorm gains (q_norm/k_norm too) around 1
                    param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
                elif name.endswith(".bias"):
                    param.copy_(init_std * torch.randn(param.shape, generator=generator))
    return _save(model, out_dir, dtype, tokenizer, config["vocab_size"], shard_size)


def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no progress bars or advice in test output
    hf_logging.disable_progress_bar()


def _check_dtype_and_tokenizer(dtype, tokenizer, vocab_size):
    """-> (tokenizer 'gpt2' or 'char', the eos/bos id that goes with it or None)."""
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {TORCH_DTYPES}, got {dtype!r}")
    if tokenizer is None:
        tokenizer = "gpt2" if vocab_size >= GPT2_VOCAB_SIZE else "char"
    if tokenizer == "gpt2" and vocab_size < GPT2_VOCAB_SIZE:
        raise ValueError(f"the gpt2 tokenizer needs vocab_size >= {GPT2_VOCAB_SIZE}, got {vocab_size}")
    if tokenizer not in ("gpt2", "char"):
        raise ValueError(f"tokenizer must be 'gpt2' or 'char', got {tokenizer!r}")
    return tokenizer, (GPT2_VOCAB_SIZE - 1 if tokenizer == "gpt2" else None)


def _save(model, out_dir, dtype, tokenizer, vocab_size, shard_size=None) -> Path:
    """save_pretrained in dtype, plus the tokenizer files."""
    import torch

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    shards = {} if shard_size is None else {"max_shard_size": shard_size}
    model.to(getattr(torch, dtype)).save_pretrained(out_dir, safe_serialization=True, **shards)
    if tokenizer == "gpt2":
        source = gpt2_tokenizer_dir()
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(source / name, out_dir / name)
    else:
        (out_dir / "char_vocab.json").write_text(
            json.dumps(char_vocab(vocab_size), ensure_ascii=False), encoding="utf-8"
        )
    # safetensors writes its files 0600; a static web server running as another user must read them
    for file in out_dir.iterdir():
        file.chmod(0o644)
    return out_dir


def cached_model(root, **shape) -> Path:
    """make_model into root/<hash of the arguments>, unless it was made there already."""
    key = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    out_dir = Path(root) / f"{shape.get('model_type', 'gpt2')}-{key}"
    done = out_dir / ".complete"
    if not done.exists():
        make_model(out_dir, **shape)
        done.write_text(json.dumps(shape, sort_keys=True))
    return out_dir


def logit_margins(out_dir, prompt_len=8, n_new=16, seed=0) -> dict:
    """Greedy-decode a random prompt with transformers; report how well top-1 is separated."""
    import torch
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    margins, spreads = [], []
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(ids).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            margins.append(float(top2[0] - top2[1]))
            spreads.append(float(logits.std()))
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    return {"min_top1_margin": min(margins), "mean_logit_std": sum(spreads) / len(spreads)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--model-type", choices=MODEL_TYPES, default="gpt2")
    parser.add_argument("--n-layer", type=int, required=True)
    parser.add_argument("--n-head", type=int, required=True)
    parser.add_argument("--n-embd", type=int, required=True, help="the hidden size")
    parser.add_argument("--n-positions", type=int, required=True, help="the context length")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--n-inner", type=int, default=None, help="the MLP's width (default 4 * n_embd)")
    parser.add_argument("--dtype", choices=TORCH_DTYPES, default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-std", type=float, default=0.02)
    parser.add_argument("--tokenizer", choices=("gpt2", "char"), default=None,
                        help="default: gpt2 for a vocabulary of 50257 or more, else char")
    parser.add_argument("--untied", action="store_true", help="a separate lm_head.weight")
    parser.add_argument("--plain-init", action="store_true", help="keep transformers' init of biases and norms")
    parser.add_argument("--report", action="store_true", help="print how well greedy logits are separated")
    gpt2 = parser.add_argument_group("GPT-2 only")
    gpt2.add_argument("--activation", default="gelu_new", help="gelu_new (tanh form) or gelu (erf form)")
    gpt2.add_argument("--layer-norm-epsilon", type=float, default=1e-5)
    family = parser.add_argument_group("Llama family only (llama, mistral, qwen2, qwen3)")
    family.add_argument("--kv-heads", type=int, default=None, help="num_key_value_heads (default: n_head)")
    family.add_argument("--head-dim", type=int, default=None, help="default: n_embd / n_head")
    family.add_argument("--rope-theta", type=float, default=10000.0)
    family.add_argument("--rope-scaling", type=json.loads, default=None,
                        help='JSON, e.g. \'{"rope_type": "linear", "factor": 2.0}\'')
    family.add_argument("--rms-norm-eps", type=float, default=1e-6)
    family.add_argument("--attention-bias", action="store_true", help="llama/qwen3: q, k, v and o_proj biases")
    family.add_argument("--mlp-bias", action="store_true", help="llama: gate, up and down biases")
    family.add_argument("--sliding-window", type=int, default=None, help="mistral: the attention window")
    family.add_argument("--shard-size", default=None, help='save in shards of at most this size, e.g. "200KB"')
    args = parser.parse_args(argv)
    common = dict(dtype=args.dtype, seed=args.seed, init_std=args.init_std, tokenizer=args.tokenizer,
                  plain_init=args.plain_init, tie_word_embeddings=not args.untied, vocab_size=args.vocab_size)
    if args.model_type == "gpt2":
        shape = dict(common, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                     n_positions=args.n_positions, n_inner=args.n_inner, activation=args.activation,
                     layer_norm_epsilon=args.layer_norm_epsilon)
    else:
        shape = dict(common, num_hidden_layers=args.n_layer, num_attention_heads=args.n_head,
                     hidden_size=args.n_embd, max_position_embeddings=args.n_positions,
                     intermediate_size=args.n_inner or 4 * args.n_embd, rope_theta=args.rope_theta,
                     rope_scaling=args.rope_scaling, rms_norm_eps=args.rms_norm_eps, shard_size=args.shard_size)
        optional = dict(num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
                        sliding_window=args.sliding_window)
        shape.update({key: value for key, value in optional.items() if value is not None})
        if args.attention_bias:
            shape["attention_bias"] = True
        if args.mlp_bias:
            shape["mlp_bias"] = True
    try:
        out_dir = make_model(args.out_dir, args.model_type, **shape)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out_dir)
    if args.report:
        print(json.dumps(logit_margins(out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
