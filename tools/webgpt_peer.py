"""WebGPT (0hq/WebGPT) beside PyWebGPT on the same adapter, in one run: ms per generated token of
GPT-2 117M-shaped f32 models with random weights, greedy, from the same 11-token prompt.

    python tools/webgpt_peer.py --webgpt DIR [--tokens 20] [--browser /usr/bin/chromium]

DIR is a checkout of https://github.com/0hq/WebGPT (not shipped here: its licence is its own). The
tool writes a random GPT-2 117M model in WebGPT's format (one little-endian f32 file per tensor of
Hugging Face's state dict, params_gpt.json) into a temporary folder, serves it with WebGPT's scripts
and a page that drives WebGPT's own `GPT.run` the way its `generate` does (the whole sequence again
for every new token: it has no KV cache), and times each token. Then it runs tools/bench.py on the
`gpt2-117m:f32` synthetic model (random weights made on the GPU) in the same browser flags and reads
its decode figures at the same contexts. Prints one JSON object: both sides' per-token times and
their ratio. Nothing here is a test: it needs WebGPT's code, which the suite does not fetch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from app.synthetic import SYNTHETIC  # noqa: E402
from bench import PROMPT_IDS  # noqa: E402 - the 11-token prompt BENCH.md's figures use
from generate import CHROMIUM_ARGS  # noqa: E402
from serve import Server  # noqa: E402

# The shape tools/bench.py --synthetic gpt2-117m runs, in WebGPT's names: both sides run the same one.
SHAPE = {"n_embd": SYNTHETIC["gpt2-117m"]["n_embd"], "n_head": SYNTHETIC["gpt2-117m"]["n_head"],
         "n_layer": SYNTHETIC["gpt2-117m"]["n_layer"], "n_ctx": SYNTHETIC["gpt2-117m"]["n_positions"],
         "vocab_size": SYNTHETIC["gpt2-117m"]["vocab_size"]}
SCRIPTS = ("tokenizer.js", "instructions.js", "model.js", "globals.js")  # WebGPT index.html's order, less visuals
FOLDER = "random-117m"

# WebGPT's GPT.run(ids) builds and submits the whole forward pass and reads back the last row's logits.
PAGE = """<!doctype html><meta charset="utf-8"><title>WebGPT peer</title>
%s
<script>
window.peer = async (folder, promptIds, tokens) => {
  const gpt = new GPT(folder, 'char');
  const adapter = await navigator.gpu.requestAdapter();
  gpt.device = await adapter.requestDevice();  // as WebGPT's initialize() asks: the default limits
  initializeOperations(gpt.device);
  const t0 = performance.now();
  [gpt.model, gpt.params] = await gpt.loadModel(folder);
  const loadMs = performance.now() - t0;
  gpt.initialized = true;
  const ids = promptIds.slice();
  const ms = [];
  for (let i = 0; i < tokens; i++) {
    const start = performance.now();
    const logits = await gpt.run(ids);
    ms.push(performance.now() - start);
    let best = 0;
    for (let j = 1; j < gpt.params.vocab_size; j++) if (logits[j] > logits[best]) best = j;
    ids.push(best);
  }
  return { load_ms: loadMs, ms, ids };
};
</script>"""


ADAPTER_JS = """async () => { const a = await navigator.gpu.requestAdapter();
  return a.info ? [a.info.vendor, a.info.architecture, a.info.device].filter(Boolean).join(' / ') : ''; }"""


def write_random_model(folder: Path, seed: int = 0) -> None:
    """GPT-2 117M's tensors as WebGPT's converter writes them (HF names + `_gpt.bin`, f32 LE)."""
    import numpy as np  # noqa: PLC0415 - a tools/ dependency, as in the tests

    rng = np.random.default_rng(seed)
    c, n = SHAPE["n_embd"], SHAPE["n_layer"]
    shapes = {"transformer.wte.weight": (SHAPE["vocab_size"], c), "transformer.wpe.weight": (SHAPE["n_ctx"], c),
              "transformer.ln_f.weight": (c,), "transformer.ln_f.bias": (c,)}
    for i in range(n):
        p = f"transformer.h.{i}."
        shapes.update({p + "ln_1.weight": (c,), p + "ln_1.bias": (c,), p + "ln_2.weight": (c,), p + "ln_2.bias": (c,),
                       p + "attn.c_attn.weight": (c, 3 * c), p + "attn.c_attn.bias": (3 * c,),
                       p + "attn.c_proj.weight": (c, c), p + "attn.c_proj.bias": (c,),
                       p + "mlp.c_fc.weight": (c, 4 * c), p + "mlp.c_fc.bias": (4 * c,),
                       p + "mlp.c_proj.weight": (4 * c, c), p + "mlp.c_proj.bias": (c,)})
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in shapes.items():
        values = np.ones(shape, "<f4") if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else \
            (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype("<f4")
        (folder / f"{name}_gpt.bin").write_bytes(values.tobytes())
    (folder / "params_gpt.json").write_text(json.dumps(SHAPE), encoding="utf-8")


def run_webgpt(webgpt: Path, browser_path: str, tokens: int, work: Path) -> dict:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    site = work / "site"
    site.mkdir(exist_ok=True)
    for name in SCRIPTS:
        shutil.copy2(webgpt / name, site / name)
    tags = "\n".join(f'<script src="{name}"></script>' for name in SCRIPTS)
    (site / "index.html").write_text(PAGE % tags, encoding="utf-8")
    write_random_model(site / "weights" / FOLDER)
    server = Server(site).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(0)
                page.goto(server.url)
                adapter = page.evaluate(ADAPTER_JS)
                out = page.evaluate("([f, p, n]) => window.peer(f, p, n)", [FOLDER, PROMPT_IDS, tokens])
            finally:
                browser.close()
    finally:
        server.stop()
    out["adapter"] = adapter
    return out


def run_ours(browser_path: str, contexts: list[int], steps: int) -> dict:
    cmd = [sys.executable, str(ROOT / "tools" / "bench.py"), "--runtime", "browser", "--browser", browser_path,
           "--no-bench-md", "--no-kernel-times", "--synthetic", "gpt2-117m:f32",
           "--prompts", str(len(PROMPT_IDS)), "--contexts", ",".join(map(str, contexts)), "--steps", str(steps)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    s = sorted(values)
    return (s[len(s) // 2] + s[(len(s) - 1) // 2]) / 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webgpt", type=Path, required=True, help="a checkout of 0hq/WebGPT")
    parser.add_argument("--tokens", type=int, default=20, help="tokens WebGPT generates after the prompt")
    parser.add_argument("--steps", type=int, default=10, help="decode steps PyWebGPT times per context")
    parser.add_argument("--browser", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    missing = [n for n in SCRIPTS if not (args.webgpt / n).is_file()]
    if missing:
        parser.error(f"--webgpt {args.webgpt}: not a WebGPT checkout (missing {', '.join(missing)})")
    with tempfile.TemporaryDirectory(prefix="webgpt-peer-") as tmp:
        t0 = time.time()
        peer = run_webgpt(args.webgpt, args.browser, args.tokens, Path(tmp))
    first, last = len(PROMPT_IDS), len(PROMPT_IDS) + args.tokens - 1
    ours = run_ours(args.browser, [first, last], args.steps)
    # WebGPT's first token includes its pipelines' compilation; its own generate() skips 3 warm-up runs too.
    webgpt_ms = median(peer["ms"][3:] if len(peer["ms"]) > 4 else peer["ms"])
    ours_chained = {k: v["ms_median"] for k, v in ours.get("decode_chained", {}).items()}
    ours_one = {k: v["ms_median"] for k, v in ours["decode"].items()}
    ours_ms = median(list(ours_chained.values()) or list(ours_one.values()))
    print(json.dumps({
        "adapter": peer["adapter"], "contexts": [first, last],
        "webgpt": {"ms_per_token": [round(x, 1) for x in peer["ms"]], "median_ms_after_3": round(webgpt_ms, 1),
                   "load_ms": round(peer["load_ms"]), "seconds": round(time.time() - t0)},
        "pywebgpt": {"decode_one_step_ms": ours_one, "decode_chained_ms": ours_chained,
                     "read_roofline_gbs": (ours.get("roofline") or {}).get("read_gbs"), "commit": ours.get("commit")},
        "speedup": round(webgpt_ms / ours_ms, 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
