"""Measure how busy the page's main thread is while a model loads and generates: its long tasks
(PerformanceObserver 'longtask', buffered) and how fast key presses in the prompt box show up.

    python tools/longtasks.py [--tokens 200] [--prompt-tokens 1000] [--keys 2000]

Runs headless Chromium with WebGPU on SwiftShader (as the tests do) against the site served from
this checkout, and prints one JSON object. The phases, each as {ms, count, max_ms, total_ms} of the
main thread's long tasks (> 50 ms) that started in it:
  boot           navigation until `pywebgpt.ready`
  load_bundled   the page's automatic load of the bundled model
  load           pywebgpt.load() of a random GPT-2 with a 1,280-token context (tools/make_model.py)
  prefill        the page's Generate button on a ~1,000-token prompt, 1 new token
  generate       the Generate button, N new tokens, while keys are typed into the prompt box
and `typing`: a key press every 30 ms for as long as the generation runs; per key press, the time
from the key event (its timeStamp, taken when the browser received it) to the frame after the
prompt box's value changed (`max_ms`, `p50_ms`), and whether every key landed while it ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

LONG_TASK_MS = 50  # the Long Tasks API's own threshold
KEY_GAP_MS = 30     # between key presses: typing goes on for the whole generation
SHAPE = {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 128, "n_positions": 1280, "vocab_size": 50257,
         "tokenizer": "gpt2", "seed": 0}
SHAKESPEARE = ROOT / "tests" / "data" / "tinyshakespeare.txt"

# Installed before any page script: long tasks from the very start (buffered), and per key press
# in #prompt the delay from the key event to the first frame after the input event.
PROBE = """
(() => {
  const probe = { longtasks: [], keys: [] };
  window.__pywebgptProbe = probe;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.longtasks.push({ start: e.startTime, ms: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  let pressed = null;
  document.addEventListener('keydown', (e) => {
    if (e.target && e.target.id === 'prompt') pressed = { at: e.timeStamp, handled: performance.now() };
  }, true);
  document.addEventListener('input', (e) => {
    if (!e.target || e.target.id !== 'prompt' || !pressed) return;
    const key = pressed;
    pressed = null;
    const generating = document.body.dataset.gen === 'running';
    requestAnimationFrame(() => probe.keys.push({
      delay_ms: key.handled - key.at, shown_ms: performance.now() - key.at, generating,
      value_length: e.target.value.length }));
  }, true);
})();
"""


def make_test_model(root: Path) -> Path:
    from make_model import cached_model  # noqa: PLC0415 - torch is imported only when a model is made

    return cached_model(root, **SHAPE)


def prompt_of_tokens(model_dir: Path, n: int) -> str:
    """Shakespeare text that the model's GPT-2 tokenizer (vocab.json + merges.txt) turns into n tokens."""
    from tokenizers import ByteLevelBPETokenizer  # noqa: PLC0415

    tok = ByteLevelBPETokenizer(str(model_dir / "vocab.json"), str(model_dir / "merges.txt"))
    ids = tok.encode(SHAKESPEARE.read_text(encoding="utf-8")[:n * 8]).ids[:n]
    return tok.decode(ids)


def summary(tasks: list, start: float, end: float) -> dict:
    inside = [t["ms"] for t in tasks if start <= t["start"] < end]
    return {"ms": round(end - start, 1), "count": len(inside), "max_ms": round(max(inside, default=0), 1),
            "total_ms": round(sum(inside), 1)}


def now(page) -> float:
    return page.evaluate("() => performance.now()")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def measure(page, site_url: str, model_url: str, prompt: str, tokens: int = 200, keys: int = 2000) -> dict:
    """Drive one fresh page through boot, loads, a prefill and a generation; the figures (module doc)."""
    page.add_init_script(PROBE)
    page.goto(site_url)
    page.evaluate("() => window.pywebgpt.ready")
    marks = {"boot": (0.0, now(page))}
    page.wait_for_selector("body[data-model='loaded']", state="attached")
    log("load_bundled", now(page))
    marks["load_bundled"] = (marks["boot"][1], now(page))
    t0 = now(page)
    page.evaluate("(ref) => pywebgpt.load(ref, {cache: false})", model_url)
    log("load", now(page))
    marks["load"] = (t0, now(page))
    for field, value in (("#greedy", None), ("#max-new-tokens", "1")):
        page.set_checked(field, True) if value is None else page.fill(field, value)
    page.fill("#prompt", prompt)
    runs = page.evaluate("() => Number(document.body.dataset.runs || 0)")
    t0 = now(page)
    page.click("#generate-button")
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=runs)
    log("prefill", now(page))
    marks["prefill"] = (t0, now(page))
    prefill_state = page.evaluate("() => document.body.dataset.gen")
    page.fill("#max-new-tokens", str(tokens))
    page.fill("#prompt", "ROMEO:")
    t0 = now(page)
    page.click("#generate-button")
    page.wait_for_function("() => document.querySelectorAll('#output-text .tok').length >= 3")
    page.focus("#prompt")
    page.keyboard.press("End")
    typed = 0
    while typed < keys and page.evaluate("() => document.body.dataset.gen === 'running'"):
        page.keyboard.type("x")
        typed += 1
        page.wait_for_timeout(KEY_GAP_MS)
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n + 1", arg=runs)
    log("generate", now(page))
    marks["generate"] = (t0, now(page))
    probe = page.evaluate("""() => ({ ...window.__pywebgptProbe,
      state: document.body.dataset.gen, tokens: document.querySelectorAll('#output-text .tok').length,
      prompt: document.querySelector('#prompt').value })""")
    out = {name: summary(probe["longtasks"], *span) for name, span in marks.items()}
    out["prefill"]["state"] = prefill_state
    out["generate"].update(state=probe["state"], tokens=probe["tokens"])
    shown = sorted(k["shown_ms"] for k in probe["keys"])
    out["typing"] = {"keys": len(shown), "typed": probe["prompt"].count("x"),
                     "all_during_generation": all(k["generating"] for k in probe["keys"]),
                     "max_ms": round(max(shown, default=0), 1),
                     "p50_ms": round(shown[len(shown) // 2], 1) if shown else 0,
                     "max_delay_ms": round(max((k["delay_ms"] for k in probe["keys"]), default=0), 1)}
    out["after_boot_max_ms"] = max(out[p]["max_ms"] for p in ("load_bundled", "load", "prefill", "generate"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200, help="new tokens in the generation phase")
    parser.add_argument("--prompt-tokens", type=int, default=1000, help="prompt length of the prefill phase")
    parser.add_argument("--keys", type=int, default=2000, help="at most this many key presses, typed while the "
                        "generation runs")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    from serve import Server  # noqa: PLC0415
    from vendor import vendor  # noqa: PLC0415

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import CHROMIUM_ARGS  # noqa: PLC0415 - the tests' own browser flags

    vendor()
    models = Path(tempfile.gettempdir()) / "pywebgpt-longtasks"
    model_dir = make_test_model(models)
    prompt = prompt_of_tokens(model_dir, args.prompt_tokens)
    server = Server(ROOT, mounts={"/models/": models}).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            page.set_default_timeout(300_000)
            out = measure(page, server.url, f"/models/{model_dir.name}/", prompt, args.tokens, args.keys)
            browser.close()
    finally:
        server.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
