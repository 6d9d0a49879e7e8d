"""The GPU self-test (app/selftest.py, pywebgpt.selfTest(), the page's "Check this GPU" button) and
the golden records it reads (tools/golden.py).

CPython: the bundled model's golden.json is what the reference computes from its weights, and the
verdict logic (tolerances by weight format, near ties, drift, fail, records of other weights).
Browser (one page, on SwiftShader): the bundled model passes; a copy whose record was altered fails
with the numbers; a model without a record and no model at all say so; a record judged against
rounded weights drifts and offers wider weights; the button shows the verdict as text only."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import golden  # tools/ is on sys.path (conftest)
from app import selftest
from conftest import ROOT, new_guarded_page, run_page_py, wait_ready
from serve import Server

BUNDLED = ROOT / "weights" / "shakespeare-char"
RECORD = json.loads((BUNDLED / "golden.json").read_text(encoding="utf-8"))
PAYLOAD = '<img src=x onerror="window.__xss=1">'
SHOTS = ROOT / "tests" / "screenshots"


# ------------------------------------------------------------------------------------ CPython


def test_bundled_record_is_what_the_reference_computes_from_the_shipped_weights():
    """golden.json was made by transformers from these exact weights (size and sha256), and the
    repository's numpy model computes the same ids and logits within float32 noise today."""
    assert RECORD["format"] == selftest.FORMAT and RECORD["reference"]["name"] == "transformers"
    assert RECORD["reference"]["compute"] == "float32"
    facts = golden.weights_facts(BUNDLED)
    assert {k: RECORD["model"][k] for k in facts} == facts
    assert RECORD["model"]["weights_dtype"] == "F16" and len(RECORD["cases"]) >= 3
    prompts = [c["prompt"] for c in RECORD["cases"]]
    again = golden.make_record(BUNDLED, prompts, RECORD["max_new_tokens"], RECORD["steps"], "numpy")
    assert [c["prompt_ids"] for c in again["cases"]] == [c["prompt_ids"] for c in RECORD["cases"]]
    diff = golden.compare_records(RECORD, again)
    assert diff["ids_equal"] and diff["max_abs_logit_diff"] < 1e-4, diff
    for case in RECORD["cases"]:
        assert len(case["tokens"]) == len(case["margins"]) == RECORD["max_new_tokens"]
        assert [t["step"] for t in case["top"]] == RECORD["steps"] and all(len(t["ids"]) == 5 for t in case["top"])
        assert all(t["ids"][0] == case["tokens"][t["step"]] for t in case["top"]), "greedy takes the top logit"


def test_golden_tool_refuses_what_it_cannot_record(tmp_path):
    assert golden.main([str(tmp_path)]) == 2
    assert golden.main([str(BUNDLED), "--prompt", "ROMEO:", "--steps", "99", "--out", str(tmp_path / "g.json")]) == 2
    assert golden.default_steps(16) == [0, 1, 2, 4, 8, 15] and golden.default_steps(1) == [0]


def observed_from(record, delta=0.0, tokens=None):
    """What a GPU computing the record exactly (plus `delta` on every logit) would report."""
    out = []
    for i, case in enumerate(record["cases"]):
        logits = {}
        for top in case["top"]:
            row = [0.0] * 65
            for token, value in zip(top["ids"], top["logits"]):
                row[token] = value + delta
            logits[top["step"]] = row
        out.append({"tokens": list(tokens[i] if tokens and i in tokens else case["tokens"]), "logits": logits})
    return out


def test_verdicts_follow_the_tolerance_of_the_weights_format():
    exact = selftest.evaluate(RECORD, observed_from(RECORD), "F32")
    assert exact["verdict"] == "pass" and exact["max_abs_delta"] == 0 and exact["ids_agree"]
    assert exact["logits_compared"] == sum(len(c["top"]) * 5 for c in RECORD["cases"])
    atol, rtol = selftest.TOLERANCES["F32"]
    assert selftest.evaluate(RECORD, observed_from(RECORD, atol / 2), "F32")["verdict"] == "pass"
    drift = selftest.evaluate(RECORD, observed_from(RECORD, 5 * atol + 0.002), "F32")
    assert drift["verdict"] == "drift" and drift["ids_agree"] and 1 < drift["max_tolerance_ratio"] <= 10
    assert selftest.evaluate(RECORD, observed_from(RECORD, 0.5), "F32")["verdict"] == "fail"
    # the same 0.05 is a pass for F16 weights rounded further than the record's
    assert selftest.evaluate(RECORD, observed_from(RECORD, 0.05), "BF16")["verdict"] == "pass"
    assert selftest.evaluate(RECORD, observed_from(RECORD, float("nan")), "F32")["verdict"] == "fail"


def test_a_different_token_fails_unless_the_reference_had_a_near_tie():
    case = RECORD["cases"][0]
    step = min(range(len(case["margins"])), key=lambda s: case["margins"][s])  # the closest call
    far = max(range(len(case["margins"])), key=lambda s: case["margins"][s])
    for at, want in ((far, "fail"), (step, "drift" if case["margins"][step] <= 2 * 10 * 0.0025 else "fail")):
        tokens = list(case["tokens"])
        tokens[at] = (tokens[at] + 1) % 65
        out = selftest.evaluate(RECORD, observed_from(RECORD, tokens={0: tokens}), "F32")
        assert out["verdict"] == want and not out["ids_agree"], (at, out["first_mismatch"])
        assert out["first_mismatch"]["step"] == at and out["first_mismatch"]["case"] == 0
    short = selftest.evaluate(RECORD, observed_from(RECORD, tokens={1: RECORD["cases"][1]["tokens"][:3]}), "F32")
    assert short["verdict"] == "fail" and short["first_mismatch"] == {
        "case": 1, "step": 3, "expected": RECORD["cases"][1]["tokens"][3], "got": None,
        "margin": RECORD["cases"][1]["margins"][3], "near_tie": False}


@pytest.mark.parametrize("record_dtype, formats, basis", [
    ("F16", ["F16"], "F32"), ("F32", ["F32"], "F32"), ("BF16", ["BF16"], "F32"), ("F16", ["F32"], "F32"),
    ("F32", ["F16"], "F16"), ("F32", ["BF16"], "BF16"), ("F16", ["F16", "Q8_0"], "Q8_0"),
    ("BF16", ["Q4_0", "Q8_0"], "Q4_0"), ("F16", ["Q3_K"], "Q4_0"), ("F32", ["Q4_K", "Q6_K"], "Q4_K"),
    ("F32", ["Q5_0", "Q8_0"], "Q5_0"), ("F32", ["Q5_K", "Q6_K"], "Q5_K"),
])
def test_tolerance_basis(record_dtype, formats, basis):
    assert selftest.tolerance_basis(record_dtype, formats) == basis


def test_every_weight_format_has_a_precision_rank_and_a_tolerance():
    """A format the GPU can hold (app/weights.py WEIGHT_FORMATS) is never judged by the unknown-format
    fallback: it has its place in PRECISION_ORDER and its TOLERANCES row."""
    from app.weights import WEIGHT_FORMATS

    assert set(WEIGHT_FORMATS) == set(selftest.PRECISION_ORDER) == set(selftest.TOLERANCES)


def test_records_of_other_weights_or_shapes_are_refused():
    info = {"family": "gpt2", "vocab_size": 65, "n_layer": 6, "n_head": 6, "n_embd": 384,
            "file_bytes": RECORD["model"]["file_bytes"]}
    assert selftest.record_problems(RECORD, info, 256) == []
    assert selftest.record_problems({"format": "x"}, info, 256)[0].startswith("it is not a golden record")
    other = dict(info, file_bytes=123, n_layer=12)
    problems = selftest.record_problems(RECORD, other, 256)
    assert any("n_layer is 6" in p for p in problems) and any("123" in p for p in problems)
    assert any("needs" in p and "holds 8" in p for p in selftest.record_problems(RECORD, info, 8))
    broken = copy.deepcopy(RECORD)
    broken["cases"][0]["tokens"][0] = 65
    assert any("outside the vocabulary" in p for p in selftest.record_problems(broken, info, 256))


def test_reload_advice_names_a_load_option_for_rounded_weights():
    assert selftest.reload_advice("F32", "fail", ["F16"], {}) is None
    assert selftest.reload_advice("F16", "pass", ["F16"], {}) is None
    advice = selftest.reload_advice("F16", "drift", ["F16"], {})
    assert advice["options"] == {"dtype": "F32"} and advice["supported"] is True
    assert selftest.reload_advice("BF16", "fail", ["BF16"], {})["how"].endswith("{dtype: 'F32'})")
    quantized = selftest.reload_advice("Q8_0", "drift", ["Q8_0"], {"quantize": "q8_0"})
    assert quantized["options"] == {"quantize": None} and quantized["supported"]


def test_record_url_sits_beside_the_model():
    assert selftest.record_url("http://h/weights/m/") == "http://h/weights/m/golden.json"
    assert selftest.record_url("https://h/x/model.Q8_0.gguf") == "https://h/x/golden.json"
    assert selftest.record_url("picked folder m/") is None


@pytest.mark.slow
def test_cli_runs_the_self_test_in_node_and_refuses_a_folder_without_a_record(tmp_path):
    """tools/selftest.py drives pywebgpt.selfTest() in the Node runner (the H200's path): the bundled
    model passes with the numbers; a folder without golden.json is refused before anything runs."""
    tool = [sys.executable, str(ROOT / "tools" / "selftest.py")]
    out = subprocess.run([*tool, str(BUNDLED), "--runtime", "node", "--json"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"] == "pass" and report["ids_agree"] is True, report
    assert 0 <= report["max_abs_delta"] <= report["tolerance"]["atol"], report
    assert report["runtime"] == "node" and report["weight_formats"] == ["F16"] and report["adapter"]

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((BUNDLED / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    out = subprocess.run([*tool, str(bare), "--runtime", "node"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no golden.json" in out.stderr, out


# ------------------------------------------------------------------------------------ browser


def altered_record() -> dict:
    """The bundled record with case 1's fourth token changed, one logit off by 0.5 and a reference
    name that is HTML."""
    record = copy.deepcopy(RECORD)
    case = record["cases"][0]
    case["tokens"][3] = (case["tokens"][3] + 1) % 65
    case["top"][0]["logits"][0] += 0.5
    record["reference"]["name"] = PAYLOAD
    return record


def model_copy(dst: Path, record: dict | None) -> Path:
    dst.mkdir(parents=True)
    for name in ("config.json", "char_vocab.json"):
        shutil.copy2(BUNDLED / name, dst / name)
    try:
        (dst / "model.safetensors").symlink_to(BUNDLED / "model.safetensors")
    except OSError:
        shutil.copy2(BUNDLED / "model.safetensors", dst / "model.safetensors")
    if record is not None:
        (dst / "golden.json").write_text(json.dumps(record), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    models = tmp_path_factory.mktemp("selftest-models")
    model_copy(models / "altered", altered_record())
    model_copy(models / "norecord", None)
    server = Server(ROOT, mounts={"/models/": models}).start()
    context = browser.new_context()
    page, guard = new_guarded_page(context)
    guard.allow(r"Failed to load resource: the server responded with a status of 404")  # optional files
    page.goto(server.url)
    wait_ready(page)
    page.wait_for_selector("body[data-model='loaded']", state="attached")
    yield page
    problems = guard.unexpected()
    context.close()
    server.stop()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


def self_test(page, opts=None) -> dict:
    return page.evaluate("""async (opts) => {
      try { return await pywebgpt.selfTest(opts || {}); }
      catch (e) { return {error: {name: e.name, code: e.code, message: e.message}}; }
    }""", opts)


def load(page, ref: str) -> dict:
    return page.evaluate("(ref) => pywebgpt.load(ref)", ref)


def click_check(page) -> dict:
    before = int(page.evaluate("() => Number(document.body.dataset.selftests || 0)"))
    page.click("#selftest-button")
    page.wait_for_function("(n) => Number(document.body.dataset.selftests || 0) > n", arg=before)
    return page.evaluate("""() => {
      const box = document.querySelector('#selftest-result');
      return {verdict: box.dataset.verdict, delta: box.dataset.maxAbsDelta, idsAgree: box.dataset.idsAgree,
              lines: Array.from(box.querySelectorAll('p'), (p) => p.textContent), hidden: box.hidden,
              elements: box.querySelectorAll('*:not(p)').length};
    }""")


@pytest.mark.browser
def test_bundled_model_passes_on_this_gpu(page):
    out = self_test(page)
    print(f"bundled model on SwiftShader: {out['verdict']}, max |dlogit| {out['max_abs_delta']:.3g} over "
          f"{out['logits_compared']} logits, {out['seconds']:.1f} s")
    assert out["verdict"] == "pass", out["message"]
    assert out["ids_agree"] and out["first_mismatch"] is None and out["max_abs_delta"] < 1e-4
    assert out["tolerance"]["basis"] == "F32" and out["dtype"] == "F16" and out["reload"] is None
    assert out["logits_compared"] == sum(len(c["top"]) * 5 for c in RECORD["cases"])
    assert out["record_url"].endswith("/weights/shakespeare-char/golden.json")
    assert [c["tokens"] for c in out["cases"]] == [c["tokens"] for c in RECORD["cases"]]
    assert out["message"].startswith("Pass: this GPU computes what transformers")


@pytest.mark.browser
def test_an_altered_record_fails_with_the_numbers_and_the_button_shows_them_as_text(page):
    info = load(page, "models/altered/")
    assert info["source"].endswith("/models/altered/")
    shown = click_check(page)
    assert shown["verdict"] == "fail" and shown["idsAgree"] == "false" and not shown["hidden"], shown
    assert shown["elements"] == 0 and page.evaluate("() => window.__xss") is None, "record text is never markup"
    assert shown["lines"][0].startswith(f"Fail: this GPU does not compute what {PAYLOAD} computes"), shown["lines"]
    assert any(line.startswith("Largest logit difference") for line in shown["lines"]), shown["lines"]
    assert any("prompt 1, step 4" in line for line in shown["lines"]), shown["lines"]
    out = run_page_py(page, "from pywebgpt import ui\nui.APP.selftest_out")
    assert float(shown["delta"]) == out["max_abs_delta"] >= 0.5 - 1e-4
    mismatch = out["first_mismatch"]
    assert (mismatch["case"], mismatch["step"], mismatch["near_tie"]) == (0, 3, False), mismatch
    assert mismatch["got"] == RECORD["cases"][0]["tokens"][3] and mismatch["expected"] != mismatch["got"]
    assert out["cases"][0]["max_abs_delta"] >= 0.5 - 1e-4
    assert all(c["ids_agree"] and c["max_abs_delta"] < 1e-4 for c in out["cases"][1:]), "the other cases are exact"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#model-details").screenshot(path=str(SHOTS / "selftest-fail.png"))


@pytest.mark.browser
def test_a_model_without_a_record_and_no_model_say_so(page):
    load(page, "models/norecord/")
    out = self_test(page)
    assert out["verdict"] == "no golden record" and "golden.json" in out["reason"], out
    shown = click_check(page)
    assert shown["verdict"] == "no golden record" and shown["lines"][0].startswith("No golden record for this model")
    page.evaluate("() => pywebgpt.unload()")
    out = self_test(page)
    assert out["error"]["code"] == "no_model" and out["error"]["name"] == "NoModelError", out
    page.wait_for_function("() => document.querySelector('#selftest-button').disabled")


@pytest.mark.browser
def test_rounded_weights_drift_and_the_result_offers_wider_ones(page):
    """A record said to come from float32 weights, judged against the F16 weights on the GPU: F16's
    looser tolerance applies, logits 0.06 off are a drift, and the result says how to load F32."""
    load(page, "weights/shakespeare-char/")
    record = copy.deepcopy(RECORD)
    record["model"]["weights_dtype"] = "F32"
    record["cases"] = record["cases"][:1]
    for top in record["cases"][0]["top"]:
        top["logits"] = [v + 0.06 for v in top["logits"]]
    out = self_test(page, {"record": record})
    assert out["verdict"] == "drift" and out["ids_agree"] and out["tolerance"]["basis"] == "F16", out["message"]
    assert 0.059 < out["max_abs_delta"] < 0.061
    assert out["reload"]["options"] == {"dtype": "F32"} and "float32" in out["reload"]["how"]
    assert out["reload"]["supported"] is True
    assert "To check with wider weights" in out["message"]
    wide = page.evaluate("(opts) => pywebgpt.load('weights/shakespeare-char/', {cache: false, ...opts})",
                         out["reload"]["options"])  # the advice's options load as they say
    assert wide["dtype"] == "F32" and any("widened to F32" in n for n in wide["notices"]), wide
    assert self_test(page)["verdict"] == "pass"
    load(page, "weights/shakespeare-char/")
