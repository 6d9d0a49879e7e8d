"""Benchmark PyWebGPT: one JSON object per configuration, and a row appended to BENCH.md.

    python tools/bench.py --model DIR [--model DIR ...] [--runtime browser|node] [--no-bench-md]

For each model folder: page-open-to-ready, model load cold and warm (second load; from Cache
Storage in the browser), time to first token of an 11-token prompt, then app/bench.py inside the
runtime: prefill tokens/s at prompt lengths 16/128/512, decode ms/token median and p90 at contexts
16/128/512 (one step at a time and chained), dispatches, FFI calls and bytes read back per decode
step, GPU memory, the weight bytes a decode step reads per second against the copy bandwidth
measured in the same run, a decode step's time on the GPU itself from timestamp queries (where the
adapter has `timestamp-query`; with 5 and with 64 candidates), and the ms per token of whole sampled
generations (the page's default settings) chained and one step at a time.
Runtimes: headless Chromium (SwiftShader here) or Node + Dawn (`--runtime node`, tools/node_runner.mjs:
the Vulkan driver that VK_ICD_FILENAMES names, e.g. an NVIDIA GPU's, else SwiftShader).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from generate import CHROMIUM_ARGS, CliError, _clean_js_error, run_node  # noqa: E402
from serve import Server  # noqa: E402

from vendor import vendor  # noqa: E402

PROMPT_IDS = [464, 5044, 1110, 373, 257, 1263, 11, 3223, 290, 6388, 1755]  # 11 tokens, as in BENCH.md's WebGPT figure


def bench_code(prompts, contexts, steps, tuning: dict | None = None, profile: bool = False,
               generate_tokens: int = 64) -> str:
    """Python run in the runtime on the loaded model. With `tuning` (kernel-shape overrides,
    app/shapes.py), the model is loaded again with those shapes first."""
    code = "from pywebgpt import bench\n"
    if tuning:
        code += f"await engine.reload(shape_overrides={tuning!r})\n"
    code += (f"_out = await bench.run(engine.model, prompt_lengths={tuple(prompts)!r}, "
             f"contexts={tuple(contexts)!r}, decode_steps={steps}, generate_tokens={generate_tokens})\n")
    if tuning:
        code += f"_out['tuning'] = {tuning!r}\n"
    if profile:
        code += (f"_out['profile'] = [await bench.profile(engine.model.gpu_model, 'decode', "
                 f"{contexts[min(1, len(contexts) - 1)]}), "
                 f"await bench.profile(engine.model.gpu_model, 'prefill', {max(prompts)}, reps=5)]\n")
    return code + "_out"


def ttft_options(vocab: int) -> dict:
    return {"prompt_ids": [i % vocab for i in PROMPT_IDS], "max_new_tokens": 8, "temperature": 0}


# The page starts loading its default model by itself: cancel that, then load ours.
LOAD_JS = """async (ref) => {
  for (let i = 0; i < 1200; i++) {
    try { return await window.pywebgpt.load(ref); } catch (e) {
      if (e.code !== 'busy') throw e;
      window.pywebgpt.cancelLoad();
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('the page stayed busy loading another model');
}"""


def run_browser_bench(args, server, ref, code) -> dict:
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.browser, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(0)
            t0 = time.perf_counter()
            page.goto(server.url)
            try:
                info = page.evaluate("() => window.pywebgpt.ready")
                ready_ms = (time.perf_counter() - t0) * 1000
                model = page.evaluate(LOAD_JS, ref)
                warm = page.evaluate(LOAD_JS, ref)
                result = page.evaluate("([p, o]) => window.pywebgpt.generate(p, o)",
                                       ["", ttft_options(model["vocab_size"])])
                python = json.loads(page.evaluate("(c) => window.pywebgpt._py(c)", code))
            except PlaywrightError as exc:
                raise CliError(_clean_js_error(exc.message)) from None
            return {"info": info, "ready_ms": ready_ms, "model": model, "warm_model": warm,
                    "result": result, "python": python}
        finally:
            browser.close()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def summarize(args, model_dir: Path, out: dict) -> dict:
    info, model, bench = out["info"], out["model"], out["python"]
    adapter = info.get("adapter", {})
    warm = out.get("warm_model") or {}
    load = lambda m: (m.get("load") or {}).get("seconds", m.get("load_s"))  # noqa: E731
    row = {
        "commit": args.commit or git_commit(), "runtime": args.runtime,
        "adapter": " / ".join(v for v in (adapter.get("vendor"), adapter.get("architecture"),
                                          adapter.get("device") or adapter.get("description")) if v),
        "model": model_dir.name, "parameters": model.get("parameters"), "dtype": model.get("dtype"),
        "ready_ms": round(out.get("ready_ms") or 0, 1),
        "load_cold_s": load(model), "load_warm_s": load(warm) if warm else None,
        "warm_from_cache": (warm.get("load") or {}).get("from_cache") if warm else None,
        "ttft_ms": round(out["result"]["timings"].get("ttft_ms") or 0, 1),
    }
    row.update(bench)
    return row


BENCH_HEADER = ("| commit | runtime | adapter | model | dtype | ready ms | load cold / warm s | TTFT ms | "
                "prefill tok/s (16/128/512) | decode ms median (16/128/512) | p90 @16 | "
                "chained greedy ms (16/128/512) | sampled generation ms/token (one step / chained) | "
                "dispatches/step | FFI calls/step | readback B/step | weight GB/s (step / chained) | copy GB/s |\n"
                "|---|---|---|---|---|---:|---|---:|---|---|---:|---|---|---:|---:|---:|---|---:|\n")


def bench_md_row(r: dict) -> str:
    pre = "/".join(str(v["tokens_per_s"]) for v in r["prefill"].values())
    dec = "/".join(str(v["ms_median"]) for v in r["decode"].values())
    p90 = next(iter(r["decode"].values()))["ms_p90"]
    chained = "/".join(str(v["ms_median"]) for v in r.get("decode_chained", {}).values()) or "-"
    sampled = r.get("generate_sampled_ms_per_token")
    sampled = f"{sampled['one_step']} / {sampled['chained']}" if sampled else "-"
    return (f"| {r['commit']} | {r['runtime']} | {r['adapter']} | {r['model']} | {r['dtype']} | {r['ready_ms']} | "
            f"{r['load_cold_s']} / {r['load_warm_s']} | {r['ttft_ms']} | {pre} | {dec} | {p90} | {chained} | "
            f"{sampled} | "
            f"{r['dispatches_per_decode_step']} | {r.get('ffi_calls_per_decode_step')} | "
            f"{r['readback_bytes_per_decode_step']} | {r['weight_gbs_at_first_context']} / "
            f"{r.get('weight_gbs_chained_at_first_context', '-')} | {r.get('copy_gbs')} |\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model folder (repeatable)")
    parser.add_argument("--runtime", choices=("browser", "node"), default="browser")
    parser.add_argument("--browser", default="/usr/bin/chromium")
    parser.add_argument("--prompts", default="16,128,512")
    parser.add_argument("--contexts", default="16,128,512")
    parser.add_argument("--steps", type=int, default=20, help="decode steps timed per context")
    parser.add_argument("--generate-tokens", type=int, default=64,
                        help="tokens of the sampled generations timed chained and one step at a time (0: none)")
    parser.add_argument("--no-bench-md", action="store_true", help="do not append to BENCH.md")
    parser.add_argument("--commit", default=None, help="commit to record (default: git rev-parse HEAD)")
    parser.add_argument("--tuning", default=None,
                        help='kernel-shape overrides as JSON, e.g. \'{"gemv_cols4": 2}\' (app/shapes.py KernelShapes)')
    parser.add_argument("--profile", action="store_true",
                        help="add a per-kernel breakdown of a decode step (second context) and a prefill run "
                             "(longest prompt): app/bench.py profile()")
    args = parser.parse_args(argv)
    prompts = [int(x) for x in args.prompts.split(",")]
    contexts = [int(x) for x in args.contexts.split(",")]
    tuning = json.loads(args.tuning) if args.tuning else None
    if tuning is not None and not isinstance(tuning, dict):
        parser.error("--tuning takes a JSON object")
    code = bench_code(prompts, contexts, args.steps, tuning, args.profile, args.generate_tokens)
    status = 0
    if args.runtime == "browser":
        vendor()
    for model in args.model:
        model_dir = Path(model).expanduser().resolve()
        server = Server(ROOT, mounts={"/models/m/": model_dir}).start()
        try:
            if args.runtime == "node":
                vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
                args.repeat = 1
                out = run_node(args, server, "models/m/", "", ttft_options(vocab),
                               extra={"python": code, "reload": True})
            else:
                out = run_browser_bench(args, server, "models/m/", code)
            row = summarize(args, model_dir, out)
        except CliError as exc:
            print(json.dumps({"model": str(model_dir), "runtime": args.runtime, "error": str(exc)}))
            status = 2
            continue
        finally:
            server.stop()
        print(json.dumps(row), flush=True)
        if not args.no_bench_md:
            path = ROOT / "BENCH.md"
            if not path.exists():
                path.write_text("# Benchmarks\n\nRows appended by `python tools/bench.py` (see its docstring).\n\n")
            text = path.read_text()
            if BENCH_HEADER.splitlines()[0] not in text:
                text += "\n" + BENCH_HEADER
            path.write_text(text + bench_md_row(row))
    return status


if __name__ == "__main__":
    sys.exit(main())
