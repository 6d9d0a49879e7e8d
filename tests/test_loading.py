"""Model loading in the browser: references, the imitation Hub, caching, cancel, picked
folders, and the bad-input matrix. One page for the whole module; tiny models; nothing leaves
127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BOOT_TIMEOUT_MS, ROOT, ConsoleGuard, run_engine_js, run_py, wait_ready
from hub_server import Hub
from serve import Server
from tools.make_model import cached_model

pytestmark = pytest.mark.browser

SHAPE = dict(n_layer=2, n_head=2, n_embd=64, n_positions=64, vocab_size=100, tokenizer="char", init_std=0.1)
# Console noise that the browser prints by itself for the failures this module provokes on purpose.
EXPECTED_CONSOLE = [r"Failed to load resource", r"blocked by CORS policy", r"net::ERR_", r"status of 4\d\d",
                    r"status of 5\d\d"]

LOAD_JS = """async ([ref, opts]) => {
  const events = [];
  try {
    const info = await pywebgpt.load(ref, {...opts, onProgress: (p) => events.push(p)});
    return {info, events};
  } catch (e) {
    return {error: {name: e.name, message: e.message, code: e.code}, events};
  }
}"""

LOGITS_JS = """async () => {
  const r = await pywebgpt.generate('', {prompt_ids: [1, 2, 3, 4], max_new_tokens: 2, temperature: 0,
                                          return_logits: true, stop_on_eos: false});
  return {tokens: r.tokens, logits: r.logits_f32_b64};
}"""


# ------------------------------------------------------------------------------------ files


def read_st(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path: Path, header: dict | bytes, data: bytes) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def copy_model(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def convert_dtype(src: Path, dst: Path, dtype: str) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    copy_model(src, dst)
    tensors = {k: v.to(getattr(torch, dtype)).contiguous() for k, v in load_file(src / "model.safetensors").items()}
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def shard(src: Path, dst: Path) -> Path:
    from safetensors.numpy import load_file, save_file

    copy_model(src, dst)
    tensors = load_file(src / "model.safetensors")
    (dst / "model.safetensors").unlink()
    names = sorted(tensors)
    parts = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
             "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for file, keys in parts.items():
        save_file({k: tensors[k] for k in keys}, dst / file, metadata={"format": "pt"})
        weight_map.update({k: file for k in keys})
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return dst


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


def edit_header(folder: Path, fn) -> None:
    header, data = read_st(folder / "model.safetensors")
    result = fn(header, data)
    if result is not None:
        header, data = result
    write_st(folder / "model.safetensors", header, data)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loading")
    base = cached_model(tmp_path_factory.getbasetemp() / "models", **SHAPE)
    copy_model(base, root / "tiny")
    for f in ("generation_config.json", ".complete"):
        (root / "tiny" / f).unlink(missing_ok=True)
    return root


@pytest.fixture(scope="module")
def hub():
    server = Hub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(site_server, models):
    """The site with the test models mounted under /models/ (site_server has vendored the runtime)."""
    server = Server(ROOT, mounts={"/models/": models}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, site):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    guard = ConsoleGuard(page)
    for pattern in EXPECTED_CONSOLE:
        guard.allow(pattern)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(site.url)
    wait_ready(page)
    page.urls = urls
    yield page
    problems = guard.unexpected()
    foreign = [u for u in urls if not u.startswith(("http://127.0.0.1:", "data:", "blob:"))]
    context.close()
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)
    assert not foreign, f"requests outside 127.0.0.1: {foreign[:5]}"


def load(page, ref, **opts) -> dict:
    return page.evaluate(LOAD_JS, [ref, opts])


def ok(result) -> dict:
    assert "error" not in result, result["error"]
    return result["info"]


def logits(page) -> dict:
    return page.evaluate(LOGITS_JS)


def gpu_state(page) -> dict:
    return run_py(page, "{'live': gpu.live_buffers, 'bytes': gpu.bytes_allocated, "
                        "'source': engine.model.source if engine.model else None}")


# ------------------------------------------------------------------------------------ tests


def test_references_resolve_without_network(page):
    got = run_py(page, """
from pywebgpt.sources import resolve_reference as r, hub_id
[r('openai-community/gpt2'), r('gpt2/x', hub='http://127.0.0.1:9/'),
 r('https://huggingface.co/openai-community/gpt2'), r('https://huggingface.co/a/b/tree/dev'),
 r('weights/shakespeare-char', 'http://x.test/app/'), r('./models/m', 'http://x.test/app/index.html'),
 r('https://host.test/m'), hub_id('https://huggingface.co/a/b/resolve/main/')]
""")
    assert got == [
        "https://huggingface.co/openai-community/gpt2/resolve/main/",
        "http://127.0.0.1:9/gpt2/x/resolve/main/",
        "https://huggingface.co/openai-community/gpt2/resolve/main/",
        "https://huggingface.co/a/b/resolve/dev/",
        "http://x.test/app/weights/shakespeare-char/",
        "http://x.test/app/models/m/",
        "https://host.test/m/",
        "a/b",
    ]


def test_site_folder_loads_with_progress_and_an_honest_estimate(page, models):
    info = ok(result := load(page, "/models/tiny/", cache=False))
    assert info["n_layer"] == 2 and info["vocab_size"] == 100 and info["tokenizer"] == "CharTokenizer"
    size = (models / "tiny/model.safetensors").stat().st_size
    stats = info["load"]
    assert stats["file_bytes"] == size and stats["from_cache"] is False and 0 < stats["peak_js_bytes"] <= 2 * size
    assert abs(stats["gpu_bytes_estimate"] - info["gpu_bytes"]) <= 0.05 * info["gpu_bytes"], stats
    events = result["events"]
    phases = [e["phase"] for e in events]
    for phase in ("config", "tokenizer", "headers", "download", "upload", "done"):
        assert phase in phases, phases
    assert phases.index("headers") < phases.index("download") < phases.index("upload") < phases.index("done")
    last = [e for e in events if e["phase"] == "download"][-1]
    assert last["file"] == "model.safetensors" and last["loaded"] == last["total"] == size
    assert last["overall_loaded"] == last["overall_total"] == size and last["file_count"] == 1
    assert set(last) >= {"bytes_per_s", "eta_s", "from_cache"}
    assert logits(page)["tokens"]


def test_hub_cold_then_warm_load_counts_requests(page, hub, models):
    repo = hub.add("test/tiny", models / "tiny")
    hub.clear_log()
    cold = ok(result := load(page, repo, hub=hub.url))
    first = logits(page)
    assert cold["source"] == f"{hub.url}{repo}/resolve/main/"
    log = hub.requests(repo)
    weights = [e for e in log if e["path"].endswith("model.safetensors")]
    # a Range probe of the header (redirected to the CDN), then the whole file
    assert [(e["server"], e["status"]) for e in weights] == [("hub", 302), ("cdn", 206), ("hub", 302), ("cdn", 200)]
    assert weights[1]["range"] == "bytes=0-65535"
    assert not [e for e in log if e["status"] == 404], "a usual folder should cost no 404"
    assert cold["load"]["from_cache"] is False and not any(e["from_cache"] for e in result["events"])

    hub.clear_log()
    warm = ok(result := load(page, repo, hub=hub.url))
    # the second load asks only whether the weights are still the cached ones: one byte, by ETag
    assert {e["range"] for e in hub.requests()} == {"bytes=0-0"}, hub.requests()
    assert [e["path"].rsplit("/", 1)[-1] for e in hub.requests() if e["server"] == "cdn"] == ["model.safetensors"]
    assert warm["load"]["from_cache"] is True and warm["load"]["network_bytes"] <= 1
    assert any(e["phase"] == "download" and e["from_cache"] for e in result["events"])
    assert any("from the browser cache" in n for n in warm["notices"])
    assert logits(page) == first

    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    entry = next(m for m in listing["models"] if m["hub_id"] == repo)
    sizes = {p.name: p.stat().st_size for p in (models / "tiny").iterdir()}
    assert entry["complete"] is True
    assert {f["name"]: f["bytes"] for f in entry["files"]} == {n: sizes[n] for n in
                                                               ("config.json", "char_vocab.json", "model.safetensors")}
    assert entry["bytes"] == sum(f["bytes"] for f in entry["files"]) and listing["total_bytes"] >= entry["bytes"]

    cleared = page.evaluate("(hub) => pywebgpt.clearCache('test/tiny', {hub})", hub.url)
    assert cleared == {"deleted_files": 3, "freed_bytes": entry["bytes"]}
    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    assert not [m for m in listing["models"] if m["hub_id"] == repo]
    hub.clear_log()
    again = ok(load(page, repo, hub=hub.url))
    assert again["load"]["from_cache"] is False and hub.requests(repo)


def test_a_cached_model_changed_on_the_hub_is_downloaded_again_and_offline_uses_the_cache(page, models, tmp_path):
    """The cached copy is revalidated by ETag on each load: a weights file changed on the server
    (a new ETag) makes the folder download again, with a notice; offline the cached copy is used,
    with a notice, and generates the same."""
    import shutil

    folder = tmp_path / "tiny-changing"
    shutil.copytree(models / "tiny", folder)
    hub = Hub().start()
    try:
        repo = hub.add("test/changing", folder)
        ok(load(page, repo, hub=hub.url))
        first = logits(page)
        os.utime(folder / "model.safetensors", ns=(1, 10**18))  # same bytes, a new ETag
        again = ok(load(page, repo, hub=hub.url))
        assert again["load"]["from_cache"] is False, again["load"]
        assert any("changed on the server" in n for n in again["notices"]), again["notices"]
        assert logits(page) == first
        page.context.set_offline(True)
        try:
            offline = ok(load(page, repo, hub=hub.url))
        finally:
            page.context.set_offline(False)
        assert offline["load"]["from_cache"] is True
        assert any("could not be reached" in n for n in offline["notices"]), offline["notices"]
        assert logits(page) == first
        page.evaluate("([repo, hub]) => pywebgpt.clearCache(repo, {hub})", [repo, hub.url])
    finally:
        hub.stop()


def test_sharded_f16_bf16_and_picked_folders_load_the_same_model(page, hub, models):
    ok(load(page, "/models/tiny/", cache=False))
    reference = logits(page)

    shard(models / "tiny", models / "sharded")
    info = ok(result := load(page, "/models/sharded/", cache=False))
    assert logits(page) == reference
    assert {e["file"] for e in result["events"] if e["phase"] == "download"} == {
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert info["load"]["file_bytes"] == sum(p.stat().st_size for p in (models / "sharded").glob("*.safetensors"))

    # a folder picked with <input type=file webkitdirectory>, and the same files without their folder
    page.evaluate("""() => { for (const [id, dir] of [['picker', true], ['files', false]]) {
        const input = document.createElement('input'); input.type = 'file'; input.id = id; input.multiple = true;
        input.webkitdirectory = dir; input.hidden = true; document.body.append(input); } }""")
    page.set_input_files("#picker", models / "tiny")
    info = ok(load_files := page.evaluate("""async () => {
        const events = [];
        const info = await pywebgpt.load({files: document.getElementById('picker').files},
                                         {onProgress: (p) => events.push(p)});
        return {info, events, paths: Array.from(document.getElementById('picker').files, f => f.webkitRelativePath)};
    }"""))
    assert "tiny/config.json" in load_files["paths"]
    assert info["source"] == "picked folder tiny/" and info["load"]["from_cache"] is False
    assert any(e["phase"] == "download" and e["loaded"] == e["total"] for e in load_files["events"])
    assert logits(page) == reference
    page.set_input_files("#files", sorted((models / "sharded").iterdir()))
    ok({"info": page.evaluate("() => pywebgpt.load(document.getElementById('files').files)")})
    assert logits(page) == reference

    for dtype, name in (("float16", "F16"), ("bfloat16", "BF16")):
        convert_dtype(models / "tiny", models / name, dtype)
        info = ok(load(page, f"/models/{name}/", cache=False))
        assert info["dtype"] == name
        assert logits(page)["tokens"]
        if name == "BF16":
            assert any("BF16" in n and "widened to f32" in n for n in info["notices"])


def test_gpt2_bpe_tokenizer_from_vocab_merges_or_tokenizer_json(page, hub, tmp_path_factory):
    folder = cached_model(tmp_path_factory.getbasetemp() / "models", n_layer=1, n_head=2, n_embd=32, n_positions=32,
                          vocab_size=50257, dtype="float16", tokenizer="gpt2")
    root = tmp_path_factory.mktemp("bpe")
    pair = copy_model(folder, root / "pair")
    single = copy_model(folder, root / "single")
    vocab = json.loads((single / "vocab.json").read_text(encoding="utf-8"))
    merges = [line for line in (single / "merges.txt").read_text(encoding="utf-8").splitlines()[1:] if line]
    (single / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "special": True}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges}}), encoding="utf-8")
    (single / "vocab.json").unlink()
    (single / "merges.txt").unlink()
    for repo, path in (("bpe/pair", pair), ("bpe/single", single)):
        hub.add(repo, path)
        hub.clear_log()
        info = ok(load(page, repo, hub=hub.url, cache=False))
        assert info["tokenizer"] == "GPT2Tokenizer" and info["dtype"] == "F16"
        out = page.evaluate("() => pywebgpt.generate('Hello world', {max_new_tokens: 1, temperature: 0})")
        assert out["prompt_ids"] == [15496, 995]
        fetched = [(e["path"].rsplit("/", 1)[-1], e["status"]) for e in hub.requests(repo) if e["server"] == "hub"]
        if repo == "bpe/pair":
            assert ("vocab.json", 200) in fetched and ("merges.txt", 200) in fetched
            assert not [f for f in fetched if f[1] == 404]
        else:
            assert ("vocab.json", 404) in fetched and any(f[0] == "tokenizer.json" and f[1] < 400 for f in fetched)


def test_cancel_mid_download_frees_everything_and_keeps_the_previous_model(page, hub, models):
    ok(load(page, "/models/tiny/", cache=False))
    reference = logits(page)
    before = gpu_state(page)
    repo = hub.add("slow/tiny", models / "tiny", throttle=150_000)
    result = page.evaluate("""async ([ref, hub]) => {
        const events = []; let asked = false;
        try {
            await pywebgpt.load(ref, {hub, onProgress: (p) => {
                events.push(p);
                if (p.phase === 'download' && p.loaded > 0 && !asked) {
                    asked = true; setTimeout(() => pywebgpt.cancelLoad(), 0);
                }
            }});
            return {events};
        } catch (e) { return {error: {name: e.name, message: e.message, code: e.code}, events}; }
    }""", [repo, hub.url])
    assert result.get("error", {}).get("code") == "cancelled", result.get("error")
    assert result["error"]["name"] == "LoadError"
    size = (models / "tiny/model.safetensors").stat().st_size
    partial = [e["loaded"] for e in result["events"] if e["phase"] == "download"]
    assert partial and max(partial) < size
    assert gpu_state(page) == before
    assert logits(page) == reference
    assert page.evaluate("() => pywebgpt.cancelLoad()") is False  # nothing left to cancel
    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    cached = [f["name"] for m in listing["models"] if m["hub_id"] == repo for f in m["files"]]
    assert "model.safetensors" not in cached, "a partial download was cached"


def test_network_drop_is_reported_and_nothing_partial_is_cached(page, hub, models):
    ok(load(page, "/models/tiny/", cache=False))
    logits(page)
    before = gpu_state(page)
    repo = hub.add("drop/tiny", models / "tiny", drop_after={"model.safetensors": 100_000})
    result = load(page, repo, hub=hub.url)
    error = result["error"]
    assert error["code"] == "network" and "model.safetensors" in error["message"], error
    assert "broke off" in error["message"] or "could not fetch" in error["message"], error
    assert gpu_state(page) == before
    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    cached = [f["name"] for m in listing["models"] if m["hub_id"] == repo for f in m["files"]]
    assert "model.safetensors" not in cached


def test_full_quota_is_a_notice_and_the_load_goes_on(page, hub, models):
    repo = hub.add("quota/tiny", models / "tiny")
    run_engine_js(page, """globalThis.__put = Cache.prototype.put;
        Cache.prototype.put = function () {
            return Promise.reject(new DOMException('the quota is full (test)', 'QuotaExceededError'));
        };""")
    try:
        info = ok(load(page, repo, hub=hub.url))
    finally:
        run_engine_js(page, "Cache.prototype.put = globalThis.__put;")
    assert any("quota" in n and "not cached" in n for n in info["notices"]), info["notices"]
    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    assert not [m for m in listing["models"] if m["hub_id"] == repo and m["complete"]]
    assert logits(page)["tokens"]


def test_server_quirks_that_must_still_load(page, hub, models):
    # no Range support: the probe's 200 response is cut after the header; Content-Range unreadable;
    # missing files answered with an HTML page and status 200; extra tensors (ignored, with a notice)
    folder = copy_model(models / "tiny", models / "extra")
    edit_header(folder, lambda h, d: ({**h, "transformer.h.0.attn.rotary.inv_freq":
                                       {"dtype": "F32", "shape": [4], "data_offsets": [len(d), len(d) + 16]}},
                                      d + bytes(16)))
    cases = {
        "quirk/norange": (models / "tiny", {"range": False}),
        "quirk/noexpose": (models / "tiny", {"expose": False}),
        "quirk/html404": (models / "tiny", {"html_404": True}),
        "quirk/extra": (folder, {}),
    }
    for repo, (path, options) in cases.items():
        hub.add(repo, path, **options)
        hub.clear_log()
        info = ok(load(page, repo, hub=hub.url, cache=False))
        assert logits(page)["tokens"]
        if repo == "quirk/norange":
            probe = [e for e in hub.requests(repo) if e["range"] and e["server"] == "cdn"]
            assert probe and probe[0]["status"] == 200
        if repo == "quirk/extra":
            assert any("ignored 1 tensor" in n and "rotary" in n for n in info["notices"]), info["notices"]


# ------------------------------------------------------------------------------------ the matrix


def _matrix(models: Path, binding_limit: int) -> dict:
    """case -> (how to make the folder from a copy of tiny, hub options, code, message parts)."""

    def drop(name):
        return lambda f: (f / name).unlink()

    def config(**changes):
        return lambda f: edit_config(f, **changes)

    def text(name, content):
        return lambda f: (f / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    def header(fn):
        return lambda f: edit_header(f, fn)

    def without(key):
        def fn(h, d):
            h = dict(h)
            info = h.pop(key)
            b, e = info["data_offsets"]
            for v in h.values():
                if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] >= e:
                    v["data_offsets"] = [v["data_offsets"][0] - (e - b), v["data_offsets"][1] - (e - b)]
            return h, d[:b] + d[e:]
        return fn

    def set_entry(key, **fields):
        def fn(h, d):
            h[key] = {**h[key], **fields}
        return fn

    def overlap(h, d):
        entries = sorted((v["data_offsets"][0], k) for k, v in h.items() if k != "__metadata__")
        second = entries[1][1]  # the tensor stored second, moved 4 bytes back into the first one
        b, e = h[second]["data_offsets"]
        h[second]["data_offsets"] = [b - 4, e - 4]

    def i8_tensor(folder):
        from safetensors.numpy import load_file, save_file

        tensors = load_file(folder / "model.safetensors")
        tensors["transformer.ln_f.weight"] = np.zeros(tensors["transformer.ln_f.weight"].shape, np.int8)
        save_file(tensors, folder / "model.safetensors")

    def truncate(folder):
        path = folder / "model.safetensors"
        path.write_bytes(path.read_bytes()[:-1000])

    def header_too_long(folder):
        path = folder / "model.safetensors"
        raw = path.read_bytes()
        path.write_bytes(struct.pack("<Q", len(raw) + 10) + raw[8:])

    def several(*fns):
        def fn(folder):
            for f in fns:
                f(folder)
        return fn

    lfs = (b"version https://git-lfs.github.com/spec/v1\n"
           b"oid sha256:4c1f2e0a9b1d3c5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5\n"
           b"size 548105171\n")
    c = "config.json"
    return {
        "missing-config": (drop(c), {}, "http", ["config.json", "not found", "404"]),
        "config-not-json": (text(c, "{\"n_layer\": 2,"), {}, "format", ["config.json", "not valid JSON"]),
        "config-lfs-pointer": (text(c, lfs), {}, "format", ["config.json", "Git LFS pointer"]),
        "config-wrong-type": (config(n_layer="2"), {}, "format", ["config.json", "'n_layer' must be an integer"]),
        "config-missing-key": (config(n_embd=...), {}, "format", ["config.json", "missing key 'n_embd'"]),
        "config-negative": (config(n_head=-2), {}, "format", ["'n_head' must be positive"]),
        "not-supported": (config(model_type="t5"), {}, "format", ["'model_type' is 't5'", "supported: ", "llama"]),
        "llama-missing-key": (config(model_type="llama"), {}, "format", ["config.json", "missing key 'hidden_size'"]),
        "absurd-layers": (config(n_layer=10**9), {}, "too_large", ["n_layer", "1,000,000,000"]),
        "too-large-for-device": (config(n_layer=400, n_embd=2048, n_head=16), {}, "too_large",
                                 ["GPU memory", "maxGpuBytes"]),
        "buffer-over-limit": (config(n_positions=binding_limit // 128 + 1000), {}, "too_large",
                              ["wpe.weight", "one GPU buffer", "max"]),
        "vocab-mismatch": (text("char_vocab.json", json.dumps({chr(0x4E00 + i): i for i in range(150)})), {},
                           "format", ["char_vocab.json", "150 tokens", "vocab_size is 100"]),
        "no-tokenizer": (drop("char_vocab.json"), {}, "format", ["no tokenizer", "char_vocab.json"]),
        "no-weights": (drop("model.safetensors"), {}, "format", ["no weights", "model.safetensors.index.json"]),
        "pytorch-only": (several(drop("model.safetensors"), text("pytorch_model.bin", b"PK\x03\x04")), {}, "format",
                         ["no weights", "tools/convert.py"]),
        "weights-lfs-pointer": (text("model.safetensors", lfs), {}, "format",
                                ["model.safetensors", "Git LFS pointer", "548,105,171 bytes", "git lfs pull"]),
        "weights-html-200": (drop("model.safetensors"), {"html_404": True}, "http",
                             ["model.safetensors", "web page (HTML)"]),
        "config-html-200": (drop(c), {"html_404": True}, "http", ["config.json", "web page (HTML)"]),
        "empty-weights": (text("model.safetensors", b""), {}, "format", ["model.safetensors", "empty"]),
        "header-longer-than-file": (header_too_long, {}, "format", ["model.safetensors", "larger than the file"]),
        "header-not-json": (lambda f: write_st(f / "model.safetensors", b"{not json at all}", bytes(64)), {},
                            "format", ["model.safetensors", "not valid JSON"]),
        "tensor-missing": (header(without("transformer.h.1.mlp.c_fc.bias")), {}, "format",
                           ["missing tensor", "h.1.mlp.c_fc.bias"]),
        "wrong-shape": (header(set_entry("transformer.h.0.attn.c_attn.weight", shape=[192, 64])), {}, "format",
                        ["transformer.h.0.attn.c_attn.weight", "[192, 64]", "[64, 192]", "transposed"]),
        "dtype-i8": (i8_tensor, {}, "format", ["transformer.ln_f.weight", "dtype I8", "supported: F32, F16, BF16"]),
        "unknown-dtype": (header(set_entry("transformer.ln_f.bias", dtype="Q4")), {}, "format",
                          ["transformer.ln_f.bias", "unknown dtype 'Q4'"]),
        "offsets-overlap": (header(overlap), {}, "format", ["model.safetensors", "overlap"]),
        "offsets-out-of-bounds": (truncate, {}, "format", ["model.safetensors", "out of bounds", "truncated"]),
        "offsets-not-covering": (lambda f: (f / "model.safetensors").write_bytes(
            (f / "model.safetensors").read_bytes() + bytes(32)), {}, "format", ["belong to no tensor"]),
        "truncated-no-range": (truncate, {"range": False}, "format", ["model.safetensors", "out of bounds"]),
        "http-500": (lambda f: None, {"status": {"model.safetensors": 500}}, "http",
                     ["model.safetensors", "HTTP 500", "simulated error 500"]),
        "http-401-gated": (lambda f: None, {"status": {"config.json": 401}}, "http", ["private or gated"]),
        "cors-refused": (lambda f: None, {"cors": False}, "network", ["config.json", "CORS"]),
        "shard-missing": (lambda f: (shard(models / "tiny", f), (f / "model-00002-of-00002.safetensors").unlink()),
                          {}, "format", ["model-00002-of-00002.safetensors", "not found", "lists it"]),
        "index-not-json": (lambda f: (shard(models / "tiny", f), (f / "model.safetensors.index.json").write_text("[")),
                           {}, "format", ["model.safetensors.index.json", "not valid JSON"]),
    }


def test_bad_input_matrix(page, hub, models):
    ok(load(page, "/models/tiny/", cache=False))
    reference = logits(page)
    before = gpu_state(page)
    failures, timings, messages = [], {}, {}
    limit = min(run_py(page, "[gpu.limits['maxStorageBufferBindingSize'], gpu.limits['maxBufferSize']]"))
    for case, (make, options, code, parts) in _matrix(models, limit).items():
        folder = copy_model(models / "tiny", models / "bad" / case)
        make(folder)
        repo = hub.add(f"bad/{case}", folder, **options)
        t0 = time.perf_counter()
        result = load(page, repo, hub=hub.url)
        timings[case] = time.perf_counter() - t0
        error = result.get("error")
        if error is None:
            failures.append(f"{case}: loaded, but should have failed")
            continue
        message = error["message"]
        messages[case] = message
        missing = [p for p in parts if p not in message]
        if error["name"] != "LoadError" or error["code"] != code or missing or "\n" in message:
            failures.append(f"{case}: code {error['code']!r} (want {code!r}), missing {missing} in: {message}")
        after = gpu_state(page)
        if after != before:
            failures.append(f"{case}: GPU state changed: {before} -> {after}")
    print("\n".join(f"{k} ({v * 1000:.0f} ms): {messages.get(k)}" for k, v in timings.items()))
    assert not failures, "\n".join(failures)
    assert logits(page) == reference, "the previous model must stay usable"
    ok(load(page, "/models/tiny/", cache=False))
    assert logits(page) == reference


def test_picked_files_that_are_not_a_model(page, models, tmp_path):
    before = gpu_state(page)
    unrelated = tmp_path / "holiday"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("hello")
    (unrelated / "photo.png").write_bytes(b"\x89PNG....")
    two = tmp_path / "two"
    copy_model(models / "tiny", two / "a")
    copy_model(models / "tiny", two / "b")
    page.evaluate("""() => { if (!document.getElementById('dir2')) { const i = document.createElement('input');
        i.type = 'file'; i.id = 'dir2'; i.multiple = true; i.webkitdirectory = true; i.hidden = true;
        document.body.append(i); } }""")
    pick = """async () => { try { await pywebgpt.load({files: document.getElementById('dir2').files}); return null; }
                           catch (e) { return {name: e.name, code: e.code, message: e.message}; } }"""
    page.set_input_files("#dir2", unrelated)
    error = page.evaluate(pick)
    assert error["code"] == "input" and "none of the 2 picked files is config.json" in error["message"], error
    assert "holiday/notes.txt" in error["message"]
    page.set_input_files("#dir2", two)
    error = page.evaluate(pick)
    assert error["code"] == "input" and "2 model folders" in error["message"], error
    error = page.evaluate("""async () => { try { await pywebgpt.load({files: []}); }
                             catch (e) { return {code: e.code, message: e.message}; } }""")
    assert error["code"] == "input" and "no files were picked" in error["message"]
    assert gpu_state(page) == before


def test_concurrent_load_is_refused(page, hub, models):
    repo = hub.add("slow2/tiny", models / "tiny", throttle=300_000)
    result = page.evaluate("""async ([ref, hub]) => {
        const first = pywebgpt.load(ref, {hub, cache: false});
        await new Promise((r) => setTimeout(r, 50));
        let second;
        try { await pywebgpt.load('/models/tiny/'); second = 'loaded'; } catch (e) { second = e.code; }
        const info = await first;
        return {second, first: info.source};
    }""", [repo, hub.url])
    assert result["second"] == "busy" and result["first"].endswith("/slow2/tiny/resolve/main/")


def test_hub_server_imitation(hub, models):
    """The test server itself: redirect for weights, CORS, Range, ETag, 404 as the Hub answers it."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    hub.add("unit/tiny", models / "tiny")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(hub.url + "unit/tiny/resolve/main/model.safetensors")
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as e:
        assert e.code == 302 and e.headers["Location"].startswith(hub.cdn_url)
        location = e.headers["Location"]
    request = urllib.request.Request(location, headers={"Range": "bytes=0-7"})
    with urllib.request.urlopen(request) as r:
        size = (models / "tiny/model.safetensors").stat().st_size
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 0-7/{size}"
        assert r.headers["Access-Control-Allow-Origin"] == "*" and "Content-Range" in r.headers[
            "Access-Control-Expose-Headers"]
        assert r.headers["ETag"] and len(r.read()) == 8
    try:
        urllib.request.urlopen(hub.url + "unit/tiny/resolve/main/nope.json")
    except urllib.error.HTTPError as e:
        assert e.code == 404 and e.headers["X-Error-Code"] == "EntryNotFound"


@pytest.mark.parametrize("runtime", ["browser", "node"])
def test_generate_cli_bad_model_is_one_line(runtime, models, tmp_path):
    if runtime == "node" and not (ROOT / "node_modules/webgpu").exists():
        pytest.skip("node_modules/webgpu missing (npm ci)")
    bad = copy_model(models / "tiny", tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
    proc = subprocess.run([sys.executable, str(ROOT / "tools/generate.py"), "--runtime", runtime, "--model", str(bad),
                           "--prompt", "x"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: model.safetensors: ") and "Git LFS pointer" in lines[0], \
        proc.stderr


