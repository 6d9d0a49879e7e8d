"""Longer, nightly-style runs of the fuzz properties (tools/fuzz_properties.py, which tests/test_fuzz.py
runs 10,000 cases each).

    python tools/fuzz.py                              # every property, 100,000 cases each
    python tools/fuzz.py --examples 1000000 --only safetensors config
    python tools/fuzz.py --examples 20000 --seed 7 --json fuzz.json

Prints, per property, the cases run, the time, and how the cases ended (for example 'valid',
'bad header', 'refused'), so a run that stopped exploring shows. Exits 1 on the first failing
property, after hypothesis has shrunk the failing case (printed as a `Falsifying example`; the
case is a short byte string, or a str for the tokenizer, that the property function reproduces:
`python -c "import sys; sys.path[:0] = ['tools', '.']; import fuzz_properties as F;
F.check_safetensors(b'...')"`).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT)]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

import fuzz_properties  # noqa: E402


def run(name: str, examples: int, rng_seed: int | None = None) -> dict:
    strategy, check = fuzz_properties.PROPERTIES[name]
    outcomes: collections.Counter = collections.Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(strategy)
    def prop(case):
        outcomes[check(case)] += 1

    if rng_seed is not None:
        prop = seed(rng_seed)(prop)
    t0 = time.perf_counter()
    error = None
    try:
        prop()
    except Exception as exc:  # noqa: BLE001 - reported below with hypothesis' falsifying example
        error = f"{type(exc).__name__}: {exc}"
    return {"property": name, "cases": sum(outcomes.values()), "seconds": round(time.perf_counter() - t0, 1),
            "outcomes": dict(outcomes.most_common()), "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="cases per property (default 100,000)")
    parser.add_argument("--only", nargs="+", choices=sorted(fuzz_properties.PROPERTIES), help="these properties only")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, for a repeatable run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for name in args.only or list(fuzz_properties.PROPERTIES):
        result = run(name, args.examples, args.seed)
        results.append(result)
        shown = ", ".join(f"{k} {v}" for k, v in result["outcomes"].items())
        print(f"{name}: {result['cases']:,} cases in {result['seconds']} s ({shown})"
              + (f"\n  FAILED: {result['error'][:2000]}" if result["error"] else ""), flush=True)
        if result["error"]:
            break
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
