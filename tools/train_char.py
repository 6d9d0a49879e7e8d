#!/usr/bin/env python3
"""Train the bundled character-level Shakespeare model (nanoGPT's "shakespeare-char" recipe).

The model IS a Hugging Face ``transformers.GPT2LMHeadModel`` (GPT-2 architecture: learned position
embeddings, pre-LayerNorm blocks, ``gelu_new`` MLP, tied input/output embeddings), so the folder it
writes loads with ``GPT2LMHeadModel.from_pretrained(folder)`` and is the same layout the page loads
for OpenAI's GPT-2 checkpoints.  Only the tokenizer differs: one token per character, the
vocabulary being the sorted set of characters of the whole text (65 for tinyshakespeare).

Data: ``tinyshakespeare.txt`` (Karpathy's char-rnn input.txt, also nanoGPT's), first 90 % of the
characters for training and the last 10 % for validation, exactly as nanoGPT's
``data/shakespeare_char/prepare.py`` splits it.

Output folder (``--out``):
  config.json         GPT2Config, model_type gpt2, activation_function gelu_new
  model.safetensors   weights in float16 (``--dtype-out``), keys as ``save_pretrained`` writes them
  char_vocab.json     {"char": id, ...}, UTF-8
  README.md           model card: data, split, config, steps, losses, time, GPU, how to retrain

Reproducibility: ``torch.manual_seed(seed)`` fixes the initialisation and dropout; the training
batches come from their own ``torch.Generator`` seeded with ``seed`` (CPU), the evaluation batches
from generators seeded with fixed offsets, so every run draws the same batches in the same order.
On CPU two runs give bit-identical losses; on CUDA the kernels themselves are not bit-exact
(atomics, autotuning), so losses agree to a few 1e-3.  With ``--time-budget`` set, a run that is too
slow ends early (see below) and is then no longer step-for-step reproducible.

Usage (the committed model):
  python3 tools/train_char.py --out weights/shakespeare-char --device cuda
CPU smoke run:
  python3 tools/train_char.py --out /tmp/sc --device cpu --iters 30 --n-layer 2 --n-head 2 \
      --n-embd 32 --block-size 32 --batch-size 8 --eval-interval 10 --eval-iters 4
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import GPT2Config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / "tests" / "data" / "tinyshakespeare.txt"  # shipped with the repository

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


# ----------------------------------------------------------------------------- data


def load_text(path: str | os.PathLike) -> str:
    with open(path, "r", encoding="utf-8", newline="") as f:
        return f.read()


def build_vocab(text: str) -> dict[str, int]:
    """char -> id, ids in the order of the sorted set of characters (nanoGPT's prepare.py)."""
    return {ch: i for i, ch in enumerate(sorted(set(text)))}


def encode(text: str, stoi: dict[str, int]) -> list[int]:
    return [stoi[c] for c in text]


def decode(ids, itos: dict[int, str]) -> str:
    return "".join(itos[int(i)] for i in ids)


def split_data(ids: torch.Tensor, train_frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(train_frac * len(ids))  # nanoGPT: n = len(data); train = data[:int(n*0.9)]
    return ids[:n], ids[n:]


class BatchSampler:
    """Random (x, y) windows drawn with a private, seeded CPU generator: the same seed gives the same
    batches on every device.  y is x shifted by one character."""

    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, seed: int, device):
        if len(data) <= block_size + 1:
            raise ValueError(f"split of {len(data)} chars is too short for block size {block_size}")
        self.data = data.to(device)
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(block_size + 1, device=device)

    def reset(self):
        self.gen.manual_seed(self.seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(self.data) - self.block_size - 1, (self.batch_size,), generator=self.gen)
        win = self.data[ix.to(self.device)[:, None] + self.offsets]  # (B, T+1)
        return win[:, :-1], win[:, 1:]


# ----------------------------------------------------------------------------- model


def make_config(vocab_size: int, args) -> GPT2Config:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=args.block_size,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=None,  # 4 * n_embd
        activation_function="gelu_new",
        resid_pdrop=args.dropout,
        embd_pdrop=args.dropout,
        attn_pdrop=args.dropout,
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        scale_attn_weights=True,
        tie_word_embeddings=True,
        # A character model has no end-of-text token.  bos_token_id is the id of "\n": an empty
        # prompt starts from a newline, as nanoGPT's sample.py does.  eos_token_id is left unset so
        # that generation runs to max_new_tokens instead of stopping at the first line break.
        bos_token_id=args._newline_id,
        eos_token_id=None,
        pad_token_id=None,
        architectures=["GPT2LMHeadModel"],
    )


def make_model(config, device):
    from transformers import GPT2LMHeadModel

    try:
        model = GPT2LMHeadModel(config, attn_implementation="sdpa")
    except TypeError:  # older transformers: attn_implementation is read from the config
        config._attn_implementation = "sdpa"
        model = GPT2LMHeadModel(config)
    return model.to(device)


def lm_loss(model, x, y) -> torch.Tensor:
    logits = model(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


@torch.no_grad()
def estimate_loss(model, sampler: BatchSampler, iters: int, autocast_ctx) -> float:
    """Mean loss over `iters` batches; the sampler is reset first, so every call sees the same
    batches (a fair comparison between checkpoints)."""
    was_training = model.training
    model.eval()
    sampler.reset()
    total = 0.0
    for _ in range(iters):
        x, y = sampler.next()
        with autocast_ctx():
            total += lm_loss(model, x, y).item()
    model.train(was_training)
    return total / iters


@torch.no_grad()
def full_split_loss(model, data: torch.Tensor, block_size: int, device, batch_size: int = 64) -> float:
    """Loss over the whole split: non-overlapping windows of block_size (+ the tail), every
    character after the first predicted exactly once.  Computed in float32."""
    was_training = model.training
    model.eval()
    data = data.to(device)
    n_pred = len(data) - 1
    starts = list(range(0, n_pred, block_size))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        full = [s for s in chunk if s + block_size <= n_pred]
        if full:
            idx = torch.tensor(full, device=device)[:, None] + torch.arange(block_size + 1, device=device)
            win = data[idx]
            logits = model(input_ids=win[:, :-1], use_cache=False).logits.float()
            total += F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1), reduction="sum"
            ).item()
            count += win[:, 1:].numel()
        for s in chunk:
            if s + block_size > n_pred:  # the tail window, shorter than block_size
                win = data[s:][None]
                logits = model(input_ids=win[:, :-1], use_cache=False).logits.float()
                total += F.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1), reduction="sum"
                ).item()
                count += win.size(1) - 1
    model.train(was_training)
    return total / count


@torch.no_grad()
def generate(model, prompt_ids, n_new: int, block_size: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> list[int]:
    """nanoGPT-style generation: the context is cropped to the last block_size tokens (GPT-2 has
    learned positions, so it cannot run past n_positions).  temperature 0 = greedy (argmax)."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    for _ in range(n_new):
        logits = model(input_ids=ids[:, -block_size:], use_cache=False).logits[:, -1, :].float()
        if temperature <= 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        ids = torch.cat([ids, nxt], dim=1)
    return ids[0].tolist()


def configure_optimizer(model, args, device):
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]  # matmul weights and embeddings (nanoGPT)
    no_decay = [p for p in params if p.dim() < 2]  # biases and LayerNorm gains
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), **extra)


def lr_at(progress_it: float, args) -> float:
    """nanoGPT's schedule: linear warmup, then cosine decay from lr to min_lr at the last step."""
    if progress_it < args.warmup_iters:
        return args.lr * (progress_it + 1) / (args.warmup_iters + 1)
    if progress_it >= args.iters:
        return args.min_lr
    ratio = (progress_it - args.warmup_iters) / max(1, args.iters - args.warmup_iters)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="text file (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--iters", type=int, default=5000)
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--n-head", type=int, default=6)
    p.add_argument("--n-embd", type=int, default=384)
    p.add_argument("--block-size", type=int, default=256, help="context length = n_positions")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=50, help="batches per split in the periodic estimates")
    p.add_argument("--final-eval-iters", type=int, default=200,
                   help="batches per split in the final estimate (nanoGPT's 200)")
    p.add_argument("--keep", choices=["best", "last"], default="best",
                   help="save the best-val checkpoint (nanoGPT) or the last one")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="torch.compile (auto: on CUDA only, falls back to eager if it fails)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--dtype-out", choices=list(DTYPES), default="float16")
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds; if > 0 the run ends when the training steps after the first have used them "
                        "(periodic evals included), the lr schedule following elapsed/budget where that is ahead "
                        "of it/iters, so a slow machine still ends with a fully decayed lr")
    p.add_argument("--sample-chars", type=int, default=300,
                   help="length of the sample written into the model card (0: none)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.n_embd % args.n_head:
        p.error("--n-embd must be a multiple of --n-head")
    return args


def train(argv=None) -> dict:
    """Run the whole recipe; returns a dict with the in-memory model (float32, best or last
    checkpoint), vocab, history and the final numbers.  Used by main() and by the tests."""
    from transformers import GPT2LMHeadModel

    args = parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    t_start = time.time()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    text = load_text(args.data)
    stoi = build_vocab(text)
    itos = {i: c for c, i in stoi.items()}
    args._newline_id = stoi.get("\n", 0)
    ids = torch.tensor(encode(text, stoi), dtype=torch.long)
    train_ids, val_ids = split_data(ids)
    log(f"data: {args.data}: {len(text):,} chars, vocab {len(stoi)}, train {len(train_ids):,}, val {len(val_ids):,}")

    config = make_config(len(stoi), args)
    model = make_model(config, device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: GPT2LMHeadModel n_layer={args.n_layer} n_head={args.n_head} n_embd={args.n_embd} "
        f"block={args.block_size} vocab={len(stoi)}: {n_params:,} parameters (tied embeddings)")

    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)

        def autocast_ctx():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        gpu = None
        autocast_ctx = contextlib.nullcontext

    train_s = BatchSampler(train_ids, args.block_size, args.batch_size, args.seed, device)
    eval_train = BatchSampler(train_ids, args.block_size, args.batch_size, args.seed + 1, device)
    eval_val = BatchSampler(val_ids, args.block_size, args.batch_size, args.seed + 2, device)

    optimizer = configure_optimizer(model, args, device)

    use_compile = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    fwd = model
    if use_compile:
        try:
            fwd = torch.compile(model)
        except RuntimeError as e:  # pragma: no cover - depends on the platform (e.g. no Dynamo on this Python)
            log(f"torch.compile unavailable ({type(e).__name__}: {e}); running eager")
            fwd, use_compile = model, False

    def train_step(x, y):
        with autocast_ctx():
            loss = lm_loss(fwd, x, y)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    history = []  # {"iter", "train", "val", "lr", "time"}
    best_val, best_iter, best_state = float("inf"), -1, None
    model.train()
    t_loop = time.time()
    t_first_step = None
    it = 0
    stopped_by_time = False
    first_loss = last_loss = None
    while True:
        progress = float(it)
        if args.time_budget > 0 and it > 1:  # the clock starts after the first (compiling) step
            progress = max(progress, args.iters * (time.time() - t_loop - t_first_step) / args.time_budget)
        last = progress >= args.iters
        if last and it < args.iters:
            stopped_by_time = True
        if it % args.eval_interval == 0 or last:
            tr = estimate_loss(model, eval_train, args.eval_iters, autocast_ctx)
            va = estimate_loss(model, eval_val, args.eval_iters, autocast_ctx)
            elapsed, lr = time.time() - t_loop, lr_at(progress, args)
            history.append({"iter": it, "train": tr, "val": va, "lr": lr, "time": round(elapsed, 2)})
            log(f"iter {it:5d}: train loss {tr:.4f}, val loss {va:.4f}, lr {lr:.2e}, {elapsed:.1f}s")
            if va < best_val:
                best_val, best_iter = va, it
                if args.keep == "best":
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if last:
            break
        lr = lr_at(progress, args)
        for g in optimizer.param_groups:
            g["lr"] = lr
        x, y = train_s.next()
        if it == 0 and use_compile:
            try:
                loss = train_step(x, y)
            except RuntimeError as e:  # pragma: no cover - Dynamo/Inductor failures (no compiler, no Triton...)
                log(f"torch.compile failed on the first step ({type(e).__name__}: {str(e)[:300]}); running eager")
                fwd, use_compile = model, False
                optimizer.zero_grad(set_to_none=True)
                loss = train_step(x, y)
        else:
            loss = train_step(x, y)
        if it == 0:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_first_step = time.time() - t_loop
            first_loss = loss.item()
            log(f"first step (incl. compile={use_compile}): {t_first_step:.1f}s, loss {first_loss:.4f}")
        if it % 100 == 0 or it == args.iters - 1:
            last_loss = loss.item()
            if not args.quiet and it % 100 == 0 and it:
                rate = (time.time() - t_loop) / it
                log(f"  iter {it:5d}: batch loss {last_loss:.4f}, {1000 * rate:.1f} ms/iter avg")
        it += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_time = time.time() - t_loop
    iters_done = it
    log(f"training: {iters_done} iters in {train_time:.1f}s "
        f"({1000 * train_time / max(1, iters_done):.1f} ms/iter incl. evals)"
        + (" [stopped by --time-budget]" if stopped_by_time else ""))

    if args.keep == "best" and best_state is not None:
        model.load_state_dict(best_state)
        kept = f"best periodic val estimate, iter {best_iter}"
    else:
        kept = f"last, iter {iters_done}"
    model.eval()
    log(f"kept checkpoint: {kept}")

    # Final numbers: same fixed batches for every variant; float32 compute (no autocast).
    final_train = estimate_loss(model, eval_train, args.final_eval_iters, _null)
    final_val = estimate_loss(model, eval_val, args.final_eval_iters, _null)
    full_val = full_split_loss(model, val_ids, args.block_size, device)
    log(f"final (float32 weights): train {final_train:.4f}, val {final_val:.4f} "
        f"({args.final_eval_iters} batches), full val split {full_val:.4f}")

    # Save: transformers' own save_pretrained, weights cast to --dtype-out.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model = copy.deepcopy(model).to("cpu").to(DTYPES[args.dtype_out])
    save_model.config.use_cache = True
    save_model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)  # not needed; config.json holds bos/eos
    del save_model
    with open(out / "char_vocab.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(stoi, f, ensure_ascii=False, indent=0, sort_keys=False)
        f.write("\n")

    # Round trip: load what was written, float32 compute on the rounded weights, same batches.
    rt = GPT2LMHeadModel.from_pretrained(out, dtype=torch.float32).to(device).eval()
    rt_train = estimate_loss(rt, eval_train, args.final_eval_iters, _null)
    rt_val = estimate_loss(rt, eval_val, args.final_eval_iters, _null)
    rt_full_val = full_split_loss(rt, val_ids, args.block_size, device)
    log(f"after {args.dtype_out} round trip: train {rt_train:.4f}, val {rt_val:.4f}, full val split {rt_full_val:.4f}")

    sample = ""
    if args.sample_chars > 0 and all(c in stoi for c in "ROMEO:"):
        gen = torch.Generator(device=device).manual_seed(args.seed)
        out_ids = generate(rt, encode("ROMEO:", stoi), args.sample_chars, args.block_size,
                           temperature=0.8, generator=gen)
        sample = decode(out_ids, itos)
    del rt

    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    result = {
        "model": model,
        "stoi": stoi,
        "history": history,
        "iters_done": iters_done,
        "stopped_by_time": stopped_by_time,
        "kept": kept,
        "best_iter": best_iter,
        "first_loss": first_loss,
        "final_train": final_train,
        "final_val": final_val,
        "full_val": full_val,
        "rt_train": rt_train,
        "rt_val": rt_val,
        "rt_full_val": rt_full_val,
        "train_time": train_time,
        "first_step_time": t_first_step,
        "compiled": use_compile,
        "gpu": gpu,
        "n_params": n_params,
        "n_chars": len(text),
        "n_train": len(train_ids),
        "n_val": len(val_ids),
        "sample": sample,
        "total_time": time.time() - t_start,
        "args": args,
    }
    write_model_card(out, result, sizes)
    sizes["README.md"] = (out / "README.md").stat().st_size
    result["sizes"] = sizes
    log("wrote " + ", ".join(f"{k} ({v:,} B)" for k, v in sizes.items()) + f" to {out}")
    log(f"total {result['total_time']:.1f}s")
    return result


def _null():
    return contextlib.nullcontext()


def write_model_card(out: Path, r: dict, sizes: dict) -> None:
    a = r["args"]
    from transformers import __version__ as tf_version  # train() has already imported transformers
    data_name = Path(a.data).name
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    hw = f"1x {r['gpu']}" if r["gpu"] else cpu
    rows = "\n".join(
        f"| {h['iter']} | {h['train']:.4f} | {h['val']:.4f} | {h['lr']:.2e} | {h['time']:.0f} |"
        for h in r["history"]
    )
    cmd = (
        f"python3 tools/train_char.py --out weights/shakespeare-char --device {a.device} --seed {a.seed} "
        f"--iters {a.iters} --n-layer {a.n_layer} --n-head {a.n_head} --n-embd {a.n_embd} "
        f"--block-size {a.block_size} --batch-size {a.batch_size} --dropout {a.dropout:g} "
        f"--lr {a.lr:g} --min-lr {a.min_lr:g} --warmup-iters {a.warmup_iters} "
        f"--weight-decay {a.weight_decay:g} --beta2 {a.beta2:g} --grad-clip {a.grad_clip:g} "
        f"--eval-interval {a.eval_interval} --eval-iters {a.eval_iters} --final-eval-iters {a.final_eval_iters} "
        f"--keep {a.keep} --dtype-out {a.dtype_out}"
        + (f" --time-budget {a.time_budget:g}" if a.time_budget > 0 else "")
    )
    overfit_md = ""
    if a.keep == "best" and 0 <= r["best_iter"] < r["iters_done"]:
        overfit_md = (
            f"\nThe periodic validation estimate was lowest at iter {r['best_iter']} and rose afterwards while the\n"
            "training loss kept falling (the model starts to memorise the 1 MB training text), so the saved\n"
            f"weights are those of iter {r['best_iter']}, as nanoGPT keeps its best-val checkpoint; the later\n"
            "steps only cost time.\n"
        )
    sample_md = ""
    if r["sample"]:
        sample_md = (
            "\n## Sample\n\nSampled by the training script from the saved weights (prompt `ROMEO:`, temperature 0.8, "
            f"torch seed {a.seed}, {a.sample_chars} new characters):\n\n```text\n{r['sample']}\n```\n"
        )
    files = {  # the model card's table of files: name -> what it holds
        "config.json": f"`GPT2Config` (written by `save_pretrained`, transformers {tf_version})",
        "model.safetensors": f"weights in {a.dtype_out}, tensor names as `save_pretrained` writes them "
                             "(`transformer.wte.weight`, ...; no `lm_head.weight`: it is tied to "
                             "`transformer.wte.weight`)",
        "char_vocab.json": "JSON object character -> token id (UTF-8); ids follow the sorted set of characters "
                           f'of the whole text; `"\\n"` is id {a._newline_id}',
    }
    file_rows = "\n".join(f"| `{name}` | {sizes.get(name, 0):,} | {what} |" for name, what in files.items())
    optimizer = (f"AdamW, betas ({a.beta1}, {a.beta2}), weight decay {a.weight_decay} on 2-D tensors "
                 "(matmuls, embeddings), none on biases/LayerNorm")
    precision = "bf16 autocast, float32 master weights" if a.device == "cuda" else "float32"
    first_step = f"{r['first_step_time']:.0f} s of it the first step" + (
        ", including compilation" if r["compiled"] else "")
    card = f"""# shakespeare-char: a character-level GPT-2 trained on Tiny Shakespeare

PyWebGPT's bundled default model. It is a standard Hugging Face GPT-2 (`GPT2LMHeadModel`,
`model_type: gpt2`, `activation_function: gelu_new`, tied input/output embeddings), so
`transformers.GPT2LMHeadModel.from_pretrained("weights/shakespeare-char")` loads it; only the
tokenizer is different: one token per character, mapped by `char_vocab.json`.

Trained by `tools/train_char.py` with nanoGPT's `shakespeare-char` recipe.

## Files

| file | bytes | what |
| --- | ---: | --- |
{file_rows}
| `README.md` | - | this card |

Tokens: encode a string by looking up each character in `char_vocab.json` (characters outside the
{len(r['stoi'])}-character vocabulary cannot be encoded); decode by inverting the map. There is no
end-of-text token: `eos_token_id` is `null`, so generation runs to its length limit, and
`bos_token_id` is {a._newline_id} (`"\\n"`), the token to start from when the prompt is empty
(nanoGPT's `sample.py` starts from `"\\n"` too). Context length is {a.block_size} characters
(`n_positions`); longer prompts must be cropped to the last {a.block_size} characters.

## Model

| | |
| --- | --- |
| architecture | GPT-2 (pre-LayerNorm, learned positions, `gelu_new`, tied embeddings) |
| n_layer / n_head / n_embd | {a.n_layer} / {a.n_head} / {a.n_embd} |
| n_positions (context) | {a.block_size} |
| vocab_size | {len(r['stoi'])} |
| parameters | {r['n_params']:,} |
| layer_norm_epsilon | 1e-5 |
| dropout (training only) | {a.dropout} (embd, resid, attn) |

## Data

`{data_name}`: Andrej Karpathy's "tiny shakespeare" (char-rnn `data/tinyshakespeare/input.txt`, the
`input.txt` nanoGPT uses), {r['n_chars']:,} characters, sha256
86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed. The text is from the works of
Shakespeare (public domain); the char-rnn repository states "License: MIT".

Split as nanoGPT's `prepare.py`: the first 90 % of the characters ({r['n_train']:,}) for training,
the last 10 % ({r['n_val']:,}) for validation.

## Training

| | |
| --- | --- |
| steps | {r['iters_done']} of {a.iters}{' (ended by --time-budget)' if r['stopped_by_time'] else ''} |
| batch | {a.batch_size} sequences x {a.block_size} characters |
| optimizer | {optimizer} |
| learning rate | {a.lr:g}, linear warmup {a.warmup_iters} steps, cosine decay to {a.min_lr:g} |
| gradient clipping | {a.grad_clip} |
| precision | {precision}; torch.compile {'on' if r['compiled'] else 'off'} |
| seed | {a.seed} (init, dropout and batch order) |
| hardware | {hw} |
| training time | {r['train_time']:.0f} s ({first_step}) |
| software | torch {torch.__version__}, transformers {tf_version} |
| checkpoint kept | {r['kept']} (periodic estimates on {a.eval_iters} batches per split) |

Loss (cross-entropy in nats per character) during training, {a.eval_iters} fixed random batches per
split, dropout off:

| iter | train | val | lr | seconds |
| ---: | ---: | ---: | ---: | ---: |
{rows}

## Results (kept checkpoint)

Same {a.final_eval_iters} fixed random batches of {a.batch_size} x {a.block_size} per split (nanoGPT's
`estimate_loss`), float32 compute; "full val" is every character of the validation split predicted
once, in non-overlapping windows of {a.block_size}.

| weights | train loss | val loss | full val |
| --- | ---: | ---: | ---: |
| float32 (in memory, after training) | {r['final_train']:.4f} | {r['final_val']:.4f} | {r['full_val']:.4f} |
| {a.dtype_out} (`model.safetensors`, as loaded) | {r['rt_train']:.4f} | {r['rt_val']:.4f} | {r['rt_full_val']:.4f} |

nanoGPT reports a best val loss of about 1.47 for this recipe.
{overfit_md}{sample_md}
## Retrain

From the repository root (the text is `tests/data/tinyshakespeare.txt`; `--data PATH` reads another):

```sh
{cmd}
```

`python3 tools/train_char.py --help` lists every option. `--time-budget` ends the run early on a slow
machine (the lr schedule then follows the clock). Without a GPU, `--device cpu` with a smaller model
(e.g. `--n-layer 4 --n-head 4 --n-embd 128 --block-size 128 --batch-size 32`) runs, but expect a
clearly higher loss.

## License

The weights are derived from public-domain text; the training data collection (char-rnn's tiny
shakespeare) is distributed under the MIT license stated in the char-rnn README. The weights are
released with the rest of PyWebGPT, under its MIT license.
"""
    (out / "README.md").write_text(card, encoding="utf-8")


def main(argv=None) -> int:
    r = train(argv)
    print(json.dumps({k: r[k] for k in ("iters_done", "kept", "final_train", "final_val", "full_val",
                                        "rt_train", "rt_val", "rt_full_val", "train_time", "gpu", "compiled")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
