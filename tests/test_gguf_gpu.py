"""GGUF files and quantize-on-load in the page on SwiftShader, against transformers reading the same
GGUF files in CPython (from_pretrained(gguf_file=...), which dequantizes every block to f32 itself).

A small random Llama with a tokenizer and a chat template (tests/chat_model.py) is written by
tools/make_gguf.py as a GGUF of every supported type (F32, F16, BF16, Q8_0, Q4_0, Q4_1: Q/K rows
permuted and blocks quantized as llama.cpp does). Each loads as it is, its config, tokenizer and chat
template from the metadata: greedy ids equal and logits within 1e-3 of transformers'. The same
model's f32 safetensors folder loaded with quantize: 'q8_0' / 'q4_0' (blocks made on the GPU) gives
the logits of the GGUF of that type (blocks made by ggml's quantizer), so the two quantizers agree.
The k-quants Q4_K and Q6_K and llama.cpp's mixes Q4_K_M and Q5_K_M (Q4_K / Q5_K with Q6_K attn_v and
ffn_down in some layers) take a 256-wide copy of the model, since their rows are whole super-blocks of
256; the mixes of the 64-wide model are llama.cpp's fallbacks for such rows, Q5_0 / Q5_1 with Q8_0.
Also: a GGUF from the imitation Hub with progress and the browser cache, a picked .gguf file, bad
quantize options, and malformed GGUF files refused before anything is allocated on the GPU."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from app.kernels import STAGED_FORMATS
from chat_model import make_chat_model
from conftest import ROOT, mounted_site_page, run_py
from hub_server import Hub
from tools.make_gguf import TYPES, hf_folder_to_gguf

pytestmark = pytest.mark.browser

PROMPT = [(13 * i + 5) % 95 for i in range(40)]
PLAIN_TYPES = tuple(t for t in TYPES if t not in ("Q5_0", "Q5_1"))  # those two: in the narrow mixes below
NEW = 8


def use_merges(folder) -> None:
    """A GGUF byte-level BPE needs merges (llama.cpp refuses a file without): "~" becomes "ab"."""
    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["ab"] = vocab.pop("~")
    spec["model"]["merges"] = [["a", "b"]]
    (folder / "tokenizer.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{'folder': the f32 safetensors folder, 'f16': an f16 copy, type: its GGUF file} in one served
    directory."""
    root = tmp_path_factory.mktemp("gguf")
    folder = make_chat_model(root)
    use_merges(folder)
    out = {"folder": folder, "f16": root / "chat-f16"}
    from safetensors.numpy import load_file, save_file

    out["f16"].mkdir()
    for f in folder.iterdir():
        if f.suffix != ".safetensors":
            (out["f16"] / f.name).write_bytes(f.read_bytes())
    tensors = {k: v.astype(np.float16) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(tensors, str(out["f16"] / "model.safetensors"), metadata={"format": "pt"})
    for f in out["f16"].iterdir():
        f.chmod(0o644)
    for type_name in PLAIN_TYPES:
        path = hf_folder_to_gguf(folder, root / f"chat.{type_name}.gguf", type_name)
        path.chmod(0o644)
        out[type_name] = path
    wide = make_chat_model(root, "chat-256", hidden_size=256, intermediate_size=512)
    use_merges(wide)
    for name, _, _ in K_CASES:
        narrow = name.startswith("narrow.")
        type_name = name.removeprefix("narrow.")
        path = hf_folder_to_gguf(folder if narrow else wide, root / f"chat{'' if narrow else '-256'}.{type_name}.gguf",
                                 type_name)
        path.chmod(0o644)
        out[name] = path
    path = hf_folder_to_gguf(wide, root / "chat-256.Q4_0.gguf", "Q4_0")  # rows of whole groups of 8 blocks
    path.chmod(0o644)
    out["wide.Q4_0"] = path
    # gate in Q4_K, up in Q8_0 in layer 0 (llama-quantize --tensor-type): a gate|up of two formats
    path = hf_folder_to_gguf(wide, root / "chat-256.gate-up.gguf", "Q4_K_M", overrides={"blk.0.ffn_up.weight": "Q8_0"})
    path.chmod(0o644)
    out["gate-up"] = path
    return out


@pytest.fixture(scope="module")
def page(browser, site_server, files):
    # 404s: optional files of the safetensors folder
    with mounted_site_page(browser, {"/gguf/": files["folder"].parent}, allow=[r"status of 404"]) as page:
        yield page


_REF: dict = {}


def transformers_run(path):
    """(greedy ids, logits [NEW, vocab]) of transformers in f32 on a GGUF file."""
    from transformers import AutoModelForCausalLM

    if path not in _REF:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        with torch.no_grad():
            out = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
            logits = model(out[:, :-1]).logits[0, len(PROMPT) - 1:].numpy()
        _REF[path] = (out[0, len(PROMPT):].tolist(), logits)
    return _REF[path]


def run(page, ref: str, **opts) -> dict:
    return page.evaluate("""async ([ref, opts, prompt, n]) => {
      try {
        const info = await pywebgpt.load(ref, {cache: false, ...opts});
        const out = await pywebgpt.generate('', {prompt_ids: prompt, max_new_tokens: n, temperature: 0,
                                                 stop_on_eos: false, return_logits: true});
        return {info, out};
      } catch (e) { return {error: {code: e.code, message: e.message}}; }
    }""", [ref, opts, PROMPT, NEW])


def logits_of(out: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(out["logits_f32_b64"]), dtype="<f4")
    return raw.reshape(-1, out["vocab_size"])


def check_equal(result: dict, path) -> float:
    assert "error" not in result, result
    ids, want = transformers_run(path)
    got = logits_of(result["out"])
    assert result["out"]["tokens"] == ids
    worst = float(np.abs(got - want).max())
    assert worst < 1e-3, worst
    return worst


@pytest.mark.parametrize("type_name", PLAIN_TYPES)
def test_a_gguf_of_each_type_loads_as_it_is_and_equals_transformers(page, files, type_name):
    result = run(page, f"/gguf/{files[type_name].name}")
    check_equal(result, files[type_name])
    info = result["info"]
    assert info["family"] == "llama" and info["chat"] is True and info["vocab_size"] == 100
    matrices = {type_name} if type_name in ("Q8_0", "Q4_0", "Q4_1", "F16", "BF16") else {"F32"}
    assert set(info["weight_formats"]) == matrices, info["weight_formats"]
    assert info["load"]["file_bytes"] == files[type_name].stat().st_size


def test_sources_larger_than_the_staging_buffer_go_through_it_in_chunks(page, files):
    """With a 1,000-byte staging buffer a Q4_0 file's tensors (128-block matrices, permuted q and k)
    reach the GPU in chunks of 54 blocks, each regrouped where it belongs: the logits of transformers."""
    run_py(page, "import pywebgpt.weights as weights\nscratch['staging'] = weights.STAGING_BYTES\n"
                 "weights.STAGING_BYTES = 1000\nNone")
    try:
        result = run(page, f"/gguf/{files['Q4_0'].name}")
    finally:
        run_py(page, "import pywebgpt.weights as weights\nweights.STAGING_BYTES = scratch.pop('staging')\nNone")
    check_equal(result, files["Q4_0"])


K_CASES = [  # (file, the formats its matrices keep on the GPU, a mix's (base type, attn_v / ffn_down type))
    ("Q4_K", ["Q4_K"], None),
    ("Q6_K", ["Q6_K"], None),
    ("Q4_K_M", ["Q4_K", "Q6_K"], ("Q4_K", "Q6_K")),
    ("Q5_K_M", ["Q5_K", "Q6_K"], ("Q5_K", "Q6_K")),
    ("narrow.Q4_K_M", ["Q5_0", "Q8_0"], ("Q5_0", "Q8_0")),   # 64-wide rows: llama.cpp's fallbacks
    ("narrow.Q5_K_M", ["Q5_1", "Q8_0"], ("Q5_1", "Q8_0")),
]


@pytest.mark.parametrize("name, formats, mix", K_CASES, ids=[c[0] for c in K_CASES])
def test_a_k_quant_gguf_stays_packed_and_equals_transformers(page, files, name, formats, mix):
    """Q4_K / Q5_K / Q6_K super-blocks (210-byte Q6_K rows start mid-word) read by every kernel of the
    Llama graph (embedding, GEMV, prefill, LM head) as the file stores them: greedy ids and logits
    of transformers' dequantization, and the weights take the packed size. The mixes are llama.cpp's
    (tools/make_gguf.py tensor_type): in layer 1 of 2, attn_v and ffn_down are Q6_K while q and k
    stay Q4_K / Q5_K, so that layer's q|k|v runs as two GEMVs (one per format) writing one output,
    one dispatch more per decode step than a file of one format. Of a model whose rows are not whole
    super-blocks (64 wide, as SmolLM2's 576 or Qwen2.5's 896), llama.cpp writes Q5_0 / Q5_1 instead
    of Q4_K / Q5_K and Q8_0 instead of Q6_K (output.weight too): the same split, with those blocks."""
    from app.gguf import read_gguf_header
    from app.gguf_load import describe
    from app.model import Llama
    from app.shapes import KernelShapes

    path = files[name]
    result = run(page, f"/gguf/{path.name}")
    check_equal(result, path)
    info = result["info"]
    assert sorted(info["weight_formats"]) == formats, info["weight_formats"]
    header = read_gguf_header(path)
    cfg = describe(header, path.name).config
    packed = sum(t.nbytes for t in header.tensors.values())
    # the file's tensor bytes, the f32 rope table, and each buffer rounded up to 16 bytes
    rope = info["context"] * cfg.head_dim * 4
    assert packed <= info["gpu_bytes_by_kind"]["weights"] <= packed + rope + 16 * (len(header.tensors) + 1), \
        (info["gpu_bytes_by_kind"], packed)
    plain_steps = Llama(cfg, KernelShapes.for_adapter(True), {}, matrix_dtype="F16").dispatches_per_decode_step
    if mix is None:
        assert info["dispatches_per_decode_step"] == plain_steps, info
        return
    base, more = mix
    types = {name: t.type_name for name, t in header.tensors.items() if len(t.dims) == 2}
    assert types == {"token_embd.weight": base, "output.weight": more,
                     **{f"blk.{i}.{leaf}.weight": more if i == 1 and leaf in ("attn_v", "ffn_down") else base
                        for i in range(2) for leaf in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
                                                       "ffn_up", "ffn_down")}}, types
    assert info["dispatches_per_decode_step"] == plain_steps + 1, info


def test_a_gate_up_of_two_formats_decodes_through_swiglu(page, files):
    """A layer whose gate and up are stored in different formats (Q4_K, Q8_0) runs its gate|up as
    one projection per format into the gate|up buffer and swiglu.wgsl after them, in prefill and in
    decode (two dispatches more per decode step than the fused GEMV with the SwiGLU in it): the same
    ids and logits as transformers."""
    result = run(page, f"/gguf/{files['gate-up'].name}")
    check_equal(result, files["gate-up"])
    info = result["info"]
    assert sorted(info["weight_formats"]) == ["Q4_K", "Q6_K", "Q8_0"], info["weight_formats"]
    from app.gguf import read_gguf_header
    from app.gguf_load import describe
    from app.model import Llama
    from app.shapes import KernelShapes

    cfg = describe(read_gguf_header(files["gate-up"]), files["gate-up"].name).config
    plain_steps = Llama(cfg, KernelShapes.for_adapter(True), {}, matrix_dtype="F16").dispatches_per_decode_step
    assert info["dispatches_per_decode_step"] == plain_steps + 1 + 2, info  # layer 1's q|k|v, layer 0's gate|up


# Every decode GEMV variant a GPU may be given (app/shapes.py), on together with the GPU kernel shapes.
GEMV_VARIANTS = {"cpu": False, "gemv_wide_f16": True, "gemv_unroll": 4, "gemv_stage_blocks": 8, "gemv_copy_input": True}
DECODE_GEMVS = """
_g = engine.model.gpu_model.graph
[[d.name, d.kernel.snippet, d.kernel.values.get("GEMV_UNROLL", d.kernel.values.get("HEAD_UNROLL")),
  d.kernel.values.get("STAGE_BLOCKS", 0), d.kernel.values.get("K", 0), d.kernel.values.get("COPY_INPUT", False)]
 for d in _g.decode + _g.tail if d.kernel.entry in ("gemv", "lm_head")]
"""


@pytest.mark.slow
@pytest.mark.parametrize("type_name", ["F16", "Q4_0"])  # the others' kernels: tests/test_kernels_gemv_variants.py
def test_gpu_gemv_variants_give_the_greedy_ids_of_transformers(page, files, type_name):
    """The decode GEMV variants (F16 / BF16 in 16-byte loads, 4 loads per lane before the math, Q8_0 /
    Q4_1 rows staged through workgroup memory, down's input copied there) all on, with the GPU
    kernel shapes forced on SwiftShader: greedy ids and logits of transformers, and every decode GEMV
    and the head built with them."""
    run_py(page, f"engine.shape_overrides = {GEMV_VARIANTS!r}\nNone")
    try:
        result = run(page, f"/gguf/{files[type_name].name}")
        check_equal(result, files[type_name])
        gemvs = run_py(page, DECODE_GEMVS)
    finally:
        run_py(page, "engine.shape_overrides = {}\nNone")
    assert len(gemvs) == 4 * 2 + 1, gemvs  # q|k|v, o, gate|up, down per layer; the head
    for name, snippet, unroll, stage, K, copied in gemvs:
        assert unroll == 4 and copied == (name == "down"), gemvs
        if type_name in ("F16", "BF16"):
            assert snippet.endswith("_wide.wgsl"), gemvs
        elif name != "ln_f+lm_head":  # K = 64 or 128: a row's 2 or 4 blocks in one chunk (Q4_0: never staged)
            assert stage == (min(8, K // 32) if type_name in STAGED_FORMATS else 0), gemvs
STREAMS = """
_g = engine.model.gpu_model.graph
[[d.name, d.kernel.values["Q4_0_STREAM"]] for d in _g.decode + _g.tail if d.kernel.entry in ("gemv", "lm_head")]
"""


@pytest.mark.slow
def test_q4_0_rows_read_as_streams_give_the_logits_of_transformers(page, files):
    """With a GPU's kernel shapes (forced on SwiftShader), a Q4_0 model whose rows are whole groups of 8
    blocks (hidden 256, intermediate 512) decodes with every GEMV and the LM head reading its rows as
    one stream (linear.wgsl / lm_head.wgsl Q4_0_STREAM): the logits and greedy ids of transformers."""
    run_py(page, 'engine.shape_overrides = {"cpu": False}\nNone')
    try:
        result = run(page, f"/gguf/{files['wide.Q4_0'].name}")
        check_equal(result, files["wide.Q4_0"])
        streams = run_py(page, STREAMS)
    finally:
        run_py(page, "engine.shape_overrides = {}\nNone")
    assert len(streams) == 4 * 2 + 1 and all(on for _, on in streams), streams


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_quantize_on_load_equals_the_gguf_quantizer(page, files, fmt):
    """The folder's f32 matrices quantized on the GPU give the logits of ggml's quantization of the
    same matrices (the GGUF of that type), and the weights take the packed size."""
    result = run(page, f"/gguf/{files['folder'].name}/", quantize=fmt)
    check_equal(result, files[fmt.upper()])
    info = result["info"]
    assert info["weight_formats"] == [fmt.upper()]
    assert any(f"quantized to {fmt.upper()}" in n for n in info["notices"]), info["notices"]
    plain = run(page, f"/gguf/{files['folder'].name}/")
    assert info["gpu_bytes_by_kind"]["weights"] < 0.7 * plain["info"]["gpu_bytes_by_kind"]["weights"]


def test_bad_quantize_options_are_refused(page, files):
    for bad, words in (("q5_k", "quantize must be one of q8_0, q4_0"), (7, "quantize must be one of")):
        r = run(page, f"/gguf/{files['folder'].name}/", quantize=bad)
        assert r["error"]["code"] == "input" and words in r["error"]["message"], r
    r = run(page, "weights/shakespeare-char/", quantize="q8_0")
    assert r["error"]["code"] == "input" and "Llama-family" in r["error"]["message"], r
    r = run(page, f"/gguf/{files['folder'].name}/", dtype="F16")
    assert r["error"]["code"] == "input" and "dtype must be 'F32'" in r["error"]["message"], r


def test_the_dtype_option_widens_f16_matrices_to_f32(page, files):
    """{dtype: 'F32'} keeps the f16 folder's values (widened exactly): the same logits as loaded as
    stored, with twice the weight bytes."""
    plain = run(page, f"/gguf/{files['f16'].name}/")
    wide = run(page, f"/gguf/{files['f16'].name}/", dtype="F32")
    assert wide["info"]["weight_formats"] == ["F32"] and plain["info"]["weight_formats"] == ["F16"]
    assert any("widened to F32" in n for n in wide["info"]["notices"]), wide["info"]["notices"]
    assert float(np.abs(logits_of(wide["out"]) - logits_of(plain["out"])).max()) < 1e-4
    assert wide["out"]["tokens"] == plain["out"]["tokens"]


def test_a_gguf_from_the_hub_loads_with_progress_and_then_from_the_cache(page, files):
    hub = Hub().start()
    try:
        repo = hub.add("test/chat-GGUF", files["folder"].parent)
        ref = f"{repo}/{files['Q4_0'].name}"
        load = """async ([ref, hub]) => {
          const events = [];
          const info = await pywebgpt.load(ref, {hub, onProgress: (p) => events.push(p)});
          return {info, events};
        }"""
        cold = page.evaluate(load, [ref, hub.url])
        assert cold["info"]["source"].endswith(files["Q4_0"].name), cold["info"]["source"]
        downloads = [e for e in cold["events"] if e["phase"] == "download"]
        assert downloads and downloads[-1]["loaded"] == files["Q4_0"].stat().st_size
        hub.clear_log()
        warm = page.evaluate(load, [ref, hub.url])
        assert warm["info"]["load"]["from_cache"] is True
        assert {e["range"] for e in hub.requests()} == {"bytes=0-0"}, hub.requests()  # the ETag check only
        page.evaluate("([repo, hub]) => pywebgpt.clearCache(repo, {hub})", [repo, hub.url])
    finally:
        hub.stop()


def test_a_gguf_file_picked_on_the_page_loads(page, files):
    """The page's 'Or one GGUF file' input loads the file as it is, and names it."""
    page.wait_for_function("() => !document.querySelector('#gguf-input').disabled")
    before = page.evaluate("() => Number(document.body.dataset.loads || 0)")
    page.locator("#more-sources").evaluate("(d) => { d.open = true; }")
    page.locator("#gguf-input").set_input_files(files["Q8_0"])
    page.wait_for_function("(n) => Number(document.body.dataset.loads || 0) > n", arg=before)
    info = page.evaluate("() => pywebgpt.info().model")
    assert info["weight_formats"] == ["Q8_0"] and info["chat"] is True, info
    assert info["source"] == f"picked file {files['Q8_0'].name}", info["source"]


def malformed(good: bytes) -> dict:
    """name -> bytes of a GGUF file that must be refused."""
    import struct

    version_at, count_at = 4, 8
    out = {"truncated.gguf": good[:len(good) // 2],
           "absurd-count.gguf": good[:count_at] + struct.pack("<Q", 1 << 40) + good[count_at + 8:],
           "version-9.gguf": good[:version_at] + struct.pack("<I", 9) + good[version_at + 4:]}
    # a lying offset: the last tensor's data offset moved past the end of the file
    from app.gguf import parse_gguf_header

    header = parse_gguf_header(good, len(good))
    last = list(header.tensors.values())[-1]
    key = last.name.encode() + struct.pack("<I", len(last.dims)) + struct.pack(f"<{len(last.dims)}Q", *last.dims)
    at = good.index(key) + len(key) + 4  # after the type id: the u64 offset
    out["lying-offset.gguf"] = good[:at] + struct.pack("<Q", last.offset + (1 << 30)) + good[at + 8:]
    type_at = good.index(key) + len(key)
    out["unknown-type.gguf"] = good[:type_at] + struct.pack("<I", 99) + good[type_at + 4:]
    return out


def test_malformed_gguf_files_are_refused_before_any_gpu_allocation(page, files, tmp_path):
    bad_dir = files["folder"].parent / "bad"
    bad_dir.mkdir(exist_ok=True)
    for name, data in malformed(files["Q8_0"].read_bytes()).items():
        (bad_dir / name).write_bytes(data)
        (bad_dir / name).chmod(0o644)
    run_py(page, "engine.unload() if engine.model else None\nNone")
    before = run_py(page, "gpu.live_buffers")
    for name, words in (("truncated.gguf", "truncated"), ("absurd-count.gguf", "metadata"),
                        ("version-9.gguf", "version"), ("lying-offset.gguf", "end of the file"),
                        ("unknown-type.gguf", "type")):
        r = run(page, f"/gguf/bad/{name}")
        assert r.get("error", {}).get("code") == "format", (name, r)
        assert name in r["error"]["message"] and words in r["error"]["message"].lower(), (name, r["error"])
        assert run_py(page, "gpu.live_buffers") == before, name
    ok = run(page, f"/gguf/{files['Q8_0'].name}")  # the page is still usable
    check_equal(ok, files["Q8_0"])


@pytest.mark.slow
def test_the_cli_takes_a_gguf_file_and_quantize(files, tmp_path):
    """tools/generate.py --model FILE.gguf, and --quantize on a folder: the same --json and
    --dump-logits contract, the same ids and logits as transformers on the GGUF."""
    ids = ",".join(map(str, PROMPT))
    for model, extra, want in ((files["Q4_1"], [], files["Q4_1"]),
                               (files["folder"], ["--quantize", "q4_0"], files["Q4_0"])):
        dump = tmp_path / f"{want.stem}.npy"
        proc = subprocess.run([sys.executable, str(ROOT / "tools/generate.py"), "--model", str(model), "--prompt-ids",
                               ids, "--max-new-tokens", str(NEW), "--no-stop-on-eos", "--json", "--dump-logits",
                               str(dump), *extra], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        want_ids, want_logits = transformers_run(want)
        assert report["tokens"] == want_ids and report["model"]["weight_formats"] == [want.stem.split(".")[-1]]
        assert float(np.abs(np.load(dump) - want_logits).max()) < 1e-3
