"""Make a random-weight GPT-2 in the Hugging Face layout, for tests and benchmarks.

    python tools/make_model.py OUT_DIR --n-layer 2 --n-head 3 --n-embd 96 --n-positions 128
        --vocab-size 97 [--dtype float32|float16|bfloat16] [--seed 0] [--activation gelu_new|gelu]
        [--init-std 0.02] [--tokenizer gpt2|char] [--untied] [--plain-init]

Writes config.json, model.safetensors (transformers' own save_pretrained, so the key names
are exactly what transformers writes) and tokenizer files: GPT-2's vocab.json + merges.txt
for a vocabulary of 50257 or more, else a char_vocab.json (char -> id) of V distinct
characters.

Why --init-std: with transformers' default init (std 0.02) a random GPT-2's logits are
nearly uniform, so greedy decoding meets near-ties that any rounding difference flips.
An std of 0.1-0.2 gives well separated logits (see --report). By default the LayerNorm
gains/biases and the linear biases are randomized too (transformers initializes them to
1 and 0), so that a kernel that drops a bias or a LayerNorm parameter cannot pass a test;
--plain-init keeps transformers' init.

Importable: make_model(out_dir, **shape) -> Path, and cached_model(root, **shape) -> Path
which reuses a model made earlier with the same arguments.
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


def gpt2_tokenizer_dir() -> Path:
    """Where GPT-2's vocab.json + merges.txt live: ../shared/data, else weights/ in the repo."""
    for candidate in (REPO.parent / "shared/data/gpt2-tokenizer", REPO / "weights/gpt2-tokenizer"):
        if (candidate / "vocab.json").exists() and (candidate / "merges.txt").exists():
            return candidate
    raise FileNotFoundError(
        "GPT-2 tokenizer files (vocab.json, merges.txt) not found in "
        f"{REPO.parent / 'shared/data/gpt2-tokenizer'} or {REPO / 'weights/gpt2-tokenizer'}"
    )


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


def make_model(
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
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no progress bars or advice in test output
    hf_logging.disable_progress_bar()

    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {TORCH_DTYPES}, got {dtype!r}")
    if tokenizer is None:
        tokenizer = "gpt2" if vocab_size >= GPT2_VOCAB_SIZE else "char"
    if tokenizer == "gpt2" and vocab_size < GPT2_VOCAB_SIZE:
        raise ValueError(f"the gpt2 tokenizer needs vocab_size >= {GPT2_VOCAB_SIZE}, got {vocab_size}")
    if tokenizer not in ("gpt2", "char"):
        raise ValueError(f"tokenizer must be 'gpt2' or 'char', got {tokenizer!r}")

    eos = GPT2_VOCAB_SIZE - 1 if tokenizer == "gpt2" else None
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

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.to(getattr(torch, dtype)).save_pretrained(out_dir, safe_serialization=True)
    # safetensors writes the file 0600; a static web server running as another user must read it
    (out_dir / "model.safetensors").chmod(0o644)

    if tokenizer == "gpt2":
        source = gpt2_tokenizer_dir()
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(source / name, out_dir / name)
    else:
        (out_dir / "char_vocab.json").write_text(
            json.dumps(char_vocab(vocab_size), ensure_ascii=False), encoding="utf-8"
        )
    return out_dir


def cached_model(root, **shape) -> Path:
    """make_model into root/<hash of the arguments>, unless it was made there already."""
    key = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    out_dir = Path(root) / f"gpt2-{key}"
    done = out_dir / ".complete"
    if not done.exists():
        make_model(out_dir, **shape)
        done.write_text(json.dumps(shape, sort_keys=True))
    return out_dir


def logit_margins(out_dir, prompt_len=8, n_new=16, seed=0) -> dict:
    """Greedy-decode a random prompt with transformers; report how well top-1 is separated."""
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(out_dir, dtype=torch.float32).eval()
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
    parser.add_argument("--n-layer", type=int, required=True)
    parser.add_argument("--n-head", type=int, required=True)
    parser.add_argument("--n-embd", type=int, required=True)
    parser.add_argument("--n-positions", type=int, required=True)
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--n-inner", type=int, default=None)
    parser.add_argument("--dtype", choices=TORCH_DTYPES, default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation", default="gelu_new", help="gelu_new (tanh form) or gelu (erf form)")
    parser.add_argument("--layer-norm-epsilon", type=float, default=1e-5)
    parser.add_argument("--init-std", type=float, default=0.02)
    parser.add_argument("--tokenizer", choices=("gpt2", "char"), default=None,
                        help="default: gpt2 for a vocabulary of 50257 or more, else char")
    parser.add_argument("--untied", action="store_true", help="a separate lm_head.weight")
    parser.add_argument("--plain-init", action="store_true", help="keep transformers' init of biases and LayerNorms")
    parser.add_argument("--report", action="store_true", help="print how well greedy logits are separated")
    args = parser.parse_args(argv)
    try:
        out_dir = make_model(
            args.out_dir,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_embd=args.n_embd,
            n_positions=args.n_positions,
            vocab_size=args.vocab_size,
            n_inner=args.n_inner,
            dtype=args.dtype,
            seed=args.seed,
            activation=args.activation,
            layer_norm_epsilon=args.layer_norm_epsilon,
            init_std=args.init_std,
            tokenizer=args.tokenizer,
            tie_word_embeddings=not args.untied,
            plain_init=args.plain_init,
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out_dir)
    if args.report:
        print(json.dumps(logit_margins(out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
