"""Measure how busy the page's main thread is while a model loads and generates: its long tasks
and how fast key presses in the prompt box show up.

    python tools/longtasks.py [--engine worker|page] [--tokens 200] [--prompt-tokens 1000] [--keys 2000]

Runs headless Chromium with WebGPU on SwiftShader (as the tests do) against the site served from
this checkout, with the engine in its worker (the page's default, and this tool's) or on the page's
main thread (`--engine page`: `?engine=main`), and prints one JSON object. The phases:
  boot           navigation until `pywebgpt.ready`
  load_bundled   the page's automatic load of the bundled model
  load           pywebgpt.load() of a random GPT-2 with a 1,280-token context (tools/make_model.py),
                 while keys are typed into the prompt box
  prefill        the page's Generate button on a 1,000-token prompt, 1 new token
  generate       the Generate button, N new tokens, while keys are typed into the prompt box
each with the main thread's long tasks as the page sees them (PerformanceObserver 'longtask',
buffered: `count`, `max_ms`, `total_ms`, wall-clock) and, from a Chrome trace of the same run, the
main-thread tasks over 50 ms of the thread's own CPU time (`cpu_count`, `cpu_max_ms`). The two
differ on a busy machine: a 3 ms task that other processes delay is a 300 ms long task to the
page, but 3 ms of CPU. `typing`, per phase with keys: a key press every 30 ms; per key, the time
from the key event (its timeStamp, taken when the browser received it) to the prompt box's input
event (`input_*_ms`) and to the next frame (`shown_*_ms`; frames also wait for the GPU process,
which SwiftShader's WebGPU work keeps busy), and the main-thread CPU time spent between the key
event and the input event (`max_main_cpu_ms`: what the key waited for on the page's own thread).
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
POLL_MS = 250       # the harness's own checks (Playwright polls on every frame by default: main-thread work)
# RunTask (wall and thread time) and console.timeStamp, as DevTools' performance panel records them
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline"]
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
    const input = performance.now();
    requestAnimationFrame(() => probe.keys.push({
      at: key.at, input_ms: input - key.at, shown_ms: performance.now() - key.at }));
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


def traced_tasks(trace: bytes) -> list:
    """The page's main-thread tasks from a Chrome trace: {start (page time, ms), ms (wall), cpu_ms}.
    The page's `console.timeStamp('pywebgpt-sync <performance.now()>')` names the thread and maps the
    trace's clock onto the page's."""
    data = json.loads(trace)
    events = data["traceEvents"] if isinstance(data, dict) else data
    sync = next(e for e in events if e.get("name") == "TimeStamp"
                and str(e.get("args", {}).get("data", {}).get("message", "")).startswith("pywebgpt-sync "))
    offset = sync["ts"] / 1000 - float(sync["args"]["data"]["message"].split()[1])
    return [{"start": e["ts"] / 1000 - offset, "ms": e["dur"] / 1000, "cpu_ms": e.get("tdur", e["dur"]) / 1000}
            for e in events if e.get("name") == "RunTask" and e.get("ph") == "X"
            and (e["pid"], e["tid"]) == (sync["pid"], sync["tid"])]


def cpu_summary(tasks: list, start: float, end: float) -> dict:
    """Main-thread tasks over LONG_TASK_MS of the thread's own CPU time: a task the thread ran for that
    long, not one stretched by other processes taking the CPU away (the wall-clock long tasks above)."""
    cpu = [t["cpu_ms"] for t in tasks if start <= t["start"] < end]
    return {"cpu_count": sum(1 for c in cpu if c > LONG_TASK_MS), "cpu_max_ms": round(max(cpu, default=0), 1)}


def cpu_between(tasks: list, start: float, end: float) -> float:
    """Main-thread CPU time spent between two moments (tasks cut at the edges pro rata)."""
    total = 0.0
    for t in tasks:
        overlap = min(end, t["start"] + t["ms"]) - max(start, t["start"])
        if overlap > 0 and t["ms"] > 0:
            total += t["cpu_ms"] * overlap / t["ms"]
    return total


def type_while(page, done_js: str, keys: int) -> int:
    """Press a key in the prompt box every KEY_GAP_MS while `done_js` is false; how many."""
    page.focus("#prompt")
    page.keyboard.press("End")
    typed = 0
    while typed < keys and not page.evaluate(done_js):
        page.keyboard.type("x")
        typed += 1
        page.wait_for_timeout(KEY_GAP_MS)
    return typed


def typing_summary(keys: list, tasks: list, start: float, end: float) -> dict:
    inside = [k for k in keys if start <= k["at"] < end]

    def pct(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else 0

    blocked = [cpu_between(tasks, k["at"], k["at"] + k["input_ms"]) for k in inside]
    return {"keys": len(inside),
            "input_p50_ms": pct([k["input_ms"] for k in inside], 0.5),
            "input_max_ms": pct([k["input_ms"] for k in inside], 1),
            "shown_p50_ms": pct([k["shown_ms"] for k in inside], 0.5),
            "shown_max_ms": pct([k["shown_ms"] for k in inside], 1),
            "max_main_cpu_ms": round(max(blocked, default=0), 1)}


def measure(page, site_url: str, model_url: str, prompt: str, tokens: int = 200, keys: int = 2000) -> dict:
    """Drive one fresh page through boot, loads, a prefill and a generation; the figures (module doc)."""
    browser = page.context.browser
    page.add_init_script(PROBE)
    page.goto(site_url)
    page.evaluate("() => window.pywebgpt.ready")
    marks = {"boot": (0.0, now(page))}
    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    page.evaluate("() => console.timeStamp('pywebgpt-sync ' + performance.now())")
    page.wait_for_function("() => document.body.dataset.model === 'loaded'", polling=POLL_MS)
    log("load_bundled", now(page))
    marks["load_bundled"] = (marks["boot"][1], now(page))
    t0 = now(page)
    page.evaluate("""(ref) => { window.__loaded = false;
      pywebgpt.load(ref, {cache: false}).finally(() => { window.__loaded = true; }); }""", model_url)
    typed = type_while(page, "() => window.__loaded", keys)
    page.wait_for_function("() => window.__loaded", polling=POLL_MS)
    landed = page.evaluate("() => document.querySelector('#prompt').value.split('x').length - 1")
    log("load", now(page))
    marks["load"] = (t0, now(page))
    for field, value in (("#greedy", None), ("#max-new-tokens", "1")):
        page.set_checked(field, True) if value is None else page.fill(field, value)
    page.fill("#prompt", prompt)
    runs = page.evaluate("() => Number(document.body.dataset.runs || 0)")
    t0 = now(page)
    page.click("#generate-button")
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=runs, polling=POLL_MS)
    log("prefill", now(page))
    marks["prefill"] = (t0, now(page))
    prefill_state = page.evaluate("() => document.body.dataset.gen")
    page.fill("#max-new-tokens", str(tokens))
    page.fill("#prompt", "ROMEO:")
    t0 = now(page)
    page.click("#generate-button")
    page.wait_for_function("() => document.querySelectorAll('#output-text .tok').length >= 3", polling=POLL_MS)
    page.fill("#prompt", "")
    typed += type_while(page, "() => document.body.dataset.gen !== 'running'", keys)
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n + 1", arg=runs, polling=POLL_MS)
    log("generate", now(page))
    marks["generate"] = (t0, now(page))
    probe = page.evaluate("""() => ({ ...window.__pywebgptProbe,
      state: document.body.dataset.gen, tokens: document.querySelectorAll('#output-text .tok').length,
      prompt: document.querySelector('#prompt').value })""")
    tasks = traced_tasks(browser.stop_tracing())
    out = {name: summary(probe["longtasks"], *span) for name, span in marks.items()}
    for name, span in marks.items():
        if name != "boot":
            out[name].update(cpu_summary(tasks, *span))
    out["prefill"]["state"] = prefill_state
    out["generate"].update(state=probe["state"], tokens=probe["tokens"])
    out["typing"] = {"typed": typed, "landed": landed + probe["prompt"].count("x"),
                     "load": typing_summary(probe["keys"], tasks, *marks["load"]),
                     "generate": typing_summary(probe["keys"], tasks, *marks["generate"])}
    out["after_boot_max_ms"] = max(out[p]["max_ms"] for p in ("load_bundled", "load", "prefill", "generate"))
    out["after_boot_cpu_max_ms"] = max(out[p]["cpu_max_ms"] for p in ("load_bundled", "load", "prefill", "generate"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["worker", "page"], default="worker",
                        help="where the engine runs: its own worker (the page's default) or the page's main thread "
                        "(?engine=main)")
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
            url = server.url + ("" if args.engine == "worker" else "?engine=main")
            out = measure(page, url, f"/models/{model_dir.name}/", prompt, args.tokens, args.keys)
            browser.close()
    finally:
        server.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
