"""Generation through the JS API on one booted page, with tiny random models served from
tmp folders: streaming, Stop (mid-decode, mid-prefill), stop strings, EOS, the context policy, seeds
against the CPython sampler, greedy against tools/reference.py, one generation at a time, the
Node runner against the browser, and the Python API (app/api.py) in the page.

Two model shapes only (a character model and a GPT-2-BPE model with the same layers), so that the
kernels compile once per shape: compiling is most of the cost on SwiftShader."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.contract import decode_dispatch_limit, topk_output_bytes
from app.sampling import Sampler, SamplingParams
from app.tokenizer import CharTokenizer, GPT2Tokenizer
from conftest import BOOT_TIMEOUT_MS, ROOT, ConsoleGuard, run_engine_js, run_py, wait_ready
from reference import KVCacheModel, greedy, load_hf_folder
from serve import Server
from tools.make_model import cached_model

pytestmark = pytest.mark.browser

LAYERS = dict(n_layer=2, n_head=2, n_embd=64, n_positions=512, init_std=0.2, seed=1)
CHAR = dict(LAYERS, vocab_size=100, tokenizer="char")
BPE = dict(LAYERS, vocab_size=50257, tokenizer="gpt2")
EOS = 50256

GEN_JS = """async ([prompt, opts]) => {
  const events = [];
  const r = await pywebgpt.generate(prompt, opts, (e) => events.push(e));
  r.events = events;
  return r;
}"""


# ------------------------------------------------------------------------------------ models


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".complete", "generation_config.json"))
    return dst


_REF: dict = {}


def ref_model(folder: Path):
    key = str(folder)
    if key not in _REF:
        _REF[key] = load_hf_folder(folder)
    return _REF[key]


def ref_greedy(folder: Path, prompt_ids, n: int):
    """(ids, logits, smallest top-1 margin) from the numpy oracle."""
    cfg, w = ref_model(folder)
    ids, logits = greedy(w, cfg, list(prompt_ids), n)
    top2 = np.sort(logits, axis=1)[:, -2:]
    return ids, logits, float((top2[:, 1] - top2[:, 0]).min())


def tokenizer_of(folder: Path):
    if (folder / "char_vocab.json").exists():
        return CharTokenizer.from_json((folder / "char_vocab.json").read_text(encoding="utf-8"))
    return GPT2Tokenizer.from_files(folder / "vocab.json", folder / "merges.txt")


def prompt(n: int, seed: int = 0, vocab: int = 100) -> list:
    return [int(i) for i in np.random.default_rng(seed).integers(0, vocab, n)]


def with_eos_config(src: Path, dst: Path, prompt_ids: list) -> tuple:
    """A copy whose config.json names as eos_token_id the greedy token at a step k >= 2 that did
    not come earlier: generation must end there. Returns (folder, k, greedy ids)."""
    ids, _, _ = ref_greedy(src, prompt_ids, 12)
    k = next(k for k in range(2, 12) if ids[k] not in ids[:k])
    copy_model(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["eos_token_id"] = ids[k]
    (dst / "config.json").write_text(json.dumps(config))
    return dst, k, ids


def with_forced_eos(src: Path, dst: Path, prompt_ids: list, at: int = 2) -> Path:
    """A copy of a GPT-2-BPE model whose <|endoftext|> (50256) becomes the greedy choice at new
    token `at` and nowhere before: its (tied) embedding row is set to the part of the final hidden
    state at that step orthogonal to the hidden states of the earlier steps, scaled so its logit
    beats the best one by 10. Earlier logits of 50256 become 0, below each step's maximum."""
    from safetensors.numpy import load_file, save_file

    cfg, w = ref_model(src)
    ids, logits, _ = ref_greedy(src, prompt_ids, at + 1)
    probe = KVCacheModel(w, cfg)
    probe.lm_head = np.eye(cfg.n_embd, dtype=np.float32)  # feed() now returns ln_f's output
    hidden = [probe.feed(prompt_ids)[-1]] + [probe.feed([t])[-1] for t in ids[:at]]
    basis = []
    for h in hidden[:at]:
        v = h.astype(np.float64) - sum((h @ b) * b for b in basis)
        basis.append(v / np.linalg.norm(v))
    target = hidden[at].astype(np.float64)
    u = target - sum((target @ b) * b for b in basis)
    assert all(logits[s].max() > 1.0 for s in range(at)), "the trick needs positive best logits"
    row = u * (logits[at].max() + 10.0) / (u @ target)
    copy_model(src, dst)
    tensors = load_file(dst / "model.safetensors")
    tensors["transformer.wte.weight"][EOS] = row.astype(np.float32)
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    cache = tmp_path_factory.getbasetemp() / "models"
    root = tmp_path_factory.mktemp("generate")
    char = copy_model(cached_model(cache, **CHAR), root / "char")
    copy_model(cached_model(cache, **dict(CHAR, n_layer=4)), root / "char4")
    bpe = copy_model(cached_model(cache, **BPE), root / "bpe")
    char_eos, eos_step, eos_ids = with_eos_config(char, root / "char-eos", prompt(8, seed=3))
    bpe_eos = with_forced_eos(bpe, root / "bpe-eos", prompt(6, seed=4, vocab=50000))
    return {"root": root, "char": char, "bpe": bpe, "char-eos": char_eos, "bpe-eos": bpe_eos,
            "eos_step": eos_step, "eos_ids": eos_ids}


NODE_PROMPT = prompt(12, seed=7)
NODE_NEW = 12


@pytest.fixture(scope="module")
def node_run(models):
    """tools/generate.py --runtime node on the BPE model, dumping its logits (a report of megabytes
    through a pipe), started first: it runs beside the
    browser tests (its start-up is mostly waiting) and is collected by the test that needs it."""
    cmd = [sys.executable, str(ROOT / "tools/generate.py"), "--runtime", "node", "--model", str(models["bpe"]),
           "--prompt-ids", ",".join(map(str, NODE_PROMPT)), "--max-new-tokens", str(NODE_NEW), "--json",
           "--no-stop-on-eos", "--dump-logits", str(models["root"] / "node-logits.npy")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def site(site_server, models, node_run):
    server = Server(ROOT, mounts={"/models/": models["root"]}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, site):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    guard = ConsoleGuard(page)
    page.goto(site.url)
    wait_ready(page)
    page.loaded = None
    yield page
    problems = guard.unexpected()
    context.close()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


def use(page, name: str, **opts) -> dict | None:
    """Load /models/<name>/ unless it is the model loaded now (with the same options)."""
    key = (name, json.dumps(opts, sort_keys=True))
    if page.loaded == key:
        return None
    info = page.evaluate("([ref, opts]) => pywebgpt.load(ref, opts)", [f"/models/{name}/", {"cache": False, **opts}])
    page.loaded = key
    return info


def generate(page, prompt_ids=None, text: str = "", **opts) -> dict:
    if prompt_ids is not None:
        opts["prompt_ids"] = list(prompt_ids)
    return page.evaluate(GEN_JS, [text, opts])


def event_tokens(result) -> list:
    return [e["token"] for e in result["events"] if e["token"] >= 0]


def pieces(result) -> str:
    return "".join(e["text"] for e in result["events"])


def dumped_logits(result) -> np.ndarray:
    raw = base64.b64decode(result["logits_f32_b64"])
    return np.frombuffer(raw, dtype="<f4").reshape(len(result["tokens"]), result["vocab_size"])


# ------------------------------------------------------------------------------------ greedy, streaming


def test_greedy_equals_the_reference_and_pieces_concatenate_to_the_text(page, models):
    use(page, "char")
    ids = prompt(8, seed=1)
    want, _, margin = ref_greedy(models["char"], ids, 24)
    assert margin > 1e-3, "the test model should not have near-ties"
    r = generate(page, ids, max_new_tokens=24, temperature=0)
    assert r["tokens"] == want
    assert r["finish_reason"] == "length" and r["prompt_ids"] == ids
    assert event_tokens(r) == r["tokens"]
    assert pieces(r) == r["text"] == tokenizer_of(models["char"]).decode(want)
    assert r["timings"]["decode_tokens"] == 23 and r["timings"]["ttft_ms"] > 0


def test_bpe_streaming_pieces_concatenate_to_the_text(page, models):
    """Random BPE tokens often end mid-character: the stream holds those bytes back."""
    use(page, "bpe")
    tok = tokenizer_of(models["bpe"])
    ids = tok.encode("Grüße aus 東京! 🦙")
    r = generate(page, text="Grüße aus 東京! 🦙", max_new_tokens=16, temperature=1.0, top_k=50, seed=5)
    assert r["prompt_ids"] == ids and len(r["tokens"]) == 16
    assert pieces(r) == r["text"] == tok.decode(r["tokens"])
    assert event_tokens(r) == r["tokens"]
    want, _, _ = ref_greedy(models["bpe"], ids, 4)
    assert generate(page, text="Grüße aus 東京! 🦙", max_new_tokens=4, temperature=0)["tokens"] == want


def test_long_prompt_prefills_in_chunks_like_the_reference(page, models):
    use(page, "char")
    ids = prompt(300, seed=2)  # 128 + 128 + 44 rows
    want, _, margin = ref_greedy(models["char"], ids, 3)
    assert margin > 1e-3
    r = generate(page, ids, max_new_tokens=3, temperature=0)
    assert r["tokens"] == want


STEP_COUNTS = """
import js
m = engine.model.gpu_model
m.reset()
await m.prefill([1, 2, 3], k=1)
out = []
for k in (1, 64):
    js.eval("globalThis.__dispatches = 0")
    counter = js.pywebgptCountCalls()
    for _ in range(4):
        r = await m.decode_step(5, k=k)
    calls = int(counter.stop())
    out.append({"k": k, "candidates": len(r.ids), "calls": calls / 4, "dispatches": int(js.globalThis.__dispatches) / 4,
                "readback": m.last_readback_bytes, "planned": m.dispatches_per_decode_step})
m.reset()
out
"""
COUNT_DISPATCHES_JS = """(on) => {
  const proto = GPUComputePassEncoder.prototype;
  if (on && !proto.__original) {
    proto.__original = proto.dispatchWorkgroups;
    proto.dispatchWorkgroups = function (...args) {
      globalThis.__dispatches++;
      return proto.__original.apply(this, args);
    };
  } else if (!on && proto.__original) {
    proto.dispatchWorkgroups = proto.__original;
    delete proto.__original;
  }
}"""


def decode_step_counts(page, n_layer: int, gpu_shapes: bool) -> list:
    """Counted in the page over 4 decode steps each, greedy (k = 1) and top-k 64: the
    dispatchWorkgroups calls the GPU received, the calls that crossed from Python to JS, and the
    bytes read back."""
    # where the engine calls WebGPU: its worker (the page's default)
    run_engine_js(page, f"({COUNT_DISPATCHES_JS})(true)")
    try:
        use(page, "char" if n_layer == 2 else f"char{n_layer}")
        counts = run_py(page, STEP_COUNTS)
    finally:
        run_engine_js(page, f"({COUNT_DISPATCHES_JS})(false)")
    tail = 3 if gpu_shapes else 2  # LM head, top-k in two passes on a GPU, one serial pass on a CPU adapter
    per_block = 5 if gpu_shapes else 7  # a CPU adapter runs each LayerNorm as its own dispatch
    for c in counts:
        assert c["candidates"] == c["k"]
        assert c["dispatches"] == c["planned"] == 1 + per_block * n_layer + tail <= decode_dispatch_limit(
            n_layer, fused_norms=gpu_shapes), c
        assert c["readback"] == topk_output_bytes(c["k"]) <= 1024, c  # choice, k ids and logits, M, S, place
    return counts


def test_decode_step_budgets(page, models):
    """A decode step stays within its budgets: dispatches <= app/contract.py decode_dispatch_limit,
    read-back <= 1 KB for greedy and top-k 64, and Python -> JS calls per step independent of the
    number of layers."""
    two, four = decode_step_counts(page, 2, False), decode_step_counts(page, 4, False)
    assert [c["calls"] for c in two] == [c["calls"] for c in four]
    assert all(c["calls"] <= 12 for c in two), two


def test_a_cpu_adapter_gets_a_decode_workgroup_per_processor(page, models):
    """The page's engine reads the machine's processors (navigator.hardwareConcurrency) and gives a CPU
    adapter's decode GEMVs and LM head one workgroup per processor (app/shapes.py cpu_groups_for)."""
    use(page, "char")
    got = run_py(page, "import js\n_m = engine.model.gpu_model\n"
                       "[_m.graph.shapes.cpu, _m.graph.shapes.cpu_groups, _m.gpu.cpu_threads, "
                       "int(js.navigator.hardwareConcurrency), sorted({d.counts()[0] for d in _m.graph.decode + "
                       "_m.graph.tail if d.kernel.entry in ('gemv', 'lm_head')})]")
    cpu, groups, threads, processors, counts = got
    assert cpu and threads == processors >= 1
    assert groups == min(processors, 16) and counts == [groups], got


def test_gpu_kernel_shapes_give_the_reference_tokens(page, models):
    """The kernels a real GPU gets (tiled prefill in one chunk of up to 512 rows, decode attention
    split over blocks of 64 positions and merged by the projection, GEMV with reductions, top-k in
    two passes), forced on SwiftShader through the engine's kernel-shape overrides: greedy equals the
    reference with decode steps crossing an attention block boundary and starting in the third block."""
    set_tuning = "engine.shape_overrides = {}\nNone"
    run_py(page, set_tuning.format("{'cpu': False}"))
    page.loaded = None
    try:
        use(page, "char")
        shape = run_py(page, "_g = engine.model.gpu_model.graph\n"
                             "[_g.shapes.cpu, _g.split_attention, _g.tiled_attention, "
                             "_g.chunk, _g.k.att_splits]")
        assert shape == [False, True, True, 512, 8]
        for n_prompt, n_new, seed in ((58, 12, 5), (140, 4, 6)):
            ids = prompt(n_prompt, seed=seed)
            want, _, margin = ref_greedy(models["char"], ids, n_new)
            assert margin > 1e-3
            assert generate(page, ids, max_new_tokens=n_new, temperature=0)["tokens"] == want, n_prompt
        two, four = decode_step_counts(page, 2, True), decode_step_counts(page, 4, True)
        assert [c["calls"] for c in two] == [c["calls"] for c in four]
    finally:
        run_py(page, set_tuning.format("{}"))
        page.loaded = None


PLAN_VS_ALLOCATED = """
m = engine.model.gpu_model
planned = [[b.label, b.nbytes] for b in m.plan.buffers]
made = [[label, int(buf.size)] for label, buf in m.allocated.items()]
[planned, made, sum(n for _, n in planned), m.gpu_bytes(), gpu.bytes_allocated]
"""


def test_the_buffer_plan_is_what_the_gpu_allocates(page, models):
    """For models of several shapes and both kernel shapes, the buffer plan that the loader checks
    before downloading lists exactly the buffers the GPU model allocates, byte for byte."""
    try:
        for name, overrides in (("char", {}), ("char4", {}), ("bpe", {}), ("char", {"cpu": False}),
                                ("bpe", {"cpu": False})):
            run_py(page, f"engine.shape_overrides = {overrides!r}\nNone")
            page.loaded = None
            use(page, name)
            planned, made, total, gpu_bytes, allocated = run_py(page, PLAN_VS_ALLOCATED)
            assert planned == made, name
            assert total == gpu_bytes <= allocated, name
    finally:
        run_py(page, "engine.shape_overrides = {}\nNone")
        page.loaded = None


# ------------------------------------------------------------------------------------ stop


def test_stop_mid_prefill_then_the_model_still_works(page, models):
    """Stop during the second of three prefill chunks: the generation ends at the chunk boundary,
    with no token, and the next one is right."""
    use(page, "char")
    ids = prompt(300, seed=2)
    run_py(page, """
import js
m = engine.model.gpu_model
calls = scratch['spy_calls'] = []
original = m.write_step
def spy(ids, *args):
    calls.append(len(ids))
    if len(calls) == 2:
        js.pywebgpt.stop()          # the JS API's stop(), while chunk 2 is being sent
    return original(ids, *args)
m.write_step = spy
None""")
    try:
        r = generate(page, ids, max_new_tokens=50, temperature=0)
        calls, pos = run_py(page, "[scratch.pop('spy_calls'), engine.model.gpu_model.pos]")
    finally:
        run_py(page, "del engine.model.gpu_model.write_step")
    assert r["finish_reason"] == "cancelled" and r["tokens"] == [] and r["text"] == ""
    assert calls == [128, 128] and pos == 256, "the third chunk must not run"

    # a Stop from outside, as a button sends it, once the generation has started (SwiftShader's
    # prefill of 300 rows takes seconds, so it lands there)
    r = page.evaluate("""async (ids) => {
      const p = pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 50, temperature: 0});
      while (JSON.parse(await pywebgpt._py("engine.busy")) !== true) {
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      pywebgpt.stop();
      return await p;
    }""", ids)
    assert r["finish_reason"] == "cancelled" and r["tokens"] == []
    assert run_py(page, "engine.model.gpu_model.pos") < 300

    want, _, _ = ref_greedy(models["char"], ids[-20:], 4)
    assert generate(page, ids[-20:], max_new_tokens=4, temperature=0)["tokens"] == want


def test_stop_mid_decode(page, models):
    use(page, "char")
    ids = prompt(8, seed=1)
    want, _, _ = ref_greedy(models["char"], ids, 24)
    # from the token callback: no further token
    r = page.evaluate("""async (ids) => {
      let n = 0;
      return await pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 200, temperature: 0},
                                     () => { if (++n === 5) pywebgpt.stop(); });
    }""", ids)
    assert r["finish_reason"] == "cancelled" and r["tokens"] == want[:5]
    assert r["text"] == tokenizer_of(models["char"]).decode(want[:5])
    # from a timer while the GPU runs a decode step: that step's token is not used
    r = page.evaluate("""async (ids) => {
      let n = 0;
      return await pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 200, temperature: 0},
                                     () => { if (++n === 3) setTimeout(() => pywebgpt.stop(), 0); });
    }""", ids)
    assert r["finish_reason"] == "cancelled" and 3 <= len(r["tokens"]) <= 5
    assert r["tokens"] == want[:len(r["tokens"])]
    assert generate(page, ids, max_new_tokens=6, temperature=0)["tokens"] == want[:6]


def test_stop_called_right_after_generate(page, models):
    use(page, "char")
    r = page.evaluate("""async (ids) => {
      const p = pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 30, temperature: 0});
      pywebgpt.stop();
      return await p;
    }""", prompt(8, seed=1))
    assert r["finish_reason"] == "cancelled" and r["tokens"] == []


def test_a_second_generation_while_one_runs_is_refused(page, models):
    use(page, "char")
    ids = prompt(8, seed=1)
    want, _, _ = ref_greedy(models["char"], ids, 24)
    out = page.evaluate("""async (ids) => {
      let firstToken;
      const started = new Promise((resolve) => { firstToken = resolve; });
      const first = pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 200, temperature: 0},
                                      () => firstToken());
      await started;
      const refused = [];
      for (const call of [() => pywebgpt.generate('', {prompt_ids: ids, max_new_tokens: 2}),
                          () => pywebgpt.load('/models/bpe/')]) {
        try { await call(); refused.push(null); } catch (e) { refused.push(String(e.message)); }
      }
      pywebgpt.stop();
      return {refused, first: await first};
    }""", ids)
    gen_error, load_error = out["refused"]
    assert gen_error and "already running" in gen_error and "stop()" in gen_error
    assert load_error and "generation is running" in load_error
    first = out["first"]
    assert first["finish_reason"] == "cancelled" and first["tokens"] == want[:len(first["tokens"])]
    assert page.evaluate("() => pywebgpt.info().model.source").endswith("/models/char/")


# ------------------------------------------------------------------------------------ stop strings, EOS


def first_unique(text: str, length: int, start: int) -> int:
    return next(i for i in range(start, len(text) - length) if text.find(text[i:i + length]) == i)


CHAIN_SPY = """
_m = engine.model.gpu_model
scratch['chain_log'] = []
scratch['submit_sizes'] = []
if not hasattr(_m, '_unspied_submit'):
    _m._unspied_submit = _m.submit_decode_steps
    def _spy(token, choices, *args, **kwargs):
        scratch.setdefault('chain_log', []).extend([token] + [None] * (len(choices) - 1))
        scratch.setdefault('submit_sizes', []).append(len(choices))
        return _m._unspied_submit(token, choices, *args, **kwargs)
    _m.submit_decode_steps = _spy
None
"""
UNSPY = ("_m = engine.model.gpu_model\nif hasattr(_m, '_unspied_submit'):\n"
         "    _m.submit_decode_steps = _m._unspied_submit\n    del _m._unspied_submit\nNone")
CHAIN_STATE = """
_m = engine.model.gpu_model
[scratch.pop('chain_log'), _m.pos, _m.in_flight]
"""


def test_decode_steps_are_chained_on_the_gpu(page, models):
    """Greedy decoding queues each step before Python reads the previous one (the embedding takes
    the GPU's choice): the tokens still equal the reference's, a step queued past a stop (stop
    string, EOS, max_new_tokens, Stop) is read and rolled back, and nothing stays in flight.
    Every sampling setting chains too (top-k, top-p, a repetition penalty, in id order), with the
    tokens of the CPython sampler over all the logits; the logits are read only where the candidates
    and the GPU's choice cannot decide."""
    use(page, "char")
    ids = prompt(9, seed=8)
    want, _, margin = ref_greedy(models["char"], ids, 16)
    assert margin > 1e-3
    n = 16
    run_py(page, CHAIN_SPY)
    r = generate(page, ids, max_new_tokens=n, temperature=0)
    log, pos, inflight = run_py(page, CHAIN_STATE)
    assert r["tokens"] == want and r["finish_reason"] == "length"
    assert log == [want[0]] + [None] * (n - 2), log  # the first step by id, then each fed on the GPU
    assert pos == len(ids) + n - 1 and inflight == 0
    # ends on a stop string while a step is queued: rolled back
    text = generate(page, ids, max_new_tokens=16, temperature=0)["text"]
    i = first_unique(text, 2, 5)
    run_py(page, CHAIN_SPY)
    r = generate(page, ids, max_new_tokens=16, temperature=0, stop=[text[i:i + 2]])
    log, pos, inflight = run_py(page, CHAIN_STATE)
    assert r["finish_reason"] == "stop" and r["tokens"] == want[:i + 2]
    assert None in log and pos == len(ids) + len(r["tokens"]) - 1 and inflight == 0
    # sampling from the candidates: chained, the same tokens as from all the logits
    run_py(page, CHAIN_SPY)
    opts = dict(max_new_tokens=n, temperature=0.8, top_k=5, seed=3)
    r = generate(page, ids, **opts)
    log, pos, inflight = run_py(page, CHAIN_STATE)
    assert r["tokens"] == generate(page, ids, return_logits=True, **opts)["tokens"]
    assert r["timings"]["chained"] and inflight == 0 and pos == len(ids) + n - 1
    misses = r["timings"]["chain_misses"]  # a draw within f32 rounding of a boundary: ~never
    assert misses <= 1 and (misses or (log.count(None) == n - 2 and len(log) == n - 1)), log
    opts = dict(max_new_tokens=n, temperature=1.3, top_k=30, top_p=0.8, seed=4)  # with top-p too
    r = generate(page, ids, **opts)
    assert r["timings"]["chained"] and r["timings"]["chain_misses"] <= 1
    assert r["tokens"] == generate(page, ids, return_logits=True, **opts)["tokens"]
    # a repetition penalty (on the GPU: its seen mask), top-p alone, id order: chained as well
    for opts in (dict(temperature=0.8, top_k=5, repetition_penalty=1.3, seed=3),
                 dict(temperature=0, repetition_penalty=1.5),
                 dict(temperature=0.7, top_p=0.8, repetition_penalty=0.8, seed=5),
                 dict(temperature=1.1, repetition_penalty=1.2, seed=6)):
        opts["max_new_tokens"] = n
        run_py(page, CHAIN_SPY)
        r = generate(page, ids, **opts)
        log, pos, inflight = run_py(page, CHAIN_STATE)
        full = generate(page, ids, return_logits=True, **opts)
        assert r["tokens"] == full["tokens"] == replay(SamplingParams(**opts), ids, dumped_logits(full)), opts
        assert r["timings"]["chained"] and inflight == 0 and pos == len(ids) + n - 1
        assert r["timings"]["chain_misses"] <= 1 and log.count(None) >= n - 4, (opts, log)
        in_id_order = opts["temperature"] and "top_k" not in opts and "top_p" not in opts
        # in id order the GPU's choice says where its draw fell: the logits are read only for a draw
        # within rounding of a boundary, or a token of tiny probability
        assert r["timings"]["logits_read"] <= (n // 4 if in_id_order else 0), (opts, r["timings"])
    run_py(page, UNSPY)


def wrong_draws(first: int) -> str:
    """Page code handing the GPU random numbers off by 0.5 from the `first`-th upcoming draw on."""
    return f"""
from pywebgpt import sampling as _s
if not hasattr(_s.Sampler, '_true_upcoming_draw'):
    _s.Sampler._true_upcoming_draw = _s.Sampler.upcoming_draw
_s.Sampler.upcoming_draw = lambda self, ahead=0: (self._true_upcoming_draw(ahead) + 0.5 * (ahead >= {first})) % 1.0
None
"""
RIGHT_DRAWS = """
from pywebgpt import sampling as _s
_s.Sampler.upcoming_draw = _s.Sampler._true_upcoming_draw
del _s.Sampler._true_upcoming_draw
None
"""


def test_a_chained_step_fed_another_token_than_python_chose_is_redone(page, models):
    """The GPU is handed the wrong random numbers for the steps it queues, so it often feeds them
    another token than the sampler draws: every such step is rolled back and redone with Python's
    token, and the tokens are those of the right numbers (and of the CPython sampler over all the
    logits). Handed wrong numbers for every step, it stops queuing after a miss until its choice
    is Python's again, so few steps are redone."""
    use(page, "char")
    ids = prompt(9, seed=11)
    opts = dict(max_new_tokens=24, temperature=1.5, top_k=40, seed=21)
    want = generate(page, ids, **opts)
    assert want["timings"]["chained"]
    misses = {}
    for first in (1, 0):  # wrong from the first queued step on; wrong for every step
        run_py(page, wrong_draws(first))
        try:
            got = generate(page, ids, **opts)
        finally:
            run_py(page, RIGHT_DRAWS)
        assert got["tokens"] == want["tokens"]
        misses[first] = got["timings"]["chain_misses"]
    assert misses[1] >= 5 and misses[0] <= 3, misses
    full = generate(page, ids, return_logits=True, **opts)
    assert replay(SamplingParams(**opts), ids, dumped_logits(full)) == want["tokens"]
    assert run_py(page, "_m = engine.model.gpu_model\n[_m.pos, _m.in_flight]") == [len(ids) + 23, 0]


def test_stop_strings_across_token_boundaries(page, models):
    use(page, "char")
    ids = prompt(8, seed=5)
    full = generate(page, ids, max_new_tokens=30, temperature=0)
    text = full["text"]
    assert len(text) == 30 and full["finish_reason"] == "length"

    i = first_unique(text, 3, 6)          # three characters = three tokens
    r = generate(page, ids, max_new_tokens=30, temperature=0, stop=[text[i:i + 3]])
    assert r["finish_reason"] == "stop" and r["text"] == text[:i] and pieces(r) == text[:i]
    assert r["tokens"] == full["tokens"][:i + 3], "ends on the token that completes the stop string"

    # of two stop strings completed by the same token, the longer one (starting earlier) cuts
    j = next((j for j in range(i + 3, len(text) - 3)
              if text.find(text[j:j + 3]) == j and text.find(text[j + 1:j + 3]) == j + 1), None)
    if j is not None:
        r = generate(page, ids, max_new_tokens=30, temperature=0, stop=[text[j + 1:j + 3], text[j:j + 3]])
        assert r["finish_reason"] == "stop" and r["text"] == text[:j]
        assert r["tokens"] == full["tokens"][:j + 3]

    # a stop string that starts at the end but never completes: the held-back text comes out
    r = generate(page, ids, max_new_tokens=30, temperature=0, stop=[text[-2:] + "\u2603\u2603"])
    assert r["finish_reason"] == "length" and r["text"] == text and pieces(r) == text


def test_stop_string_across_bpe_tokens(page, models):
    use(page, "bpe")
    tok = tokenizer_of(models["bpe"])
    ids = tok.encode("Hello world")
    full = generate(page, ids, max_new_tokens=12, temperature=0)
    texts = [tok.decode(full["tokens"][:n]) for n in range(len(full["tokens"]) + 1)]
    text = texts[-1]
    for k in range(1, 11):  # a boundary with two characters on each side, first occurrence
        cut = len(texts[k])
        stop = text[cut - 2:cut + 2]
        if (len(texts[k]) - len(texts[k - 1]) >= 2 and len(texts[k + 1]) - cut >= 2
                and text.find(stop) == cut - 2 and "\ufffd" not in stop):
            break
    else:
        pytest.fail(f"no usable token boundary in {text!r}")
    r = generate(page, ids, max_new_tokens=12, temperature=0, stop=[stop])
    assert r["finish_reason"] == "stop" and r["text"] == text[:cut - 2] and pieces(r) == r["text"]
    assert r["tokens"] == full["tokens"][:k + 1]


def test_eos_from_config_ends_the_generation(page, models):
    use(page, "char-eos")
    k, want = models["eos_step"], models["eos_ids"]
    ids = prompt(8, seed=3)
    r = generate(page, ids, max_new_tokens=12, temperature=0)
    assert r["finish_reason"] == "eos" and r["tokens"] == want[:k + 1], "the EOS token ends the list"
    assert r["text"] == pieces(r) == tokenizer_of(models["char"]).decode(want[:k])
    r = generate(page, ids, max_new_tokens=12, temperature=0, stop_on_eos=False)
    assert r["finish_reason"] == "length" and r["tokens"] == want


def test_gpt2_end_of_text_token_ends_the_generation(page, models):
    """The GPT-2 tokenizer's <|endoftext|>, made the greedy choice at the third new token."""
    folder = models["bpe-eos"]
    ids = prompt(6, seed=4, vocab=50000)
    want, _, margin = ref_greedy(folder, ids, 8)
    assert want[2] == EOS and EOS not in want[:2] and margin > 1e-3
    use(page, "bpe-eos")
    r = generate(page, ids, max_new_tokens=8, temperature=0)
    tok = tokenizer_of(folder)
    assert r["finish_reason"] == "eos" and r["tokens"] == want[:3]
    assert r["text"] == pieces(r) == tok.decode(want[:2])
    r = generate(page, ids, max_new_tokens=8, temperature=0, stop_on_eos=False)
    assert r["finish_reason"] == "length" and r["tokens"] == want and r["text"] == tok.decode(want)


# ------------------------------------------------------------------------------------ context policy


def test_context_policy_at_the_boundary(page, models):
    """context=32 at load: prompt + max_new_tokens up to 32 runs as asked; beyond, the start of
    the prompt goes (and the result says so); max_new_tokens over 31 is lowered. Every case
    equals the reference on the kept prompt, so nothing ran past the context."""
    info = use(page, "char", context=32)
    assert info["context"] == 32
    folder = models["char"]
    long = prompt(100, seed=6)

    exact = generate(page, long[:28], max_new_tokens=4, temperature=0)
    assert exact["dropped_prompt_tokens"] == 0 and exact["notices"] == [] and exact["finish_reason"] == "length"
    assert exact["tokens"] == ref_greedy(folder, long[:28], 4)[0]

    over = generate(page, long[:30], max_new_tokens=4, temperature=0)
    assert over["dropped_prompt_tokens"] == 2 and over["finish_reason"] == "length"
    assert any("first 2 were dropped" in n for n in over["notices"]), over["notices"]
    assert over["tokens"] == ref_greedy(folder, long[2:30], 4)[0]

    far = generate(page, long, max_new_tokens=4, temperature=0)
    assert far["dropped_prompt_tokens"] == 72 and far["tokens"] == ref_greedy(folder, long[72:], 4)[0]

    most = generate(page, long[:5], max_new_tokens=40, temperature=0)
    assert any("lowered from 40 to 31" in n for n in most["notices"]), most["notices"]
    assert most["dropped_prompt_tokens"] == 4 and len(most["tokens"]) == 31
    assert most["tokens"] == ref_greedy(folder, long[4:5], 31)[0]


def test_sliding_context_keeps_the_first_tokens_and_equals_recomputation(page, models):
    """context_policy 'slide' generates past a context of 32: each time it fills, the first
    keep_first tokens stay, the oldest of the rest go, and the tokens that follow equal the
    reference run from scratch on exactly that window (positions restart at 0), window by window."""
    use(page, "char", context=32)
    folder = models["char"]
    ids = prompt(12, seed=11)
    r = generate(page, ids, max_new_tokens=60, temperature=0, context_policy="slide", keep_first=4)
    assert r["finish_reason"] == "length" and len(r["tokens"]) == 60, r
    slides = r["slides"]
    assert len(slides) >= 3 and all(s["kept_first"] == 4 for s in slides), slides
    assert any("first 4 tokens are kept" in n for n in r["notices"]), r["notices"]
    every = ids + r["tokens"]
    assert r["tokens"][:slides[0]["token"]] == ref_greedy(folder, ids, slides[0]["token"])[0]
    for i, s in enumerate(slides):
        upto = len(ids) + s["token"]  # ids the model had seen when the context filled
        window = every[:s["kept_first"]] + every[upto - s["kept_last"]:upto]
        assert len(window) < 32
        end = slides[i + 1]["token"] if i + 1 < len(slides) else len(r["tokens"])
        assert r["tokens"][s["token"]:end] == ref_greedy(folder, window, end - s["token"])[0], i

    bad = page.evaluate("""async () => {
      const out = [];
      for (const o of [{context_policy: 'wrap'}, {keep_first: -1}, {keep_first: 1.5}]) {
        try { await pywebgpt.generate('', {prompt_ids: [1, 2], max_new_tokens: 2, ...o}); out.push(null); }
        catch (e) { out.push({code: e.code, message: e.message}); }
      }
      return out;
    }""")
    assert [b["code"] for b in bad] == ["input"] * 3, bad
    assert "context_policy must be one of truncate, slide" in bad[0]["message"]


# ------------------------------------------------------------------------------------ seeds, sampler


def replay(params: SamplingParams, prompt_ids: list, logits: np.ndarray) -> list:
    sampler, seen, out = Sampler(params), list(prompt_ids), []
    for row in logits:
        token = sampler.sample(row.tolist(), seen)
        out.append(token)
        seen.append(token)
    return out


def test_same_seed_same_tokens_and_the_cpython_sampler_agrees(page, models):
    use(page, "char")
    ids = prompt(8, seed=8)
    opts = dict(max_new_tokens=16, temperature=0.9, top_p=0.95, repetition_penalty=1.3, seed=1234)
    a = generate(page, ids, return_logits=True, **opts)
    b = generate(page, ids, return_logits=True, **opts)
    assert a["tokens"] == b["tokens"] and a["logits_f32_b64"] == b["logits_f32_b64"]
    assert replay(SamplingParams(**opts), ids, dumped_logits(a)) == a["tokens"]
    assert generate(page, ids, **{**opts, "seed": 99})["tokens"] != a["tokens"]

    # top-k samples from the GPU's candidates: the same tokens as from all the logits
    opts = dict(max_new_tokens=16, temperature=1.2, top_k=20, seed=7)
    fast = generate(page, ids, **opts)
    full = generate(page, ids, return_logits=True, **opts)
    assert fast["tokens"] == full["tokens"] == replay(SamplingParams(**opts), ids, dumped_logits(full))


def test_settings_beyond_what_the_gpu_holds_still_sample_like_cpython(page, models):
    """A top-k past 2**32 and temperatures past or under the f32 range are valid settings (top-k that
    large is off; such temperatures are uniform sampling and greedy with ties drawn): the GPU's step
    parameters are clamped to what it can hold, the tokens are still the CPython sampler's over
    every logit, and the top candidates' probabilities stay probabilities."""
    use(page, "char")
    ids = prompt(8, seed=9)
    for opts in (dict(temperature=1e39, top_k=2**40, seed=3), dict(temperature=1e39, top_k=7, seed=3),
                 dict(temperature=0.9, top_k=2**40, top_p=0.9, seed=3), dict(temperature=1e-300, top_k=7, seed=3)):
        opts["max_new_tokens"] = 6
        r = generate(page, ids, return_logits=True, **opts)
        assert r["finish_reason"] == "length", r
        assert replay(SamplingParams(**opts), ids, dumped_logits(r)) == r["tokens"]
        fast = generate(page, ids, **opts)
        assert fast["tokens"] == r["tokens"]
        logits = dumped_logits(r).astype(np.float64)
        if opts["temperature"] < 1e-38:  # the GPU's sum of exp((l - M) / T): only the top one is left
            got = run_py(page, f"(await engine.model.gpu_model.prefill({ids!r}, k=5, temperature=1e-300)).sum_exp")
            assert got == 1.0, got
        events = [e for e in fast["events"] if e["token"] >= 0]
        for row, event in zip(logits, events):  # softmax(logits / T) of the shown candidates
            with np.errstate(under="ignore"):
                weights = np.exp((row - row.max()) / opts["temperature"])
            for shown in event["top"]:
                assert shown["prob"] == pytest.approx(weights[shown["id"]] / weights.sum(), rel=1e-3, abs=1e-9), opts
def test_bpe_sampling_agrees_with_the_cpython_sampler(page, models):
    use(page, "bpe")
    ids = tokenizer_of(models["bpe"]).encode("Once upon a time")
    opts = dict(max_new_tokens=5, temperature=0.8, top_p=0.9, seed=2024)
    a = generate(page, ids, return_logits=True, **opts)
    b = generate(page, ids, **opts)
    assert a["vocab_size"] == 50257 and a["tokens"] == b["tokens"]
    assert replay(SamplingParams(**opts), ids, dumped_logits(a)) == a["tokens"]
    cfg, w = ref_model(models["bpe"])
    ref = KVCacheModel(w, cfg)
    want = [ref.feed(ids)[-1]] + [ref.feed([t])[-1] for t in a["tokens"][:-1]]
    np.testing.assert_allclose(dumped_logits(a), np.array(want), atol=2e-4, rtol=0)


# ------------------------------------------------------------------------------------ Node runner


def test_node_runner_gives_the_browser_greedy_ids(page, models, node_run):
    use(page, "bpe")
    browser = generate(page, NODE_PROMPT, max_new_tokens=NODE_NEW, temperature=0, stop_on_eos=False)
    stdout, stderr = node_run.communicate(timeout=300)
    assert node_run.returncode == 0, stderr
    node = json.loads(stdout)
    assert node["runtime"] == "node" and node["adapter"], node
    want_ids, want_logits, _ = ref_greedy(models["bpe"], NODE_PROMPT, NODE_NEW)
    assert node["tokens"] == browser["tokens"] == want_ids
    assert node["text"] == browser["text"] and node["finish_reason"] == "length"
    logits = np.load(models["root"] / "node-logits.npy")  # 12 x 50257 floats came through the pipe whole
    assert logits.shape == want_logits.shape
    assert np.abs(logits - want_logits).max() < 1e-3


# ------------------------------------------------------------------------------------ Python API


def test_python_api_in_the_page(page, models):
    use(page, "char")
    ids = prompt(8, seed=1)
    want, _, _ = ref_greedy(models["char"], ids, 24)
    js_result = generate(page, ids, max_new_tokens=12, temperature=0)
    out = run_py(page, f"""
import asyncio
from pywebgpt import load_model, GenerationBusy
from pywebgpt.api import get_gpu
before = gpu.live_buffers
m = await load_model('/models/char/', cache=False)
shared = (await get_gpu()) is gpu and m.gpu is gpu
ids = {ids}
out = {{'shared': shared, 'repr': repr(m), 'context': m.context, 'params': m.info['parameters']}}

stream = m.generate(prompt_ids=ids, max_new_tokens=12, temperature=0)
out['pieces'] = [p async for p in stream]
out['stream'] = [stream.result.tokens, stream.result.text, stream.result.finish_reason]
r = await m.complete(m.decode(ids), max_new_tokens=12, temperature=0)
out['complete'] = [r.tokens, r.text, r.finish_reason, m.last_result is r]

# one at a time: a second generation while the first runs is refused
s1 = m.generate(prompt_ids=ids, max_new_tokens=200, temperature=0)
first = await s1.__anext__()
try:
    m.generate(prompt_ids=ids, max_new_tokens=2)
    out['busy'] = None
except GenerationBusy as exc:
    out['busy'] = str(exc)
m.stop()
rest = [p async for p in s1]
out['stopped'] = [s1.result.finish_reason, len(s1.result.tokens), first + ''.join(rest) == s1.result.text]

# leaving the loop early releases the model; stop() right after complete() is called stops it
async for piece in m.generate(prompt_ids=ids, max_new_tokens=200, temperature=0):
    break
task = asyncio.ensure_future(m.complete(prompt_ids=ids, max_new_tokens=50, temperature=0))
m.stop()
r = await task
out['early'] = [r.finish_reason, r.tokens]
try:
    m.generate('~~~ not in the vocabulary \u2603')
    out['bad_prompt'] = None
except ValueError as exc:
    out['bad_prompt'] = type(exc).__name__
try:
    m.generate(prompt_ids=ids, temperature=-1)
    out['bad_option'] = None
except ValueError as exc:
    out['bad_option'] = str(exc)
# unload() while a decode step runs: the memory goes when that step returns
seen_first = asyncio.Event()
s = m.generate(prompt_ids=ids, max_new_tokens=200, temperature=0)
async def consume():
    got = []
    async for p in s:
        got.append(p)
        seen_first.set()
    return got
task = asyncio.ensure_future(consume())
await seen_first.wait()
in_step = s._in_step
m.unload()
kept_during_step = gpu.live_buffers > before
got = await task
out['unload_mid_step'] = [in_step, kept_during_step, s.result.finish_reason, 0 < len(got) < 200]
out['freed'] = gpu.live_buffers == before
try:
    m.generate(prompt_ids=ids)
    out['after_unload'] = None
except RuntimeError as exc:
    out['after_unload'] = str(exc)
out""")
    assert out["shared"] is True, "the Python API must use the page's GPU device"
    assert out["context"] == 512 and out["params"] > 0 and "char" in out["repr"]
    assert "".join(out["pieces"]) == js_result["text"]
    assert out["stream"] == [want[:12], js_result["text"], "length"]
    assert out["complete"] == [want[:12], js_result["text"], "length", True]
    assert out["busy"] and "already running" in out["busy"]
    assert out["stopped"][0] == "cancelled" and out["stopped"][1] < 200 and out["stopped"][2] is True
    assert out["early"] == ["cancelled", []]
    assert out["bad_prompt"] == "UnknownCharactersError"
    assert out["bad_option"] and "temperature" in out["bad_option"]
    assert out["unload_mid_step"] == [True, True, "cancelled", True]
    assert out["freed"] is True
    assert out["after_unload"] and "unloaded" in out["after_unload"]
    # the JS API's model was not disturbed
    assert generate(page, ids, max_new_tokens=4, temperature=0)["tokens"] == want[:4]


@pytest.mark.parametrize("per_submit", [1, 4])
def test_deeper_chains_give_the_same_tokens(page, models, per_submit):
    """With up to CHAIN_DEPTH_MAX steps queued ahead of the one Python reads, submitted one at a time
    or several in one command buffer, greedy and sampled tokens are those of one step at a time;
    every queued step past the end (max_new_tokens, a stop string) or fed another token than the
    sampler drew is read and rolled back, and nothing stays in flight."""
    use(page, "char")
    ids = prompt(9, seed=8)
    want, _, margin = ref_greedy(models["char"], ids, 16)
    assert margin > 1e-3
    text = generate(page, ids, max_new_tokens=16, temperature=0)["text"]
    i = first_unique(text, 2, 5)
    sampled = dict(max_new_tokens=20, temperature=1.5, top_k=40, seed=21)
    one_step = generate(page, ids, return_logits=True, **sampled)["tokens"]
    depth = run_py(page, "from pywebgpt import contract as _c, generate as _g\n"
                         f"_g.DEFAULT_CHAIN_DEPTH = _c.CHAIN_DEPTH_MAX\n_g.DEFAULT_STEPS_PER_SUBMIT = {per_submit}\n"
                         "_g.DEFAULT_CHAIN_DEPTH")
    try:
        assert depth >= 2 * per_submit
        run_py(page, CHAIN_SPY)
        r = generate(page, ids, max_new_tokens=16, temperature=0)
        log, pos, inflight = run_py(page, CHAIN_STATE)
        sizes = run_py(page, "scratch.pop('submit_sizes')")
        assert r["tokens"] == want and log == [want[0]] + [None] * 14 and (pos, inflight) == (len(ids) + 15, 0)
        # 15 decode steps in submits of per_submit, the last one shorter where they do not divide
        assert sum(sizes) == 15 and set(sizes[:-1]) == {per_submit} and sizes[-1] <= per_submit, sizes
        r = generate(page, ids, max_new_tokens=16, temperature=0, stop=[text[i:i + 2]])
        state = run_py(page, "_m = engine.model.gpu_model\n[_m.pos, _m.in_flight]")
        assert r["finish_reason"] == "stop" and r["tokens"] == want[:i + 2]
        assert state == [len(ids) + len(r["tokens"]) - 1, 0]
        r = generate(page, ids, **sampled)
        assert r["tokens"] == one_step and r["timings"]["chained"]
        run_py(page, wrong_draws(1))
        try:
            got = generate(page, ids, **sampled)
        finally:
            run_py(page, RIGHT_DRAWS)
        assert got["tokens"] == one_step and got["timings"]["chain_misses"] >= 3
        assert run_py(page, "_m = engine.model.gpu_model\n[_m.pos, _m.in_flight]") == [len(ids) + 19, 0]
    finally:
        run_py(page, "from pywebgpt import contract as _c, generate as _g\n"
                     "_g.DEFAULT_CHAIN_DEPTH = _c.DEFAULT_CHAIN_DEPTH\n"
                     "_g.DEFAULT_STEPS_PER_SUBMIT = _c.DEFAULT_STEPS_PER_SUBMIT\nNone")
        run_py(page, UNSPY)
