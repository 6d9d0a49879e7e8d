"""Run the GPU self-test (app/selftest.py, the page's "Check this GPU") from the command line.

    python3 tools/selftest.py MODEL_DIR [--runtime browser|node] [--dtype F32] [--quantize q8_0|q4_0]
        [--json] [--browser PATH]

It serves the site with the folder mounted under /models/m/, loads the model in the chosen runtime
(headless Chromium, or Node + Dawn, which reaches a real GPU on a machine without a display) and
runs `pywebgpt.selfTest()` against the folder's golden.json (written by tools/golden.py). Prints
the verdict, max |delta logit| and whether the ids agree (with --json, the whole report as one JSON
object, plus the adapter). Exit status: 0 for pass, 1 for drift or fail, 2 when it could not run
(no golden record counts as could-not-run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from generate import CliError, model_folder, run_node, site_page  # noqa: E402
from serve import Server  # noqa: E402
from vendor import vendor  # noqa: E402

# The self-test through the runner's Python hook (app/web_api.py `_py`): the same code path as
# pywebgpt.selfTest(), whose JSON comes back as the hook's value.
SELF_TEST_PY = "import json\nfrom pywebgpt import selftest\njson.loads(await selftest.js_self_test('{}'))"
SUMMARY_KEYS = ("verdict", "max_abs_delta", "ids_agree", "tolerance", "basis", "message", "reload")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model folder holding golden.json")
    p.add_argument("--runtime", choices=("browser", "node"), default="browser")
    p.add_argument("--dtype", choices=("F32",), help="widen float weights to f32 on the GPU")
    p.add_argument("--quantize", choices=("q8_0", "q4_0"), help="quantize on load (Llama family)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--browser", default="/usr/bin/chromium", help="Chromium executable (browser runtime)")
    return p.parse_args(argv)


def load_options(args) -> dict:
    opts = {}
    if args.dtype:
        opts["dtype"] = args.dtype
    if args.quantize:
        opts["quantize"] = args.quantize
    return opts


def run_browser(args, server: Server) -> dict:
    with site_page(args, server) as (page, info):
        model = page.evaluate("([ref, o]) => window.pywebgpt.load(ref, o)", ["./models/m/", load_options(args)])
        report = page.evaluate("() => window.pywebgpt.selfTest()")
    return {"info": info, "model": model, "report": report}


def run(args) -> dict:
    folder = model_folder(args.model)
    if folder.is_file() or not (folder / "golden.json").is_file():
        raise CliError(f"{args.model}: no golden.json in that folder (write one with tools/golden.py)")
    if args.runtime == "browser":
        vendor()
    server = Server(ROOT, mounts={"/models/m/": folder}).start()
    try:
        if args.runtime == "browser":
            return run_browser(args, server)
        # the runner generates once before the hook runs: one token of a prompt every vocabulary has
        out = run_node(argparse.Namespace(repeat=1), server, "models/m/", "\n", {"max_new_tokens": 1},
                       extra={"python": SELF_TEST_PY, "load_options": load_options(args)})
        report = out["python"]
        if isinstance(report, dict) and "error" in report:
            raise CliError(report["error"].get("message", str(report["error"])))
        return {"info": out["info"], "model": out["model"], "report": report}
    finally:
        server.stop()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        out = run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = out["report"]
    summary = {key: report.get(key) for key in SUMMARY_KEYS if key in report}
    summary.update({"model": args.model, "runtime": args.runtime, "load_options": load_options(args),
                    "weight_formats": out["model"].get("weight_formats"), "adapter": out["info"].get("adapter")})
    if args.json:
        print(json.dumps({**summary, "report": report}))
    else:
        print(json.dumps(summary, indent=1))
    verdict = report.get("verdict")
    return 0 if verdict == "pass" else 1 if verdict in ("drift", "fail") else 2


if __name__ == "__main__":
    sys.exit(main())
