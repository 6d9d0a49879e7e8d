"""A model's weights stream to the GPU tensor by tensor: JS never holds a whole weights file, for a
download (written to the cache as it streams), a cached load and a picked folder, and the model
generates what the numpy reference does; a load cancelled mid-file frees every GPU buffer it made
and caches nothing. One page; one small model whose file is many times its largest tensor."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from conftest import mounted_site_page, run_py
from hub_server import Hub
from reference import greedy, load_hf_folder
from tools.make_model import cached_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# 8 layers of 256: a 27 MB F32 file whose largest tensor (the token table) is 1.5 MB
SHAPE = dict(n_layer=8, n_head=4, n_embd=256, n_positions=64, vocab_size=1500, tokenizer="char", init_std=0.1)
PROMPT = [5, 17, 300, 42]
NEW_TOKENS = 4
CHUNK_ALLOWANCE = 2 << 20  # a stream chunk (Chromium hands out up to about 1 MiB at once)

LOAD_JS = """async ([ref, opts]) => {
  try {
    const info = await pywebgpt.load(ref, opts);
    const r = await pywebgpt.generate('', {prompt_ids: %s, max_new_tokens: %d, temperature: 0,
                                          return_logits: true, stop_on_eos: false});
    return {load: info.load, tokens: r.tokens, logits: r.logits_f32_b64, vocab: r.vocab_size};
  } catch (e) { return {error: {message: e.message, code: e.code}}; }
}""" % (json.dumps(PROMPT), NEW_TOKENS)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return cached_model(tmp_path_factory.getbasetemp() / "models", **SHAPE)


@pytest.fixture(scope="module")
def hub():
    server = Hub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, site_server, model):
    with mounted_site_page(browser, {"/models/": model.parent},
                           allow=[r"Failed to load resource", r"net::ERR_"]) as page:
        yield page


def largest_tensor(path) -> int:
    """The largest tensor's bytes, from the safetensors header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return max(e - b for key, value in header.items() if key != "__metadata__" for b, e in [value["data_offsets"]])


def js_bound(page, weights) -> int:
    """What JS may hold at once while streaming: the largest group of tensors handed over together,
    the bytes waiting for the cache (one chunk over its mark at most), and the chunk in hand: nothing
    that grows with the file."""
    group_bytes = run_py(page, "from pywebgpt.loader import GROUP_BYTES\nGROUP_BYTES")
    tap_queue = page.evaluate("() => pywebgptFetch.TAP_QUEUE")
    return max(largest_tensor(weights), group_bytes) + tap_queue + 2 * CHUNK_ALLOWANCE


def check_output(result, model):
    assert "error" not in result, result["error"]
    cfg, weights = load_hf_folder(model)
    ids, logits = greedy(weights, cfg, PROMPT, NEW_TOKENS)
    assert result["tokens"] == ids
    got = np.frombuffer(base64.b64decode(result["logits"]), "<f4").reshape(NEW_TOKENS, result["vocab"])
    np.testing.assert_allclose(got, logits, atol=2e-3, rtol=2e-3)


def gpu_state(page) -> dict:
    return run_py(page, "{'live': gpu.live_buffers, 'bytes': gpu.bytes_allocated}")


def test_download_cached_and_picked_loads_hold_a_few_tensors_not_the_file(page, hub, model):
    weights = model / "model.safetensors"
    size = weights.stat().st_size
    bound = js_bound(page, weights)
    assert bound < size / 3, "the test model's file must be much larger than its largest tensor"
    repo = hub.add("stream/model", model)

    download = page.evaluate(LOAD_JS, [repo, {"hub": hub.url}])
    check_output(download, model)
    assert download["load"]["from_cache"] is False and download["load"]["file_bytes"] == size
    cached = page.evaluate(LOAD_JS, [repo, {"hub": hub.url}])
    check_output(cached, model)
    assert cached["load"]["from_cache"] is True

    page.evaluate("""() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'stream-pick';
        i.multiple = true; i.webkitdirectory = true; i.hidden = true; document.body.append(i); }""")
    page.set_input_files("#stream-pick", model)
    picked = page.evaluate(LOAD_JS.replace("pywebgpt.load(ref, opts)",
                                           "pywebgpt.load({files: document.getElementById('stream-pick').files})"),
                           [None, {}])
    check_output(picked, model)
    for name, result in (("download", download), ("cached", cached), ("picked", picked)):
        peak = result["load"]["peak_js_bytes"]
        assert 0 < peak <= bound, f"{name}: JS held {peak:,} bytes at once, over {bound:,} (file {size:,})"
    page.evaluate("([repo, hub]) => pywebgpt.clearCache(repo, {hub})", [repo, hub.url])


def test_cancel_mid_file_frees_the_gpu_buffers_and_caches_nothing(page, hub, model):
    before = gpu_state(page)
    size = (model / "model.safetensors").stat().st_size
    repo = hub.add("stream/slow", model, throttle=4_000_000)
    result = page.evaluate("""async ([ref, hub, half]) => {
        let asked = false, loaded = 0, live = null;
        try {
            await pywebgpt.load(ref, {hub, onProgress: (p) => {
                if (p.phase !== 'download') return;
                loaded = p.loaded;
                if (p.loaded > half && !asked) { asked = true; setTimeout(() => pywebgpt.cancelLoad(), 0); }
            }});
            return {loaded};
        } catch (e) { return {error: {message: e.message, code: e.code}, loaded}; }
    }""", [repo, hub.url, size // 2])
    assert result.get("error", {}).get("code") == "cancelled", result
    assert size // 2 < result["loaded"] < size
    assert gpu_state(page) == before
    url = f"{hub.url}{repo}/resolve/main/model.safetensors"
    assert page.evaluate("(url) => pywebgptFetch.cacheInfo(url)", url) is None, "a partial file was cached"
    listing = page.evaluate("(hub) => pywebgpt.cachedModels({hub})", hub.url)
    assert not [f for m in listing["models"] if m["hub_id"] == repo for f in m["files"]
                if f["name"] == "model.safetensors"]
