"""Benchmark PyWebGPT against the adapter's roofline: one JSON object per model, and a row appended to BENCH.md.

    python tools/bench.py [--model DIR|FILE.gguf ...] [--synthetic NAME:FORMAT ...] [--runtime browser|node]
        [--profile] [--no-kernel-times] [--tuning JSON] [--no-bench-md]

Models: a folder (config.json, safetensors, tokenizer) or a .gguf file (--model), or a model shape
with random weights made on the GPU (--synthetic, app/synthetic.py SYNTHETIC: llama-1b, smollm2-135m, qwen2.5-0.5b,
gpt2-117m, gpt2-xl; formats f32, f16, bf16, q8_0, q4_0, q4_1 (GPT-2: floats only)), which needs no
file: e.g. `--synthetic llama-1b:q4_0`.

In the runtime, app/bench.py measures in the same run the adapter's read bandwidth (a streaming WGSL
kernel, shaders/roofline.wgsl: vec4<u32> loads, grid-stride), its f32 FMA rate and the microseconds a
dispatch that does nothing costs in a chain of them (roofline.dispatch_us, by workgroup count), then: prefill
tokens/s and TFLOP/s (against the FMA rate) at prompt lengths 16/128/512, decode ms/token median and
p90 at contexts 16/128/512 one step at a time and chained, the bytes each decode step must read
(weights, one token-table row, the KV cache) per second as a fraction of the read roofline, the step's
time on the GPU itself from timestamp queries (with 5 and 64 candidates), each decode dispatch timed
on the GPU with the bytes it reads (per kernel: ms, GB/s, share), dispatches / FFI calls / bytes read
back per decode step, GPU memory, the copyBufferToBuffer bandwidth; for a loaded model also
page-open-to-ready, load cold and warm, time to first token of an 11-token prompt and the ms per token
of whole sampled generations (the page's default settings) chained and one step at a time.
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
sys.path.insert(0, str(ROOT))

from generate import CHROMIUM_ARGS, CliError, _clean_js_error, run_node  # noqa: E402
from serve import Server  # noqa: E402
from vendor import vendor  # noqa: E402

PROMPT_IDS = [464, 5044, 1110, 373, 257, 1263, 11, 3223, 290, 6388, 1755]  # 11 tokens, as in BENCH.md's WebGPT figure
# What the runtime loads before a synthetic model is made beside it (the Node runner loads a model first).
HOST_MODEL = "weights/shakespeare-char/"


def bench_code(prompts, contexts, steps, tuning: dict | None = None, profile: bool = False,
               generate_tokens: int = 64, kernel_times: bool = True, synthetic: tuple | None = None) -> str:
    """Python run in the runtime: app/bench.py on the loaded model, or on a synthetic one
    (`synthetic`: (name, format)). With `tuning` (kernel-shape overrides, app/shapes.py), the model
    is loaded (or made) with those shapes."""
    code = "from pywebgpt import bench\n"
    if synthetic:
        if tuning:
            code += f"engine.shape_overrides = {tuning!r}\n"
        name, fmt = synthetic
        code += (f"_out = await bench.synthetic(engine, {name!r}, {fmt!r}, prompt_lengths={tuple(prompts)!r}, "
                 f"contexts={tuple(contexts)!r}, decode_steps={steps}, profile_kernels={bool(profile)}, "
                 f"per_kernel={bool(kernel_times)})\n")
    else:
        if tuning:
            code += f"await engine.reload(shape_overrides={tuning!r})\n"
        code += (f"_out = await bench.run(engine.model, prompt_lengths={tuple(prompts)!r}, "
                 f"contexts={tuple(contexts)!r}, decode_steps={steps}, generate_tokens={generate_tokens}, "
                 f"kernel_times={bool(kernel_times)})\n")
        if profile:
            code += (f"_out['profile'] = [await bench.profile(engine.model.gpu_model, 'decode', "
                     f"{contexts[min(1, len(contexts) - 1)]}), "
                     f"await bench.profile(engine.model.gpu_model, 'prefill', {max(prompts)}, reps=5)]\n")
    if tuning:
        code += f"_out['tuning'] = {tuning!r}\n"
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
                model = warm = result = None
                if ref is not None:  # None: a synthetic model, made by the code itself
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


def summarize(args, name: str, out: dict, synthetic: bool = False) -> dict:
    info, bench = out["info"], out["python"]
    adapter = info.get("adapter", {})
    row = {
        "commit": args.commit or git_commit(), "runtime": args.runtime,
        "adapter": " / ".join(v for v in (adapter.get("vendor"), adapter.get("architecture"),
                                          adapter.get("device") or adapter.get("description")) if v),
        "model": name, "ready_ms": round(out.get("ready_ms") or 0, 1),
    }
    if not synthetic:
        model, warm = out["model"], out.get("warm_model") or {}
        load = lambda m: (m.get("load") or {}).get("seconds", m.get("load_s"))  # noqa: E731
        row.update({
            "parameters": model.get("parameters"), "dtype": model.get("dtype"),
            "load_cold_s": load(model), "load_warm_s": load(warm) if warm else None,
            "warm_from_cache": (warm.get("load") or {}).get("from_cache") if warm else None,
            "ttft_ms": round(out["result"]["timings"].get("ttft_ms") or 0, 1),
        })
    row.update(bench)
    return row


BENCH_HEADER = ("| commit | runtime | adapter | model | weights | GPU MB | MB read / decode step (first context) | "
                "decode ms, one step (contexts) | decode ms, chained | GPU pass ms | read roofline GB/s | "
                "fraction of read roofline: one step / chained / GPU pass | prefill tok/s (lengths) | "
                "prefill TFLOP/s (longest) | FMA TFLOP/s | fraction of FMA | dispatches/step |\n"
                "|---|---|---|---|---|---:|---:|---|---|---:|---:|---|---|---:|---:|---:|---:|\n")


def bench_md_row(r: dict) -> str:
    contexts = list(r["decode"])
    dec = "/".join(str(v["ms_median"]) for v in r["decode"].values())
    chained = "/".join(str(v["ms_median"]) for v in r.get("decode_chained", {}).values()) or "-"
    pre = "/".join(str(v["tokens_per_s"]) for v in r["prefill"].values())
    roof = r.get("roofline") or {}
    vs = (r.get("decode_vs_roofline") or {}).get(contexts[0], {})
    stamps = r.get("gpu_timestamps") or {}
    fractions = " / ".join(str(x) if x is not None else "-" for x in (
        (vs.get("one_step") or {}).get("fraction"), (vs.get("chained") or {}).get("fraction"),
        stamps.get("fraction_of_read_roofline")))
    longest = list(r["prefill"].values())[-1] if r["prefill"] else {}
    mb = lambda n: round(n / 1e6, 1) if n else "-"  # noqa: E731
    weights = "/".join(r.get("weight_formats") or [str(r.get("dtype"))])
    return (f"| {r['commit']} | {r['runtime']} | {r['adapter']} | {r['model']} | {weights} | "
            f"{mb(r.get('gpu_bytes'))} | {mb(vs.get('bytes'))} | {dec} ({'/'.join(contexts)}) | {chained} | "
            f"{stamps.get('pass_ms', '-')} | "
            f"{roof.get('read_gbs', '-')} | {fractions} | {pre} ({'/'.join(r['prefill'])}) | "
            f"{longest.get('tflops', '-')} | {roof.get('fma_tflops', '-')} | {longest.get('fraction_of_fma', '-')} | "
            f"{r['dispatches_per_decode_step']} |\n")


def gguf_vocab(path: Path) -> int:
    from app.gguf import read_gguf_header  # noqa: PLC0415 - standard library only
    from app.gguf_meta import gguf_config  # noqa: PLC0415

    return int(gguf_config(read_gguf_header(path))["vocab_size"])


def run_target(args, kind: str, target, code: str) -> tuple:
    """(name, runner output) of one --model or --synthetic target; raises CliError."""
    if kind == "synthetic":
        server = Server(ROOT).start()
        try:
            if args.runtime == "node":
                vocab = json.loads((ROOT / HOST_MODEL / "config.json").read_text())["vocab_size"]
                args.repeat = 1
                out = run_node(args, server, HOST_MODEL, "", ttft_options(vocab), extra={"python": code})
            else:
                out = run_browser_bench(args, server, None, code)
        finally:
            server.stop()
        return f"{target[0]}", out
    path = Path(target).expanduser().resolve()
    gguf = path.is_file() and path.suffix.lower() == ".gguf"
    if not gguf and not (path / "config.json").is_file():
        raise CliError(f"--model {target}: not a model folder (config.json) nor a .gguf file")
    server = Server(ROOT, mounts={"/models/m/": path.parent if gguf else path}).start()
    ref = "models/m/" + (path.name if gguf else "")
    try:
        if args.runtime == "node":
            vocab = gguf_vocab(path) if gguf else json.loads((path / "config.json").read_text())["vocab_size"]
            args.repeat = 1
            out = run_node(args, server, ref, "", ttft_options(vocab), extra={"python": code, "reload": True})
        else:  # "./": a site path, not a Hub id such as org/name/file.gguf
            out = run_browser_bench(args, server, "./" + ref, code)
    finally:
        server.stop()
    return path.stem if gguf else path.name, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="model folder or .gguf file (repeatable)")
    parser.add_argument("--synthetic", action="append", default=[], metavar="NAME:FORMAT",
                        help="a model shape with random weights made on the GPU, e.g. llama-1b:q4_0 (repeatable)")
    parser.add_argument("--runtime", choices=("browser", "node"), default="browser")
    parser.add_argument("--browser", default="/usr/bin/chromium")
    parser.add_argument("--prompts", default="16,128,512")
    parser.add_argument("--contexts", default="16,128,512")
    parser.add_argument("--steps", type=int, default=20, help="decode steps timed per context")
    parser.add_argument("--generate-tokens", type=int, default=64,
                        help="tokens of the sampled generations timed chained and one step at a time (0: none; "
                             "loaded models only)")
    parser.add_argument("--no-kernel-times", action="store_true",
                        help="leave out the per-dispatch GPU timestamps of a decode step")
    parser.add_argument("--no-bench-md", action="store_true", help="do not append to BENCH.md")
    parser.add_argument("--commit", default=None, help="commit to record (default: git rev-parse HEAD)")
    parser.add_argument("--tuning", default=None,
                        help='kernel-shape overrides as JSON, e.g. \'{"gemv_unroll": 2}\' (app/shapes.py KernelShapes)')
    parser.add_argument("--profile", action="store_true",
                        help="add a per-kernel breakdown of a decode step (second context) and a prefill run "
                             "(longest prompt) by leaving kernels out: app/bench.py profile()")
    args = parser.parse_args(argv)
    if not args.model and not args.synthetic:
        parser.error("give at least one --model or --synthetic")
    prompts = [int(x) for x in args.prompts.split(",")]
    contexts = [int(x) for x in args.contexts.split(",")]
    tuning = json.loads(args.tuning) if args.tuning else None
    if tuning is not None and not isinstance(tuning, dict):
        parser.error("--tuning takes a JSON object")
    targets = [("model", m, None) for m in args.model]
    for spec in args.synthetic:
        name, _, fmt = spec.partition(":")
        if not name or not fmt:
            parser.error(f"--synthetic {spec}: give NAME:FORMAT, e.g. llama-1b:q4_0")
        targets.append(("synthetic", (name, fmt.lower()), (name, fmt.lower())))
    status = 0
    if args.runtime == "browser":
        vendor()
    for kind, target, synthetic in targets:
        code = bench_code(prompts, contexts, args.steps, tuning, args.profile, args.generate_tokens,
                          not args.no_kernel_times, synthetic)
        try:
            name, out = run_target(args, kind, target, code)
            row = summarize(args, name, out, synthetic=kind == "synthetic")
        except CliError as exc:
            print(json.dumps({"model": str(target), "runtime": args.runtime, "error": str(exc)}), flush=True)
            status = 2
            continue
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
