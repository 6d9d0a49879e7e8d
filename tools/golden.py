"""Write a model folder's golden record: what a trusted CPython reference computes for a few prompts,
so that the page can check the user's GPU against it (`pywebgpt.selfTest()`, app/selftest.py).

    python3 tools/golden.py weights/shakespeare-char [--prompt TEXT ...] [--max-new-tokens 24]
        [--steps 0,1,2,4,8,16,23] [--reference auto|transformers|numpy] [--out FILE] [--check]

For each prompt: the prompt's token ids (the page's own tokenizer, app/tokenizer.py), the greedy
continuation, the gap between the two likeliest logits at every step (a near tie may flip on
another GPU without anything being wrong), and the five likeliest token ids with their logits at
the chosen steps. Everything is computed in float32 from the weights as stored (F16 / BF16 weights
are widened exactly), on the CPU.

The reference is Hugging Face transformers (AutoModelForCausalLM, eager attention) when it can load
the folder, else the repository's numpy model (tools/reference.py); `reference.name` in the record
says which, and `--reference` forces one. The record goes to <folder>/golden.json unless --out says
otherwise. `--check` computes the record again with the other reference and prints the largest
logit difference between the two (both must give the same ids).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TOOLS = str(Path(__file__).resolve().parent)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from app.config import config_from_json  # noqa: E402
from app.safetensors import read_header  # noqa: E402
from app.tokenizer import load_tokenizer_from_texts  # noqa: E402
from reference import load_hf_folder, new_kv_model, weight_files  # noqa: E402

FORMAT = "pywebgpt-golden/1"
DEFAULT_PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed", "The meaning of life is"]
DEFAULT_NEW = 16
TOP = 5
TOKENIZER_FILES = ("char_vocab.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "chat_template.jinja")


class GoldenError(ValueError):
    pass


def default_steps(n_new: int) -> list[int]:
    """0, 1, 2, 4, 8, ... and the last step: early steps catch a wrong prefill, late ones a wrong
    KV cache or position."""
    steps, s = [0], 1
    while s < n_new:
        steps.append(s)
        s *= 2
    if steps[-1] != n_new - 1:
        steps.append(n_new - 1)
    return sorted(set(x for x in steps if 0 <= x < n_new))


def read_tokenizer(folder: Path):
    texts = {name: (folder / name).read_text(encoding="utf-8") for name in TOKENIZER_FILES if (folder / name).is_file()}
    if not texts:
        raise GoldenError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:4])})")
    return load_tokenizer_from_texts(texts)


def weights_facts(folder: Path) -> dict:
    """The stored dtype of the matrices, the weight files' bytes and their sha256: a record is only
    meaningful for the exact weights it was made from."""
    files = weight_files(folder)
    dtypes, total, digest = set(), 0, hashlib.sha256()
    for file in files:
        header = read_header(file)
        dtypes |= {info.dtype for info in header.tensors.values() if len(info.shape) == 2}
        total += file.stat().st_size
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return {"weights_dtype": "/".join(sorted(dtypes)), "file_bytes": total, "weights_sha256": digest.hexdigest(),
            "weight_files": [f.name for f in files]}


# ------------------------------------------------------------------------------------ references


class NumpyReference:
    """tools/reference.py: the numpy GPT-2 / Llama family the GPU engine is tested against."""

    name = "tools/reference.py"

    def __init__(self, folder: Path):
        self.cfg, self.weights = load_hf_folder(folder)

    def describe(self) -> dict:
        return {"name": self.name, "detail": "numpy float32 (tools/reference.py KV-cache model)",
                "numpy": np.__version__, "compute": "float32"}

    def greedy(self, prompt_ids: list, n_new: int) -> tuple[list, np.ndarray]:
        model = new_kv_model(self.weights, self.cfg, np.float32)
        logits = model.feed(prompt_ids)[-1]
        ids, rows = [], []
        for step in range(n_new):
            rows.append(np.asarray(logits, dtype=np.float32))
            ids.append(int(np.argmax(logits)))
            if step + 1 < n_new:
                logits = model.feed([ids[-1]])[-1]
        return ids, np.stack(rows)


class TransformersReference:
    """Hugging Face transformers on the CPU in float32, eager attention: the engine's target."""

    name = "transformers"

    def __init__(self, folder: Path):
        import torch
        import transformers

        self.torch, self.transformers = torch, transformers
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation="eager")
        self.model.eval()

    def describe(self) -> dict:
        return {"name": self.name, "detail": f"{type(self.model).__name__}.from_pretrained(dtype=float32, "
                                             f"attn_implementation='eager') on the CPU",
                "transformers": self.transformers.__version__, "torch": self.torch.__version__.split("+")[0],
                "compute": "float32"}

    def _cache_of(self, out) -> dict:
        # transformers 5.2x renamed past_key_values to cache (the old name warns, then goes)
        if "cache" in out:
            return {"cache": out["cache"]}
        return {"past_key_values": out["past_key_values"]}

    def greedy(self, prompt_ids: list, n_new: int) -> tuple[list, np.ndarray]:
        torch = self.torch
        ids, rows = [], []
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
            for step in range(n_new):
                logits = out.logits[0, -1].float().numpy()
                rows.append(logits.astype(np.float32))
                ids.append(int(np.argmax(logits)))  # the first maximum on a tie, as torch.argmax
                if step + 1 < n_new:
                    out = self.model(input_ids=torch.tensor([[ids[-1]]]), use_cache=True, **self._cache_of(out))
        return ids, np.stack(rows)


def make_reference(folder: Path, which: str):
    """(reference, why the other one was not used or None)."""
    if which == "numpy":
        return NumpyReference(folder), None
    try:
        return TransformersReference(folder), None
    except Exception as exc:  # noqa: BLE001 - any family or file transformers cannot read falls back to numpy
        if which == "transformers":
            raise GoldenError(f"transformers cannot load {folder}: {type(exc).__name__}: {exc}") from exc
        return NumpyReference(folder), f"transformers cannot load this folder ({type(exc).__name__}: {exc})"


# ------------------------------------------------------------------------------------ the record


def _f32(x) -> float:
    """A float32 value as the shortest decimal that reads back to the same float32."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def case_record(reference, tokenizer, prompt: str, prompt_ids: list, n_new: int, steps: list) -> dict:
    ids, logits = reference.greedy(prompt_ids, n_new)
    top = []
    for s in steps:
        order = np.argsort(-logits[s], kind="stable")[:TOP]
        top.append({"step": s, "ids": [int(i) for i in order], "logits": [_f32(logits[s][i]) for i in order]})
    margins = []
    for row in logits:
        best = np.sort(row)[-2:]
        margins.append(_f32(best[1] - best[0]))
    return {"prompt": prompt, "prompt_ids": [int(i) for i in prompt_ids], "tokens": ids,
            "text": tokenizer.decode(ids), "margins": margins, "top": top}


def make_record(folder: Path, prompts: list, n_new: int, steps: list | None = None, which: str = "auto",
                prompt_ids: list | None = None) -> dict:
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise GoldenError(f"{folder}: no config.json (tools/golden.py reads Hugging Face folders)")
    cfg = config_from_json(config_path.read_bytes(), str(config_path))
    tokenizer = read_tokenizer(folder)
    steps = default_steps(n_new) if steps is None else sorted(set(steps))
    if n_new < 1 or any(not 0 <= s < n_new for s in steps):
        raise GoldenError(f"steps {steps} must lie in [0, {n_new}) and --max-new-tokens must be >= 1")
    encoded = [(p, tokenizer.encode(p)) for p in prompts]
    if prompt_ids:
        encoded.append((None, list(prompt_ids)))
    for prompt, ids in encoded:
        if not ids:
            raise GoldenError(f"prompt {prompt!r} has no tokens")
        if len(ids) + n_new > cfg.n_positions:
            raise GoldenError(f"prompt {prompt!r}: {len(ids)} tokens + {n_new} new exceed the context "
                              f"{cfg.n_positions}")
    reference, fallback = make_reference(folder, which)
    ref = reference.describe()
    if fallback:
        ref["why"] = fallback
    return {
        "format": FORMAT,
        "written_by": "tools/golden.py",
        "reference": ref,
        "model": {"model_type": cfg.model_type, "vocab_size": cfg.vocab_size, "n_layer": cfg.n_layer,
                  "n_head": cfg.n_head, "n_embd": cfg.n_embd, "n_positions": cfg.n_positions,
                  **weights_facts(folder)},
        "max_new_tokens": n_new,
        "top_k": TOP,
        "steps": steps,
        "cases": [case_record(reference, tokenizer, p, ids, n_new, steps) for p, ids in encoded],
    }


def compare_records(a: dict, b: dict) -> dict:
    """Ids equal? The largest difference of the recorded logits between two records of one model."""
    same_ids, worst = True, 0.0
    for ca, cb in zip(a["cases"], b["cases"]):
        same_ids &= ca["tokens"] == cb["tokens"]
        for ta, tb in zip(ca["top"], cb["top"]):
            same_ids &= ta["ids"] == tb["ids"]
            worst = max(worst, max(abs(x - y) for x, y in zip(ta["logits"], tb["logits"])))
    return {"ids_equal": bool(same_ids), "max_abs_logit_diff": worst}


def dumps(record: dict, indent: int = 0) -> str:
    """JSON with each list of numbers on one line: a record stays short and a diff of two reads well."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(record, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1).strip()}" for k, v in record.items()]
        text = "{\n" + ",\n".join(items) + "\n" + pad + "}"
    elif isinstance(record, list) and any(isinstance(v, (dict, list)) for v in record):
        text = "[\n" + ",\n".join(inner + dumps(v, indent + 1).strip() for v in record) + "\n" + pad + "]"
    else:
        text = json.dumps(record, ensure_ascii=False)
    return text + "\n" if indent == 0 else text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a model folder: config.json, model.safetensors, tokenizer files")
    p.add_argument("--prompt", action="append", help=f"a prompt (repeatable; default: {DEFAULT_PROMPTS})")
    p.add_argument("--prompt-ids", help="also a case of these comma-separated token ids")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_NEW)
    p.add_argument("--steps", help="comma-separated steps whose top-5 logits are recorded (default 0,1,2,4,...,last)")
    p.add_argument("--reference", choices=("auto", "transformers", "numpy"), default="auto")
    p.add_argument("--out", type=Path, help="where to write the record (default: MODEL/golden.json)")
    p.add_argument("--check", action="store_true", help="also run the other reference and compare")
    args = p.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
        ids = [int(s) for s in args.prompt_ids.split(",")] if args.prompt_ids else None
        prompts = args.prompt if args.prompt else ([] if ids else DEFAULT_PROMPTS)
        record = make_record(args.model, prompts, args.max_new_tokens, steps, args.reference, ids)
        out = args.out or args.model / "golden.json"
        out.write_text(dumps(record), encoding="utf-8")
        summary = {"out": str(out), "reference": record["reference"]["name"], "cases": len(record["cases"]),
                   "tokens": [c["text"] for c in record["cases"]]}
        if args.check:
            other = "numpy" if record["reference"]["name"] == "transformers" else "transformers"
            again = make_record(args.model, prompts, args.max_new_tokens, steps, other, ids)
            summary["check"] = {"against": other, **compare_records(record, again)}
    except (ValueError, OSError) as exc:  # GoldenError, ModelFormatError and a bad number are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
