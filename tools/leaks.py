"""Leak check in headless Chromium: N generations in a row and M unload/load cycles on a small model;
reports live GPU buffers and bytes (app/gpu.py counts every create and destroy), the JS heap after
a forced GC, the wasm heap and Python's live objects, against a baseline, as JSON.

    python tools/leaks.py                              # 200 generations, 20 cycles, a tiny random GPT-2
    python tools/leaks.py --generations 50 --cycles 5 --model weights/shakespeare-char --json leaks.json

The baseline is taken with the model loaded and one generation done (a model allocates its logits
readback buffer on first use, and the first run compiles and caches pipelines). A leak-free engine
ends both phases at the baseline's buffer count and bytes exactly; the heaps may move by a bounded
amount (JIT code, interned strings, caches that fill once) but must not grow with N or M.
tests/test_reliability.py runs a smaller version (measure() below) and checks those bounds.

Chromium runs with --js-flags=--expose-gc and --enable-precise-memory-info, so window.gc() and
performance.memory are available; the heap figures come from the DevTools protocol
(HeapProfiler.collectGarbage, Runtime.getHeapUsage), which works in any Chromium page.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT)]

GENERATE_LOOP_JS = """async ([n, opts]) => {
  let tokens = 0, pieces = 0;
  for (let i = 0; i < n; i++) {
    const r = await pywebgpt.generate('ab', {...opts, seed: i}, (t) => { pieces += t.text.length; });
    tokens += r.tokens.length;
  }
  return {tokens, pieces};
}"""

CYCLE_JS = """async ([ref, opts]) => {
  await pywebgpt.unload();
  const unloaded = JSON.parse(await pywebgpt._py("[gpu.live_buffers, gpu.bytes_allocated]"));
  const info = await pywebgpt.load(ref, opts);
  const r = await pywebgpt.generate('ab', {max_new_tokens: 2, temperature: 0});
  return {unloaded, from_cache: info.load.from_cache, tokens: r.tokens.length};
}"""

SNAPSHOT_PY = """
import gc, sys
gc.collect()
try:
    import pyodide_js
    wasm = int(pyodide_js._module.HEAPU8.length)
except Exception:
    wasm = None
{'live_buffers': gpu.live_buffers, 'bytes_allocated': gpu.bytes_allocated, 'wasm_heap_bytes': wasm,
 'py_objects': len(gc.get_objects())}
"""


def snapshot(page, cdp) -> dict:
    """Counters after a forced GC (Python's, then V8's)."""
    out = json.loads(page.evaluate("async (code) => await pywebgpt._py(code)", SNAPSHOT_PY))
    for _ in range(2):
        cdp.send("HeapProfiler.collectGarbage")
    usage = cdp.send("Runtime.getHeapUsage")
    out["js_heap_bytes"] = int(usage["usedSize"])
    out["performance_memory_used"] = page.evaluate(
        "() => (self.performance && performance.memory) ? performance.memory.usedJSHeapSize : null")
    return out


def _delta(after: dict, before: dict) -> dict:
    return {k: (after[k] - before[k]) if isinstance(after.get(k), int) and isinstance(before.get(k), int) else None
            for k in before}


def measure(page, ref: str, generations: int = 200, cycles: int = 20, max_new_tokens: int = 8,
            load_opts: dict | None = None, batch: int = 10) -> dict:
    """Run the leak check on a page whose `pywebgpt` is ready; `ref` is the model to load.
    Returns {baseline, after_generations, after_cycles, delta_*, unloaded, timings, ...}."""
    cdp = page.context.new_cdp_session(page)
    load_opts = dict(load_opts or {})
    t0 = time.perf_counter()
    page.evaluate("async ([ref, opts]) => { await pywebgpt.load(ref, opts); }", [ref, load_opts])
    opts = {"max_new_tokens": max_new_tokens, "temperature": 0.8, "top_k": 20}
    page.evaluate(GENERATE_LOOP_JS, [1, opts])  # first use: the logits readback buffer, pipelines
    page.evaluate(GENERATE_LOOP_JS, [1, {**opts, "repetition_penalty": 1.2}])  # and the full-logits path
    baseline = snapshot(page, cdp)
    t1 = time.perf_counter()

    tokens = 0
    done = 0
    curve = []
    while done < generations:
        n = min(batch, generations - done)
        # alternate the candidate path (top-k) and the full-logits path (repetition penalty)
        extra = {"repetition_penalty": 1.2} if (done // batch) % 2 else {}
        tokens += page.evaluate(GENERATE_LOOP_JS, [n, {**opts, **extra}])["tokens"]
        done += n
        if done % max(batch, generations // 4) == 0 or done == generations:
            s = snapshot(page, cdp)
            curve.append({"generations": done, "live_buffers": s["live_buffers"], "js_heap_bytes": s["js_heap_bytes"],
                          "py_objects": s["py_objects"]})
    after_generations = snapshot(page, cdp)
    t2 = time.perf_counter()

    unloaded, from_cache = [], []
    for i in range(cycles):
        r = page.evaluate(CYCLE_JS, [ref, load_opts])
        unloaded.append(r["unloaded"])
        from_cache.append(r["from_cache"])
        if (i + 1) % max(1, cycles // 4) == 0 and i + 1 < cycles:
            s = snapshot(page, cdp)
            curve.append({"cycles": i + 1, "live_buffers": s["live_buffers"], "js_heap_bytes": s["js_heap_bytes"],
                          "py_objects": s["py_objects"]})
    if cycles:
        page.evaluate(GENERATE_LOOP_JS, [1, {**opts, "repetition_penalty": 1.2}])  # same state as the baseline
    after_cycles = snapshot(page, cdp)
    t3 = time.perf_counter()
    cdp.detach()
    return {
        "model": ref, "generations": generations, "tokens_generated": tokens, "max_new_tokens": max_new_tokens,
        "load_unload_cycles": cycles,
        "baseline": baseline, "after_generations": after_generations, "after_cycles": after_cycles,
        "delta_after_generations": _delta(after_generations, baseline),
        "delta_after_cycles": _delta(after_cycles, baseline),
        "unloaded_live_buffers": sorted({u[0] for u in unloaded}), "unloaded_bytes": sorted({u[1] for u in unloaded}),
        "cycles_from_cache": sum(1 for c in from_cache if c),
        "curve": curve,
        "seconds": {"setup": round(t1 - t0, 1), "generations": round(t2 - t1, 1), "cycles": round(t3 - t2, 1)},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=20, help="unload/load cycles")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--model", type=Path, default=None,
                        help="a model folder (default: a tiny random GPT-2 made by tools/make_model.py)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from make_model import cached_model
    from serve import Server
    from vendor import vendor

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import CHROMIUM, CHROMIUM_ARGS

    folder = args.model
    if folder is None:
        folder = cached_model(Path(tempfile.gettempdir()) / "pywebgpt-models", n_layer=2, n_head=2, n_embd=64,
                              n_positions=64, vocab_size=100, tokenizer="char", init_std=0.1)
    vendor()
    server = Server(ROOT, mounts={"/models/leak/": Path(folder).resolve()}).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=CHROMIUM_ARGS + ["--js-flags=--expose-gc", "--enable-precise-memory-info"])
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(server.url)
            page.evaluate("() => pywebgpt.ready")
            report = measure(page, "/models/leak/", args.generations, args.cycles, args.max_new_tokens)
            report["window_gc"] = page.evaluate("() => typeof window.gc === 'function'")
            browser.close()
    finally:
        server.stop()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    d1, d2 = report["delta_after_generations"], report["delta_after_cycles"]
    leaked = (any(d[k] for d in (d1, d2) for k in ("live_buffers", "bytes_allocated"))
              or report["unloaded_live_buffers"] != [0])
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
