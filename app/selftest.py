"""The GPU self-test: does this GPU compute what a trusted CPython reference computes for this model?

    out = await self_test(model)                     # the Python API (a pywebgpt Model)
    out = await pywebgpt.selfTest()                  # the JS API: the page's current model

A model folder may hold a golden record, `golden.json` (written by tools/golden.py): a few prompts'
token ids, the reference's greedy continuation (transformers in float32, or tools/reference.py's
numpy model where transformers cannot load the family) and the five likeliest logits at several
steps. The self-test runs the same prompts greedily on the GPU (`generate(prompt_ids=...,
temperature=0, return_logits=True)`) and compares:

  - the ids: the greedy tokens must be the reference's. A difference at a step where the
    reference's two best logits lie within the drift bound of each other is a near tie (another
    GPU may order them either way), not an error;
  - the logits of the recorded top-5 ids at the recorded steps, always given the reference's
    prefix: after a difference in the ids, those steps are run again from the reference's tokens.

|gpu - reference| must stay within atol + rtol * |reference| (TOLERANCES). The tolerance follows
what the GPU holds: the same weights as the record was made from (F16 weights widened exactly, as
the record's float32 reference did) leave only float32 arithmetic in another order, so the tight
F32 row applies; weights rounded further than the record's (an F32 record run from F16, BF16 or
quantized weights) get that format's looser row. Verdicts: 'pass' (ids agree, every logit within
tolerance), 'drift' (within DRIFT_FACTOR times the tolerance, ids agree up to near ties: usable,
but not what the reference computes), 'fail' (anything worse), and 'no golden record' (the folder
has none, or it describes other weights). A 'drift' or 'fail' of rounded weights says how to load
the model with wider ones (`reload`).

Standard library only at import time (CPython tests import it); the browser parts import lazily.
"""

from __future__ import annotations

import json
import math
import time

from .errors import GenerationBusy, PyWebGPTError, error_dict

FORMAT = "pywebgpt-golden/1"
RECORD_NAME = "golden.json"
NO_RECORD = "no golden record"
VERDICTS = ("pass", "drift", "fail", NO_RECORD)
# Coarser to the right: the basis of a model whose matrices mix formats is its coarsest one.
PRECISION_ORDER = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0")
# (atol, rtol) per logit. F32: float32 sums in another order, ~1e-5 relative on logits of a few
# tens; F16 rounds each weight to 11 bits, BF16 to 8, and a Q8_0 / Q6_K / Q5_K / Q4 block to 8 / 6 / 5 / 4
# bits.
TOLERANCES = {
    "F32": (1e-3, 1e-4),
    "F16": (2e-2, 2e-3),
    "BF16": (1.5e-1, 1e-2),
    "Q8_0": (3e-1, 2e-2),
    "Q6_K": (5e-1, 3e-2),
    "Q5_K": (7e-1, 4e-2),
    "Q5_1": (7e-1, 4e-2),
    "Q5_0": (7e-1, 4e-2),
    "Q4_K": (1.0, 5e-2),
    "Q4_1": (1.0, 5e-2),
    "Q4_0": (1.0, 5e-2),
}
DRIFT_FACTOR = 10.0


class SelfTestStopped(PyWebGPTError):
    """stop() ended one of the self-test's generations: there is no verdict."""

    code = "cancelled"


# ------------------------------------------------------------------------------------ pure parts


def record_url(source: str) -> str | None:
    """Where a model's golden record lives: beside its config.json (or beside its .gguf file)."""
    if not source.startswith(("http://", "https://")):
        return None
    base = source if source.endswith("/") else source.rsplit("/", 1)[0] + "/"
    return base + RECORD_NAME


def tolerance_basis(record_dtype: str, formats) -> str:
    """The TOLERANCES row for a GPU holding matrices in `formats`, against a record computed from
    `record_dtype` weights (widened exactly to float32, as the GPU widens them)."""
    formats = set(formats) or {"F32"}
    if formats == {record_dtype} or formats == {"F32"}:
        return "F32"  # the values the reference multiplied: only the order of float32 sums differs
    if formats - set(PRECISION_ORDER):
        return PRECISION_ORDER[-1]  # a format this table does not know: the loosest row
    return max(formats - {"F32"}, key=PRECISION_ORDER.index)


def record_problems(record, info: dict, context: int) -> list[str]:
    """Why this record cannot judge this model (empty when it can)."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        return [f"it is not a golden record of format {FORMAT} (got {str(got)[:40]!r})"]
    problems = []
    want = record.get("model") or {}
    pairs = [("model_type", "family"), ("vocab_size", "vocab_size"), ("n_layer", "n_layer"),
             ("n_head", "n_head"), ("n_embd", "n_embd")]
    for key, info_key in pairs:
        if key in want and want[key] != info.get(info_key):
            problems.append(f"its {key} is {want[key]!r}, this model's {info.get(info_key)!r}")
    if want.get("file_bytes") and info.get("file_bytes") and want["file_bytes"] != info["file_bytes"]:
        problems.append(f"it was made from {want['file_bytes']:,} bytes of weights, this model has "
                        f"{info['file_bytes']:,}")
    cases = record.get("cases")
    if not isinstance(cases, list) or not cases:
        problems.append("it has no cases")
        return problems
    vocab = info.get("vocab_size") or 0
    for i, case in enumerate(cases):
        ids, tokens = case.get("prompt_ids") or [], case.get("tokens") or []
        if not ids or not tokens or not all(isinstance(t, int) and 0 <= t < vocab for t in ids + tokens):
            problems.append(f"case {i + 1} has no prompt or tokens, or ids outside the vocabulary")
        elif len(ids) + len(tokens) > context:
            problems.append(f"case {i + 1} needs {len(ids) + len(tokens)} positions, this model holds {context}")
        for top in case.get("top") or []:
            if not 0 <= top.get("step", -1) < len(tokens) or len(top.get("ids", [])) != len(top.get("logits", [])):
                problems.append(f"case {i + 1} has a malformed top-{len(top.get('ids', []))} entry")
                break
    return problems


def first_difference(got: list, want: list) -> int | None:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return None if len(got) >= len(want) else len(got)


def evaluate(record: dict, observed: list, basis: str) -> dict:
    """The figures and the verdict. observed[i]: {'tokens': the GPU's greedy ids for case i,
    'logits': {step: the GPU's logits at that step, given the reference's prefix}}."""
    atol, rtol = TOLERANCES[basis]
    max_delta, max_ratio, compared = 0.0, 0.0, 0
    cases, mismatches, unexplained = [], [], []
    for i, (case, seen) in enumerate(zip(record["cases"], observed)):
        want, got = case["tokens"], seen["tokens"]
        scale = max([abs(v) for top in case.get("top", []) for v in top["logits"]] or [0.0])
        case_delta, case_ratio, worst_at = 0.0, 0.0, None
        for top in case.get("top", []):
            row = seen["logits"].get(top["step"])
            if row is None:
                continue
            for token, ref in zip(top["ids"], top["logits"]):
                delta = abs(float(row[token]) - ref)
                if math.isnan(delta):
                    delta = math.inf
                ratio = delta / (atol + rtol * abs(ref))
                compared += 1
                if delta > case_delta:
                    case_delta, worst_at = delta, {"step": top["step"], "token": token, "reference": ref,
                                                   "gpu": float(row[token])}
                case_ratio = max(case_ratio, ratio)
        at = first_difference(got, want)
        mismatch = None
        if at is not None:
            margins = case.get("margins") or []
            margin = margins[at] if at < len(margins) else None
            near_tie = margin is not None and at < len(got) and margin <= 2 * DRIFT_FACTOR * (atol + rtol * scale)
            mismatch = {"case": i, "step": at, "expected": want[at] if at < len(want) else None,
                        "got": got[at] if at < len(got) else None, "margin": margin, "near_tie": near_tie}
            mismatches.append(mismatch)
            if not near_tie:
                unexplained.append(mismatch)
        max_delta, max_ratio = max(max_delta, case_delta), max(max_ratio, case_ratio)
        cases.append({"prompt": case.get("prompt"), "prompt_ids": case["prompt_ids"], "expected": want,
                      "tokens": got, "ids_agree": at is None, "first_mismatch": mismatch,
                      "max_abs_delta": case_delta, "worst": worst_at})
    ids_agree = not mismatches
    if compared == 0:
        verdict = "fail"  # nothing could be compared: no evidence that this GPU is right
    elif ids_agree and max_ratio <= 1.0:
        verdict = "pass"
    elif not unexplained and max_ratio <= DRIFT_FACTOR:
        verdict = "drift"
    else:
        verdict = "fail"
    return {"verdict": verdict, "max_abs_delta": max_delta, "max_tolerance_ratio": max_ratio,
            "ids_agree": ids_agree, "first_mismatch": mismatches[0] if mismatches else None,
            "logits_compared": compared, "cases": cases,
            "tolerance": {"basis": basis, "atol": atol, "rtol": rtol, "drift_factor": DRIFT_FACTOR}}


def reload_advice(basis: str, verdict: str, formats, load_options: dict) -> dict | None:
    """How to load the model with wider weights, when rounding them may explain a drift or fail."""
    if verdict not in ("drift", "fail") or basis == "F32":
        return None
    if load_options.get("quantize"):
        return {"options": {"quantize": None}, "supported": True,
                "how": "load the model again without the quantize option: pywebgpt.load(ref) keeps the float "
                       "weights as stored"}
    if set(formats) & {"F16", "BF16"}:
        return {"options": {"dtype": "F32"}, "supported": True,
                "how": "load the model again with float32 weights: pywebgpt.load(ref, {dtype: 'F32'})"}
    return None


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2g}" if x >= 1e-2 else f"{x:.1e}"


def _ratio(x: float) -> str:
    return "inf×" if math.isinf(x) else f"{x:,.0f}×" if x >= 100 else f"{x:.2g}×"


def describe(out: dict) -> list[str]:
    """The result in sentences, for the page (text only)."""
    verdict = out.get("verdict")
    if verdict == NO_RECORD:
        return [f"No golden record for this model: {out.get('reason')}.",
                "tools/golden.py writes one (golden.json beside config.json); the bundled model has one."]
    ref = out.get("reference") or {}
    who = ref.get("name", "the reference")
    if who == "transformers" and ref.get("transformers"):
        who = f"transformers {ref['transformers']}"
    tol = out["tolerance"]
    n_cases = len(out.get("cases") or [])
    n_tokens = sum(len(c["expected"]) for c in out.get("cases") or [])
    head = {"pass": "Pass: this GPU computes what", "drift": "Drift: this GPU is close to, but not within the "
            "tolerance of,", "fail": "Fail: this GPU does not compute what"}[verdict]
    lines = [f"{head} {who} computes ({ref.get('compute', 'float32')} on a CPU) for {n_cases} prompts, "
             f"{n_tokens} tokens."]
    lines.append(f"Largest logit difference {_num(out['max_abs_delta'])} over {out['logits_compared']} logits "
                 f"(tolerance for {tol['basis']}: {tol['atol']:g} + {tol['rtol']:g}·|logit|, "
                 f"{_ratio(out['max_tolerance_ratio'])} of it used).")
    mismatch = out.get("first_mismatch")
    if mismatch is None:
        lines.append("Every greedy token is the reference's.")
    else:
        tie = " (a near tie of the reference's two best tokens)" if mismatch.get("near_tie") else ""
        lines.append(f"Greedy tokens differ: prompt {mismatch['case'] + 1}, step {mismatch['step'] + 1}: expected "
                     f"{mismatch.get('expected_text', '')!r} ({mismatch['expected']}), got "
                     f"{mismatch.get('got_text', '')!r} ({mismatch['got']}){tie}.")
    if out.get("reload"):
        lines.append(f"To check with wider weights: {out['reload']['how']}.")
    if out.get("seconds") is not None:
        lines.append(f"Weights {out.get('dtype')}; took {out['seconds']:.1f} s.")
    return lines


# ------------------------------------------------------------------------------------ the browser


async def _fetch_text(url: str) -> tuple[str | None, str | None]:
    """(text, None) or (None, why not) for a file over HTTP, through web/fetch.js."""
    import js  # noqa: PLC0415 - Pyodide only: the module stays importable in CPython

    helper = getattr(js.globalThis, "pywebgptFetch", None)
    if helper is None:
        return None, "web/fetch.js is not loaded"
    r = await helper.get(url, None, True)
    if getattr(r, "error", None):
        return None, f"could not fetch {url} ({r.message})"
    if not r.ok:
        return None, f"{url} answered HTTP {r.status}" if r.status != 404 else f"there is no {url}"
    return str(r.text), None


async def _picked_text(files) -> tuple[str | None, str | None]:
    """golden.json among the picked files (beside their config.json)."""
    entries = []
    for item in files:
        path = str(getattr(item, "path", "") or "")
        entries.append((path.replace("\\", "/"), getattr(item, "file", None)))
    folders = {p.rsplit("/", 1)[0] if "/" in p else "" for p, _ in entries if p.endswith("config.json")}
    for path, file in entries:
        folder, name = (path.rsplit("/", 1) if "/" in path else ("", path))
        if name == RECORD_NAME and folder in folders and file is not None:
            import js  # noqa: PLC0415 - Pyodide only

            r = await js.globalThis.pywebgptFetch.fileText(file)
            if getattr(r, "error", None):
                return None, f"the picked {RECORD_NAME} could not be read ({r.message})"
            return str(r.text), None
    return None, f"the picked folder has no {RECORD_NAME}"


async def load_record(model, url: str | None = None, files=None) -> tuple[dict | None, str, str | None]:
    """(record, where it came from, why there is none)."""
    if url is None and files is not None:
        where = f"{model.source}{RECORD_NAME}"
        text, why = await _picked_text(files)
    else:
        where = url or record_url(model.source)
        if where is None:
            return None, model.source, f"{model.source} is not a URL, so there is no {RECORD_NAME} to fetch"
        text, why = await _fetch_text(where)
    if text is None:
        return None, where, why
    try:
        return json.loads(text), where, None
    except ValueError as exc:
        return None, where, f"{where} is not JSON ({exc})"


async def _greedy(model, prompt_ids: list, n: int):
    stream = model.generate(prompt_ids=prompt_ids, max_new_tokens=n, temperature=0, stop_on_eos=False,
                            return_logits=True)
    result = await stream.collect()
    if result.finish_reason == "cancelled":
        raise SelfTestStopped("the self-test was stopped before it finished")
    return result


async def self_test(model, *, record: dict | None = None, url: str | None = None, files=None,
                    load_options: dict | None = None) -> dict:
    """Run the model's golden record on this GPU; returns the verdict and the figures (see the module
    docstring). `record` skips fetching; `url` fetches another one; `files`: the picked folder's
    [{path, file}] when the model came from one."""
    t0 = time.perf_counter()
    info = model.info
    where = "(given)"
    if record is None:
        record, where, why = await load_record(model, url, files)
        if record is None:
            return {"verdict": NO_RECORD, "reason": why, "record_url": where, "dtype": info.get("dtype")}
    problems = record_problems(record, info, model.context)
    if problems:
        return {"verdict": NO_RECORD, "record_url": where, "dtype": info.get("dtype"),
                "reason": f"{where} does not describe this model's weights: " + "; ".join(problems)}
    if model.busy:
        raise GenerationBusy("a generation is running on this model; wait for it or call stop()")
    formats = info.get("weight_formats") or [info.get("dtype")]
    record_dtype = str((record.get("model") or {}).get("weights_dtype") or "F32")
    basis = tolerance_basis(record_dtype, formats)
    observed = []
    for case in record["cases"]:
        want = case["tokens"]
        result = await _greedy(model, case["prompt_ids"], len(want))
        got = list(result.tokens)
        at = first_difference(got, want)
        logits = {}
        for top in case.get("top", []):
            step = top["step"]
            if (at is None or step <= at) and step < len(result.logits):
                logits[step] = result.logits[step]
            else:  # the GPU took another path: its logits here would answer another question
                forced = await _greedy(model, case["prompt_ids"] + want[:step], 1)
                logits[step] = forced.logits[0]
        observed.append({"tokens": got, "logits": logits})
    out = evaluate(record, observed, basis)
    text = model.tokenizer.token_bytes if hasattr(model.tokenizer, "token_bytes") else None
    mismatch = out["first_mismatch"]
    if mismatch is not None and text is not None:
        for key in ("expected", "got"):
            if mismatch[key] is not None:
                mismatch[f"{key}_text"] = text(mismatch[key]).decode("utf-8", "replace")
    out.update({"record_url": where, "reference": record.get("reference"), "dtype": info.get("dtype"),
                "weight_formats": sorted(formats), "seconds": time.perf_counter() - t0})
    out["reload"] = reload_advice(basis, out["verdict"], formats, load_options or {})
    out["message"] = " ".join(describe(out))
    return out


async def js_self_test(opts_json: str = "{}") -> str:
    """pywebgpt.selfTest(opts) (web/api.js): the current model's self-test as JSON, or
    {"error": {...}}. opts: {url: another record's address, record: a record object}."""
    from .engine import default_engine  # noqa: PLC0415 - the engine imports the browser; this module must not

    engine = default_engine()
    try:
        opts = json.loads(opts_json or "{}")
        if engine.loading is not None:
            raise GenerationBusy("a model is loading: wait for it, then run the self-test")
        if engine.recovering is not None:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        if engine.device_lost and not engine.loss_reported:
            raise engine.device_lost_error()
        with engine.call():
            if engine.needs_recovery:
                await engine.recover()
            model = engine.current()
            ref = engine.model_ref or {}
            files = ref.get("files")
            from .gpu import is_null  # noqa: PLC0415 - Pyodide only

            out = await self_test(model, record=opts.get("record"), url=opts.get("url"),
                                  files=None if files is None or is_null(files) else files,
                                  load_options=ref.get("options") or {})
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clean rejection, as generate()'s
        if engine.gpu is not None and await engine.lost_meanwhile(exc):
            return json.dumps({"error": error_dict(engine.device_lost_error())})
        return json.dumps({"error": error_dict(exc)})
    return json.dumps(out)
