"""Generate text with PyWebGPT from the command line: the real engine, in a real runtime.

    python tools/generate.py --model DIR|FILE.gguf (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N]
        [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S] [--stop STR]
        [--quantize q8_0|q4_0] [--json] [--dump-logits FILE.npy] [--runtime browser|node] [--browser PATH]

It serves the site, mounts the model folder (or the GGUF file's folder; anywhere on disk) under
/models/, and runs the page's
own engine: in headless Chromium with WebGPU (default; SwiftShader unless a GPU is usable), or in
Node + Dawn (`--runtime node`, which reaches a real NVIDIA GPU on a machine without a display).
Temperature 0 means greedy. A model it cannot run: exit status 2 and one line `error: ...`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from serve import Server  # noqa: E402
from vendor import vendor  # noqa: E402

CHROMIUM_ARGS = [
    "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan",
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
    "--disable-quic",
]
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"


class CliError(Exception):
    pass


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The generation, output and runtime options (shared with tools/chat.py)."""
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--no-stop-on-eos", action="store_true", help="keep going past the end-of-text token")
    p.add_argument("--quantize", choices=("q8_0", "q4_0"), default=None,
                   help="quantize a Llama-family model's float matrices on the GPU while loading")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--dump-logits", type=Path, help="write float32 [new_tokens, vocab] logits to this .npy")
    p.add_argument("--runtime", choices=("browser", "node"), default="browser")
    p.add_argument("--browser", default=os.environ.get("PYWEBGPT_CHROMIUM", "/usr/bin/chromium"),
                   help="Chromium executable (browser runtime)")
    p.add_argument("--repeat", type=int, default=1, help="generate this many times (timings of the last)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder (config.json, model.safetensors, tokenizer files) "
                                                   "or a .gguf file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt")
    g.add_argument("--prompt-ids", help="comma-separated token ids")
    add_run_arguments(p)
    return p.parse_args(argv)


def generation_options(args) -> dict:
    opts = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    for key in ("top_k", "top_p", "repetition_penalty", "seed", "stop"):
        value = getattr(args, key)
        if value is not None:
            opts[key] = value
    if args.no_stop_on_eos:
        opts["stop_on_eos"] = False
    if args.prompt_ids is not None:
        try:
            opts["prompt_ids"] = [int(x) for x in args.prompt_ids.split(",") if x.strip()]
        except ValueError:
            raise CliError(f"--prompt-ids must be comma-separated integers, got {args.prompt_ids!r}") from None
        if not opts["prompt_ids"]:
            raise CliError("--prompt-ids is empty")
    if args.dump_logits is not None:
        opts["return_logits"] = True
    return opts


def _clean_js_error(message: str) -> str:
    # Playwright wraps page errors: "Error: <message>\n    at ..." / "PythonError: Traceback ..."
    text = re.sub(r"^[A-Z]\w*\.\w+: ", "", str(message))  # Playwright's "Page.evaluate: " prefix
    m = re.search(r"(?:^|\n)\s*\w*(?:Error|Busy|Exception): (.+)", text.split("Call log:")[0])
    lines = [line for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        last = [line for line in lines if re.match(r"^\w[\w.]*(Error|Exception|Busy)\b", line.strip())]
        if last:
            return last[-1].split(": ", 1)[-1]
    return (m.group(1) if m else lines[-1] if lines else text).strip()


@contextmanager
def site_page(args, server: Server):
    """Headless Chromium on the served site once pywebgpt is ready: yields (page, runtime info). A
    JavaScript error inside the block becomes a CliError with the engine's message."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    if not Path(args.browser).exists():
        raise CliError(f"Chromium not found at {args.browser} (apt-get install -y chromium, or --browser PATH)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.browser, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(0)
            page.goto(server.url)
            try:
                yield page, page.evaluate("() => window.pywebgpt.ready")
            except PlaywrightError as exc:
                raise CliError(_clean_js_error(exc.message)) from None
        finally:
            browser.close()


def run_browser(args, server: Server, model_ref: str, prompt: str, opts: dict) -> dict:
    with site_page(args, server) as (page, info):
        # "./": a site path, not a Hub id such as org/name/file.gguf
        model = page.evaluate("([ref, o]) => window.pywebgpt.load(ref, o)", ["./" + model_ref, load_options(args)])
        results = [page.evaluate("([p, o]) => window.pywebgpt.generate(p, o)", [prompt, opts])
                   for _ in range(max(1, args.repeat))]
    return {"info": info, "model": model, "result": results[-1], "results": results}


def run_node(args, server: Server, model_ref: str, prompt: str, opts: dict, extra: dict | None = None) -> dict:
    node = shutil.which("node")
    if node is None:
        raise CliError("node is not installed (Node.js 20+ is needed for --runtime node)")
    if not (ROOT / "node_modules" / "webgpu").is_dir():
        raise CliError("node_modules/webgpu is missing: run `npm ci`")
    env = dict(os.environ)
    if "VK_ICD_FILENAMES" not in env and "VK_DRIVER_FILES" not in env and Path(SWIFTSHADER_ICD).exists():
        env["VK_ICD_FILENAMES"] = SWIFTSHADER_ICD  # no GPU driver configured: software Vulkan
        env["LD_LIBRARY_PATH"] = "/usr/lib/chromium:" + env.get("LD_LIBRARY_PATH", "")
    payload = {"model_url": server.url + model_ref, "prompt": prompt, "options": opts, "repeat": max(1, args.repeat),
               "load_options": load_options(args), **(extra or {})}
    proc = subprocess.run([node, str(ROOT / "tools" / "node_runner.mjs"), json.dumps(payload)],
                          capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CliError(f"the Node runner failed: {tail}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise CliError(_clean_js_error(out["error"]))
    return out


def load_options(args) -> dict:
    """pywebgpt.load()'s options from the command line."""
    return {"quantize": args.quantize} if getattr(args, "quantize", None) else {}


def model_folder(model: str) -> Path:
    """--model as a folder the engine can load (config.json present) or a .gguf file, or CliError."""
    path = Path(model).expanduser().resolve()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if not path.is_dir():
        raise CliError(f"--model {model}: not a folder nor a .gguf file")
    if not (path / "config.json").is_file():
        raise CliError(f"--model {model}: no config.json in that folder")
    return path


def run_model(args, model_path: Path, prompt: str, opts: dict) -> dict:
    """Serve the site with the model folder (or a GGUF file's folder) mounted under /models/m/ and
    generate in the chosen runtime."""
    if args.runtime == "browser":  # the Node runner needs no vendor/ (nor npm)
        vendor()
    gguf = model_path.is_file()
    server = Server(ROOT, mounts={"/models/m/": model_path.parent if gguf else model_path}).start()
    try:
        runner = run_node if args.runtime == "node" else run_browser
        return runner(args, server, "models/m/" + (model_path.name if gguf else ""), prompt, opts)
    finally:
        server.stop()


def print_report(args, out: dict) -> None:
    """The result: the text (and a summary line on stderr), or with --json one JSON object."""
    result, info = out["result"], out["info"]
    timings = dict(result.get("timings", {}))
    timings["load_s"] = out["model"].get("load_s")
    report = {
        "prompt_ids": result["prompt_ids"], "tokens": result["tokens"], "text": result["text"],
        "finish_reason": result["finish_reason"], "timings": timings, "adapter": info.get("adapter"),
        "runtime": args.runtime,
        "model": {k: out["model"].get(k) for k in ("parameters", "dtype", "weight_formats", "context", "gpu_bytes",
                                                   "load")},
    }
    if out.get("load_memory"):  # the Node runner's process.memoryUsage() before and at its peak during the load
        report["load_memory"] = out["load_memory"]
    if result.get("notices"):
        report["notices"] = result["notices"]
    if args.dump_logits is not None:
        import numpy as np  # noqa: PLC0415

        raw = base64.b64decode(result.get("logits_f32_b64", ""))
        logits = np.frombuffer(raw, dtype="<f4").reshape(len(result["tokens"]), result["vocab_size"])
        np.save(args.dump_logits, logits)
    if args.json:
        print(json.dumps(report))
    else:
        print(result["text"])
        print(f"[{len(result['tokens'])} tokens, {result['finish_reason']}, "
              f"decode {timings.get('decode_ms_per_token') or 0:.1f} ms/token]", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model_dir = model_folder(args.model)
        opts = generation_options(args)
        out = run_model(args, model_dir, args.prompt or "", opts)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
