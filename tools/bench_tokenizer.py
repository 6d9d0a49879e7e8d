"""Benchmark app/tokenizer.py's GPT-2 encoder (a benchmark, not a test): prints one JSON object.

    python tools/bench_tokenizer.py [--text FILE] [--repeat 3] [--no-tiktoken]

MB/s are UTF-8 megabytes (10**6 bytes) of input per second, the best of --repeat runs:
  encode_cold_mb_s   a fresh tokenizer (empty merge cache) on the whole text
  encode_warm_mb_s   the same text again (every piece cached): the steady state on real text
  decode_mb_s        ids back to text
  tiktoken_mb_s      tiktoken's encode_ordinary on the same text, for scale (when installed)
The default text is tinyshakespeare (../shared/data/tinyshakespeare.txt) if present, else a
built-in multilingual sample repeated to ~1 MB. The browser figure comes from the same code run
in Pyodide (see the browser tests).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tokenizer import GPT2_PATTERN, GPT2Tokenizer, bytes_to_unicode  # noqa: E402

TOKENIZER_DIR = ROOT / "weights" / "gpt2-tokenizer"
DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
SAMPLE = (
    "The quick brown fox jumps over the lazy dog. It's 2024; we've got 3.14 reasons.\n"
    "Съешь же ещё этих мягких французских булок. 我能吞下玻璃而不伤身体。 😀👍🏽\n"
    "def f(x):\n    return x ** 2  # comment\n\n"
)


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _tiktoken_encoding():
    import tiktoken

    decoder = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(decoder[c] for c in t): i for t, i in vocab.items() if t != "<|endoftext|>"}
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=None, help="UTF-8 text file to encode")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-tiktoken", action="store_true")
    args = parser.parse_args(argv)

    if args.text is not None:
        text, source = args.text.read_text(encoding="utf-8"), str(args.text)
    elif DEFAULT_TEXT.exists():
        text, source = DEFAULT_TEXT.read_text(encoding="utf-8"), DEFAULT_TEXT.name
    else:
        text, source = SAMPLE * (1_000_000 // len(SAMPLE.encode("utf-8"))), "built-in sample"
    mb = len(text.encode("utf-8")) / 1e6
    vocab, merges = TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt"

    t0 = time.perf_counter()
    tok = GPT2Tokenizer.from_files(vocab, merges)
    load_s = time.perf_counter() - t0

    def cold():
        tok._cache.clear()
        tok.encode(text)

    cold_s = _best(cold, args.repeat)
    ids = tok.encode(text)
    warm_s = _best(lambda: tok.encode(text), args.repeat)
    decode_s = _best(lambda: tok.decode(ids), args.repeat)
    result = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "text": source,
        "text_mb": round(mb, 3),
        "tokens": len(ids),
        "load_s": round(load_s, 3),
        "encode_cold_mb_s": round(mb / cold_s, 2),
        "encode_warm_mb_s": round(mb / warm_s, 2),
        "decode_mb_s": round(mb / decode_s, 2),
    }
    if not args.no_tiktoken:
        try:
            enc = _tiktoken_encoding()
        except ImportError:
            pass
        else:
            result["tiktoken_mb_s"] = round(mb / _best(lambda: enc.encode_ordinary(text), args.repeat), 2)
            result["matches_tiktoken"] = enc.encode_ordinary(text) == ids
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
