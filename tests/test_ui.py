"""The page UI in headless Chromium on SwiftShader: the default model loads by itself,
generation streams and finishes, Stop / Esc, error banners (bad model, unknown characters, no
WebGPU), text-only output (a model that writes HTML), the top-5 popup, keyboard use, a phone
viewport, dark mode, the Content-Security-Policy, and responsiveness during a 200-token run.

Most flows share one page (booting takes seconds on this machine); screenshots of the main states
go to tests/screenshots/ (git-ignored)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, new_guarded_page, run_page_py

pytestmark = pytest.mark.browser

SHOTS = ROOT / "tests" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MODELS = json.loads((ROOT / "weights" / "models.json").read_text(encoding="utf-8"))
# What the loader's own probes print by themselves (an absent optional file answers 404).
EXPECTED_CONSOLE = [r"Failed to load resource: the server responded with a status of 404"]

# Installed in every page before anything else runs: CSP violations, however they happen.
CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
                     line: e.lineNumber, sample: e.sample});
});
"""
# The payload a hostile model writes; it must show as text and never run.
PAYLOAD = '<img src=x onerror="window.__xss=1;document.title=\'pwned\'"><script>window.__xss=2</script>'


# ------------------------------------------------------------------------------------ helpers


class CspWatch:
    """Console lines about the Content Security Policy, and violation events (via CSP_PROBE)."""

    def __init__(self, page):
        self.console: list[str] = []
        page.on("console", lambda m: "Content Security Policy" in m.text and self.console.append(m.text))
        page.on("pageerror", lambda e: "Content Security Policy" in str(e) and self.console.append(str(e)))

    @staticmethod
    def events(page) -> list:
        return page.evaluate("() => window.__csp || []")


def open_page(context, url, guard_allow=()):
    context.add_init_script(CSP_PROBE)
    page, guard = new_guarded_page(context)
    for pattern in [*EXPECTED_CONSOLE, *guard_allow]:
        guard.allow(pattern)
    page.csp = CspWatch(page)
    page.goto(url)
    return page, guard


def wait_model(page, loads_before: int | None = None) -> None:
    if loads_before is None:
        page.wait_for_selector("body[data-model='loaded']", state="attached")
    else:
        page.wait_for_function("(n) => Number(document.body.dataset.loads || 0) > n", arg=loads_before)


def loads(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.loads || 0)"))


def runs(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.runs || 0)"))


def wait_run(page, before: int) -> None:
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=before)


def settings(page, **values) -> None:
    """Set the Settings fields: settings(page, max_new_tokens=5, greedy=True, ...)."""
    for name, value in values.items():
        field = f"#{name.replace('_', '-')}"
        if isinstance(value, bool):
            page.locator(field).set_checked(value)
        else:
            page.locator(field).fill(str(value))


def generate(page, prompt: str | None = None, **values) -> dict:
    """Fill the prompt and settings, click Generate, wait for the run to end; its outcome."""
    if prompt is not None:
        page.fill("#prompt", prompt)
    settings(page, **values)
    before = runs(page)
    page.click("#generate-button")
    wait_run(page, before)
    return outcome(page)


def outcome(page) -> dict:
    return page.evaluate("""() => ({
      state: document.body.dataset.gen,
      finish: document.querySelector('#stats').dataset.finish || null,
      prompt: document.querySelector('#output-prompt').textContent,
      text: document.querySelector('#output-text').textContent,
      tokens: document.querySelectorAll('#output-text .tok').length,
      stats: document.querySelector('#stats').innerText,
      banner: document.querySelector('#error-banner').hidden ? null : document.querySelector('#error-banner').innerText,
    })""")


def wait_tokens(page, n: int) -> None:
    """Wait until the run in progress has streamed n tokens (its own count, in #run-state)."""
    page.wait_for_function("""(n) => document.body.dataset.gen === 'running' &&
      Number((document.querySelector('#run-state').textContent.match(/Generating… (\\d+)/) || [0, 0])[1]) >= n""",
                           arg=n)


def shot(page, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def banner(page) -> str | None:
    b = page.locator("#error-banner")
    return None if b.is_hidden() else b.inner_text()


def make_echo_model(folder: Path, text: str) -> Path:
    """A 1-layer GPT-2 whose greedy continuation of text[0] is exactly text[1:].

    Token embeddings are zero and position p's embedding is the unit vector e_p, so after the
    final LayerNorm the hidden state at position p points along e_p; an untied lm_head row for
    character c has a large weight on every position p where text[p + 1] == c. Attention and MLP
    weights are zero, so the blocks pass the residual stream through unchanged."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted(set(text) | set("\nabcdefgh"))
    vocab = {c: i for i, c in enumerate(chars)}
    n = 128
    assert len(text) < n
    E, f32 = n, np.float32
    wpe = np.eye(n, E, dtype=f32)
    head = np.zeros((len(chars), E), f32)
    for p in range(len(text) - 1):
        head[vocab[text[p + 1]], p] = 10.0
    t = {
        "transformer.wte.weight": np.zeros((len(chars), E), f32),
        "transformer.wpe.weight": wpe,
        "transformer.ln_f.weight": np.ones(E, f32), "transformer.ln_f.bias": np.zeros(E, f32),
        "lm_head.weight": head,
    }
    h = "transformer.h.0."
    t.update({
        h + "ln_1.weight": np.ones(E, f32), h + "ln_1.bias": np.zeros(E, f32),
        h + "ln_2.weight": np.ones(E, f32), h + "ln_2.bias": np.zeros(E, f32),
        h + "attn.c_attn.weight": np.zeros((E, 3 * E), f32), h + "attn.c_attn.bias": np.zeros(3 * E, f32),
        h + "attn.c_proj.weight": np.zeros((E, E), f32), h + "attn.c_proj.bias": np.zeros(E, f32),
        h + "mlp.c_fc.weight": np.zeros((E, 4 * E), f32), h + "mlp.c_fc.bias": np.zeros(4 * E, f32),
        h + "mlp.c_proj.weight": np.zeros((4 * E, E), f32), h + "mlp.c_proj.bias": np.zeros(E, f32),
    })
    save_file(t, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "n_layer": 1, "n_head": 2, "n_embd": E, "n_positions": n, "vocab_size": len(chars), "n_inner": None,
        "layer_norm_epsilon": 1e-5, "tie_word_embeddings": False, "bos_token_id": vocab["\n"],
        "eos_token_id": None, "scale_attn_weights": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "char_vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    return folder


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def ui(browser, site_url):
    """One desktop page for the module, with the default model loaded by the page itself."""
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url.rstrip("/"))
    page, guard = open_page(context, site_url)
    page.guard = guard
    t0 = time.perf_counter()
    wait_model(page)
    page.boot_s = time.perf_counter() - t0
    yield page
    events = CspWatch.events(page)
    problems = guard.unexpected()
    console = list(page.csp.console)
    context.close()
    unexpected_csp = [e for e in events if "example.com" not in str(e.get("blocked"))]
    assert not unexpected_csp, f"CSP violations: {unexpected_csp}"
    assert not [c for c in console if "example.com" not in c], f"CSP console errors: {console}"
    assert not problems, "unexpected console/page errors:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------ tests


def test_default_model_loads_when_the_page_opens(ui):
    print(f"page open to the default model loaded: {ui.boot_s:.1f} s")
    state = ui.locator("#model-state")
    assert "Shakespeare" in state.inner_text() and state.get_attribute("data-state") == "loaded"
    info = ui.locator("#model-info").inner_text()
    assert "256 tokens" in info and "10.8M" in info and "F16" in info and "swiftshader" in info.lower()
    # The list is models.json, bundled model first and selected; the selection describes itself.
    options = ui.locator("#model-select option").all_inner_texts()
    assert len(options) == len(MODELS) and options[0].startswith(MODELS[0]["name"])
    assert ui.locator("#model-select").input_value() == "0"
    assert "Tiny Shakespeare" in ui.locator("#model-description").inner_text()
    assert ui.locator("#prompt").input_value() == MODELS[0]["prompt"]
    assert ui.locator("#max-new-tokens").get_attribute("max") == "255"  # context - 1
    assert ui.evaluate("() => window.pywebgpt.info().model.source").endswith("/weights/shakespeare-char/")
    assert banner(ui) is None
    shot(ui, "desktop-model-loaded")


def test_load_again_shows_progress_and_model_info(ui):
    ui.evaluate("""() => {
      window.__progress = [];
      new MutationObserver(() => window.__progress.push({
        text: document.querySelector('#load-text').textContent,
        value: document.querySelector('#load-progress').getAttribute('aria-valuetext'),
        visible: !document.querySelector('#load-box').hidden})).observe(
        document.querySelector('#load-box'), {subtree: true, childList: true, characterData: true, attributes: true});
    }""")
    before = loads(ui)
    ui.click("#load-button")
    wait_model(ui, before)
    assert ui.get_by_role("progressbar", include_hidden=True).count() == 1
    seen = ui.evaluate("() => window.__progress")
    texts = [s["text"] for s in seen if s["visible"]]
    assert texts, seen
    print(f"{len(seen)} progress updates, e.g. {texts[-3:]}")
    assert any("config.json" in t for t in texts), texts
    assert any(re.search(r"MB|kB|cache", t) for t in texts), texts
    assert ui.locator("#load-box").is_hidden()
    assert "Shakespeare" in ui.locator("#model-state").inner_text()


def test_cancel_load_keeps_the_previous_model(ui):
    """A load whose weights never arrive (the test holds the request): Cancel stops it, the
    bundled model stays loaded, and no error banner appears (cancelling is not an error)."""
    src = ROOT / "weights" / "shakespeare-char"
    held = []

    def serve(route):
        name = route.request.url.rsplit("/", 1)[-1]
        if name in ("config.json", "char_vocab.json"):
            route.fulfill(status=200, body=(src / name).read_bytes(), content_type="application/json")
        elif name == "model.safetensors":
            held.append(route)  # never answered: the load waits here until it is cancelled
        else:
            route.fulfill(status=404, body="not found")

    ui.route("**/held-model/**", serve)
    try:
        ui.locator("#more-sources").evaluate("(d) => { d.open = true; }")
        before = loads(ui)
        ui.fill("#custom-ref", "weights/held-model/")
        ui.click("#custom-load")
        ui.wait_for_function("() => !document.querySelector('#load-box').hidden")
        ui.wait_for_function("() => /Checking the weights/.test(document.querySelector('#load-text').textContent)")
        assert ui.locator("#load-title").inner_text() == "Loading weights/held-model/…"
        for _ in range(100):  # the route handler runs when Playwright next dispatches events
            if held:
                break
            ui.wait_for_timeout(100)
        assert held, "the weights request never arrived"
        ui.click("#cancel-load")
        wait_model(ui, before)
        state = ui.locator("#model-state").inner_text()
        assert "cancelled" in state and "Shakespeare (bundled) is loaded" in state, state
        assert banner(ui) is None
        assert ui.evaluate("() => window.pywebgpt.info().model.source").endswith("/weights/shakespeare-char/")
        # Esc cancels a load too.
        before = loads(ui)
        ui.click("#custom-load")
        ui.wait_for_function("() => /Checking the weights/.test(document.querySelector('#load-text').textContent)")
        ui.keyboard.press("Escape")
        wait_model(ui, before)
        assert "cancelled" in ui.locator("#model-state").inner_text()
    finally:
        ui.unroute("**/held-model/**")
        for route in held:
            try:
                route.abort()
            except Exception:  # noqa: BLE001 - the page already dropped the request
                pass
        ui.locator("#more-sources").evaluate("(d) => { d.open = false; }")


def test_generate_streams_tokens_and_reports_stats(ui):
    ui.evaluate("""() => {
      window.__counts = [];
      const out = document.querySelector('#output-text');
      new MutationObserver(() => window.__counts.push(out.querySelectorAll('.tok').length))
        .observe(out, {childList: true});
    }""")
    result = generate(ui, "ROMEO:", max_new_tokens=12, greedy=False, temperature=0.8, top_k=40, top_p=0.95,
                      repetition_penalty=1, seed=7)
    counts = ui.evaluate("() => window.__counts")
    assert result["state"] == "done" and result["finish"] == "length", result
    assert result["prompt"] == "ROMEO:" and result["tokens"] == 12 and len(result["text"]) == 12
    # Streamed: the spans arrived one by one, not all at the end.
    assert len(set(counts)) >= 8, counts
    stats = result["stats"]
    for part in ("Prompt: 6 tokens", "New: 12 tokens", "First token:", "tokens/s", "reached the token limit"):
        assert part in stats, stats
    # The settings reach the engine: the API with the same settings and seed gives the same text.
    api = ui.evaluate("""() => pywebgpt.generate('ROMEO:', {max_new_tokens: 12, temperature: 0.8, top_k: 40,
                                                           top_p: 0.95, seed: 7}).then(r => r.text)""")
    assert result["text"] == api, (result["text"], api)
    assert ui.locator("#copy-button").is_enabled()
    ui.click("#copy-button")
    ui.wait_for_function("() => document.querySelector('#copy-state').textContent !== ''")
    copied = ui.evaluate("() => navigator.clipboard.readText()")
    assert copied == "ROMEO:" + result["text"]
    shot(ui, "desktop-generated")


def test_stop_button_stops_a_generation(ui):
    settings(ui, max_new_tokens=200, greedy=True)
    before = runs(ui)
    ui.click("#generate-button")
    wait_tokens(ui, 4)
    assert ui.locator("#stop-button").is_enabled() and ui.locator("#generate-button").is_disabled()
    ui.click("#stop-button")
    wait_run(ui, before)
    result = outcome(ui)
    assert result["finish"] == "cancelled", result
    assert 4 <= result["tokens"] < 200 and "stopped" in result["stats"]
    assert ui.locator("#stop-button").is_disabled() and ui.locator("#generate-button").is_enabled()
    shot(ui, "desktop-stopped")


def test_probabilities_popup_on_hover_click_and_keyboard(ui):
    """On the greedy tokens of the run above (greedy runs report probabilities)."""
    n = ui.locator("#output-text .tok").count()
    assert n >= 4
    token = ui.locator("#output-text .tok").nth(2)
    token.hover()
    popup = ui.locator("#token-popup")
    popup.wait_for(state="visible")
    rows = popup.locator("tbody tr")
    assert rows.count() == 5
    probs = [float(t.rstrip("%")) for t in popup.locator("td.prob").all_inner_texts()]
    assert all(0 <= p <= 100 for p in probs) and probs == sorted(probs, reverse=True), probs
    assert popup.locator("tr.chosen").count() == 1  # greedy: the chosen token is the most likely
    assert popup.locator("tbody tr").first.get_attribute("class") == "chosen"
    assert token.get_attribute("aria-describedby") == "token-popup"
    shot(ui, "desktop-token-popup", full_page=False)
    # Click pins it: moving the mouse away keeps it open; clicking again closes it.
    token.click()
    ui.mouse.move(5, 5)
    assert popup.is_visible()
    token.click()
    assert popup.is_hidden()
    # Keyboard: focus the first token (roving tabindex), arrows move, the popup follows, Esc closes.
    ui.locator("#output-text .tok").first.focus()
    assert popup.is_visible() and "Token 1:" in popup.inner_text()
    ui.keyboard.press("ArrowRight")
    ui.keyboard.press("ArrowRight")
    assert ui.evaluate("() => document.activeElement.dataset.i") == "2"
    assert "Token 3:" in popup.inner_text()
    assert ui.locator("#output-text .tok[tabindex='0']").count() == 1
    ui.keyboard.press("End")
    assert ui.evaluate("() => document.activeElement.dataset.i") == str(n - 1)
    ui.keyboard.press("Enter")  # pins it
    ui.mouse.move(5, 5)
    assert popup.is_visible()
    ui.keyboard.press("Escape")
    assert popup.is_hidden()


def test_ctrl_enter_generates_escape_stops_and_busy_is_refused(ui):
    settings(ui, max_new_tokens=200, greedy=True)
    before = runs(ui)
    ui.locator("#prompt").focus()
    ui.keyboard.press("Control+Enter")
    wait_tokens(ui, 2)
    # A second generate while this one runs is refused by the engine (GenerationBusy).
    busy = ui.evaluate("() => pywebgpt.generate('ROMEO:', {max_new_tokens: 2}).then(() => null, (e) => e.message)")
    assert busy and "already running" in busy
    ui.keyboard.press("Escape")
    wait_run(ui, before)
    result = outcome(ui)
    assert result["finish"] == "cancelled" and 2 <= result["tokens"] < 200, result
    assert banner(ui) is None


def test_unknown_characters_banner_keeps_prompt_and_output_and_offers_a_fix(ui):
    previous = outcome(ui)
    assert previous["text"]
    bad = "ROMEO: é¿ and ü"
    result = generate(ui, bad, max_new_tokens=3)
    assert result["state"] == "failed"
    text = banner(ui)
    assert text and "'é'" in text and "'ü'" in text and "'¿'" in text, text
    assert ui.get_by_role("alert").is_visible()
    assert ui.locator("#prompt").input_value() == bad  # the prompt is never lost
    assert result["text"] == previous["text"] and result["prompt"] == previous["prompt"]  # nor the output
    shot(ui, "desktop-error-unknown-chars")
    fix = ui.locator("#error-fix")
    assert "Remove" in fix.inner_text()
    before = runs(ui)
    fix.click()
    wait_run(ui, before)
    assert ui.locator("#prompt").input_value() == "ROMEO:  and "
    after = outcome(ui)
    assert after["state"] == "done" and after["prompt"] == "ROMEO:  and " and after["banner"] is None


def test_bad_settings_and_empty_prompt_are_explained(ui):
    result = generate(ui, "ROMEO:", max_new_tokens=999, greedy=False, temperature=-1)
    text = banner(ui)
    assert "Check the settings" in text and "Max new tokens" in text and "Temperature" in text, text
    assert ui.locator("#max-new-tokens").get_attribute("aria-invalid") == "true"
    assert result["state"] == "failed"
    ui.click("#reset-settings")
    assert ui.locator("#max-new-tokens").get_attribute("aria-invalid") is None
    assert ui.locator("#temperature").input_value() == "0.8"
    result = generate(ui, "")
    assert "prompt is empty" in banner(ui)
    ui.click("#error-dismiss")
    assert banner(ui) is None


def test_bad_model_reference_shows_a_banner_and_keeps_the_model(ui):
    ui.guard.allow(r"example\.com")  # the browser's own report of the refused connection
    ui.locator("#more-sources summary").click()
    for ref, expect in [("weights/no-such-model/", "config.json"),
                        ("https://example.com/models/gpt/", "security policy"),
                        (PAYLOAD, "config.json")]:
        before = loads(ui)
        ui.fill("#custom-ref", ref)
        ui.click("#custom-load")
        wait_model(ui, before)
        text = banner(ui)
        assert text and "Could not load" in text and expect in text, (ref, text)
        assert "Shakespeare (bundled) is still loaded" in text
        assert "Shakespeare" in ui.locator("#model-state").inner_text()
        if ref == PAYLOAD:  # an address is text in the banner, never markup
            assert ui.locator("#error-banner img, #error-banner script").count() == 0
            assert "<img src=x" in text
            shot(ui, "desktop-error-bad-model")
    # The foreign URL was refused by the page's CSP (the only violation this module allows).
    events = CspWatch.events(ui)
    assert events and all(e["directive"] == "connect-src" and "example.com" in e["blocked"] for e in events), events
    assert ui.evaluate("() => window.__xss") is None
    ui.click("#error-dismiss")


def test_model_output_is_text_never_html(ui, tmp_path):
    """A model (picked as a local folder) whose greedy output is an HTML payload: the page shows
    the characters, creates no element from them and runs nothing."""
    folder = make_echo_model(tmp_path / "echo-model", PAYLOAD)
    ui.locator("#more-sources").evaluate("(d) => { d.open = true; }")
    before = loads(ui)
    ui.locator("#folder-input").set_input_files(folder)
    wait_model(ui, before)
    assert "echo-model" in ui.locator("#model-state").inner_text(), ui.locator("#model-state").inner_text()
    assert ui.locator("#max-new-tokens").get_attribute("max") == "127"
    result = generate(ui, PAYLOAD[0], max_new_tokens=len(PAYLOAD) - 1, greedy=True)
    assert result["prompt"] + result["text"] == PAYLOAD, result
    assert ui.locator("#output img, #output script").count() == 0
    assert ui.evaluate("() => [window.__xss, document.title.includes('pwned')]") == [None, False]
    assert ui.locator("#output").inner_text() == PAYLOAD
    # The popup shows candidate tokens as text too.
    ui.locator("#output-text .tok").first.hover()
    popup = ui.locator("#token-popup")
    popup.wait_for(state="visible")
    assert "i" in popup.locator("td.cand").first.inner_text()
    assert popup.locator("img, script").count() == 0
    shot(ui, "desktop-xss-as-text")
    # Injected straight into the UI's token renderer, as the engine's callback would.
    run_page_py(ui, f"""
from pywebgpt import ui
ui.APP._on_token({{"token": 1, "text": {PAYLOAD!r}, "top": [{{"id": 1, "prob": 1.0, "text": {PAYLOAD!r}}}]}})
True""")
    assert ui.locator("#output img, #output script, #token-popup img").count() == 0
    assert ui.evaluate("() => window.__xss") is None
    # Dropping files (a DataTransfer of File objects, as a drop from a file manager without folder
    # entries delivers them) reaches the loader with those files: here a folder without its
    # weights, which the loader refuses by name (a full load would only repeat the one above).
    files = {n: (folder / n).read_bytes().hex() for n in ("config.json", "char_vocab.json")}
    before = loads(ui)
    ui.evaluate("""(files) => {
      const dt = new DataTransfer();
      for (const [name, hex] of Object.entries(files)) {
        const bytes = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
        dt.items.add(new File([bytes], name));
      }
      const zone = document.querySelector('#drop-zone');
      zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
      zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", files)
    wait_model(ui, before)
    text = banner(ui)
    assert text and "Could not load dropped files" in text and "model.safetensors" in text, text
    assert "echo-model is still loaded" in text
    ui.click("#error-dismiss")
    # Back to the bundled model for the tests that follow, loaded by a script this time: the page
    # shows what the engine holds, whoever loaded it.
    ui.evaluate("() => pywebgpt.load('weights/shakespeare-char/')")
    ui.wait_for_function(
        "() => /Shakespeare \\(bundled\\) is loaded/.test(document.querySelector('#model-state').textContent)")
    assert ui.locator("#max-new-tokens").get_attribute("max") == "255"
    assert ui.locator("#model-select").input_value() == "0"


def test_every_control_has_a_label_and_tab_reaches_them_in_order(ui):
    unlabeled = ui.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 80))""")
    assert not unlabeled, unlabeled
    assert ui.get_by_label("Prompt", exact=True).count() == 1
    assert ui.get_by_role("log", name="Output").count() == 1
    assert ui.locator("#output").get_attribute("aria-live") == "polite"
    ui.locator("#more-sources").evaluate("(d) => { d.open = false; }")
    ui.click("#reset-settings")
    ui.locator(".skip-link").focus()
    order = []
    for _ in range(30):
        ui.keyboard.press("Tab")
        order.append(ui.evaluate("() => document.activeElement.id || document.activeElement.tagName"))
    print("tab order:", order)
    wanted = ["model-select", "load-button", "SUMMARY", "prompt", "generate-button", "SUMMARY", "max-new-tokens",
              "greedy", "temperature", "top-k", "top-p", "repetition-penalty", "seed", "stop-strings",
              "reset-settings", "copy-button", "output"]
    positions = [order.index(w) if w != "SUMMARY" else None for w in wanted]
    seq = [p for p in positions if p is not None]
    assert seq == sorted(seq), (order, wanted)
    assert order[0] == "model-select", order
    assert order[order.index("output") + 1] == "SPAN"  # then one token (roving tabindex), not all


def test_dark_mode(ui):
    light = ui.evaluate("() => getComputedStyle(document.body).backgroundColor")
    ui.emulate_media(color_scheme="dark")
    dark = ui.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert light != dark
    ui.locator("#output-text .tok").nth(1).hover()
    shot(ui, "desktop-dark")
    ui.emulate_media(color_scheme="light")


def test_page_stays_responsive_during_a_200_token_generation(ui):
    settings(ui, max_new_tokens=200, greedy=True)
    ui.fill("#prompt", "ROMEO:")
    ui.evaluate("""() => {
      const m = window.__resp = {long: [], lags: [], frames: [], inputs: []};
      m.observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) m.long.push(e.duration);
      });
      m.observer.observe({type: 'longtask', buffered: false});
      let expected = performance.now() + 50;
      m.timer = setInterval(() => {
        const now = performance.now(); m.lags.push(Math.max(0, now - expected)); expected = now + 50;
      }, 50);
      let last = performance.now();
      const frame = (t) => { m.frames.push(t - last); last = t; if (!m.done) requestAnimationFrame(frame); };
      requestAnimationFrame(frame);
      document.querySelector('#settings summary').addEventListener('click', (e) => {
        m.inputs.push(performance.now() - e.timeStamp);
      });
    }""")
    before = runs(ui)
    t0 = time.perf_counter()
    ui.click("#generate-button")
    # Meanwhile, a user clicks around: each click's handler delay is recorded (input delay).
    clicks, deadline = 0, time.perf_counter() + 600
    while runs(ui) == before and time.perf_counter() < deadline:
        ui.wait_for_timeout(1500)
        if runs(ui) == before:
            ui.click("#settings summary", timeout=30_000)
            clicks += 1
    wait_run(ui, before)
    wall = time.perf_counter() - t0
    m = ui.evaluate("""() => { const m = window.__resp; m.done = true; clearInterval(m.timer); m.observer.disconnect();
                       return {long: m.long, lags: m.lags, frames: m.frames, inputs: m.inputs}; }""")
    result = outcome(ui)
    if ui.locator("#settings").evaluate("(d) => !d.open"):
        ui.click("#settings summary")

    def pct(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0

    figures = {
        "tokens": result["tokens"], "wall_s": round(wall, 1),
        "long_tasks": len(m["long"]), "long_task_total_ms": round(sum(m["long"])),
        "long_task_max_ms": round(max(m["long"], default=0)),
        "timer_lag_p50_ms": round(pct(m["lags"], 0.5)), "timer_lag_p95_ms": round(pct(m["lags"], 0.95)),
        "timer_lag_max_ms": round(max(m["lags"], default=0)),
        "frames": len(m["frames"]), "frame_p95_ms": round(pct(m["frames"], 0.95)),
        "frame_max_ms": round(max(m["frames"], default=0)),
        "clicks": clicks, "input_delay_max_ms": round(max(m["inputs"], default=0)),
        "input_delay_p50_ms": round(pct(m["inputs"], 0.5)),
    }
    print("responsiveness during a 200-token generation:", json.dumps(figures))
    print(result["stats"])
    assert result["finish"] == "length" and result["tokens"] == 200
    # Sanity only: the page kept running timers and frames and answered every click.
    assert len(m["lags"]) > 10 and len(m["frames"]) > 10
    assert len(m["inputs"]) == clicks


def test_csp_is_set_and_enforced(ui):
    policy = ui.locator("meta[http-equiv='Content-Security-Policy']").get_attribute("content")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'self'"]
    assert set(directives["script-src"]) == {"'self'", "'unsafe-eval'", "'wasm-unsafe-eval'"}
    assert set(directives["worker-src"]) == {"'self'", "blob:"}  # the engine worker (web/engine-client.js)
    assert "'unsafe-inline'" not in policy and directives["object-src"] == ["'none'"]
    assert "https://huggingface.co" in directives["connect-src"]
    # Enforced: an inline script is refused (and reported), and nothing else was refused so far.
    before = [e for e in CspWatch.events(ui) if "example.com" not in e["blocked"]]
    assert not before, before
    ui.guard.allow("Content Security Policy")
    ui.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
                           document.body.appendChild(s); }""")
    ui.wait_for_function("() => window.__csp.some((e) => e.blocked === 'inline')")
    assert ui.evaluate("() => window.__inline") is None
    ui.evaluate("() => { window.__csp = window.__csp.filter((e) => e.blocked !== 'inline'); }")
    ui.csp.console.clear()


def test_phone_viewport(ui):
    """The shared page resized to a phone: one column in reading order, nothing wider than the
    screen, the details folded so that the prompt and Generate come first, the popup on screen."""
    ui.set_viewport_size(PHONE)
    try:
        ui.wait_for_function("() => !document.querySelector('#settings').open", timeout=10_000)
        ui.evaluate("() => window.scrollTo(0, 0)")
        width = ui.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"horizontal scroll on a phone: {width}px"
        assert not ui.locator("#settings").evaluate("(d) => d.open")
        assert not ui.locator("#model-details").evaluate("(d) => d.open")
        for sel in ("#model-select", "#prompt", "#generate-button", "#stop-button", "#output"):
            box = ui.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (sel, box)
        assert ui.locator("#generate-button").bounding_box()["height"] >= 40  # touch target
        assert ui.locator("#generate-button").bounding_box()["y"] < PHONE["height"]  # on the first screen
        ys = [ui.locator(s).bounding_box()["y"] for s in ("#model-panel", "#prompt-panel", "#settings-panel",
                                                        "#output-panel")]
        assert ys == sorted(ys), ys
        shot(ui, "phone-top", full_page=False)
        # The engine's token events, fed to the UI's renderer (real runs are tested above; here the
        # layout is what matters).
        run_page_py(ui, """
from pywebgpt import ui
ui.APP.clear_output("JULIET:")
for i, ch in enumerate("\\nO Romeo, Romeo! wherefore art thou Romeo?"):
    ui.APP._on_token({"token": i, "text": ch, "top": [{"id": i, "prob": 0.6, "text": ch},
                      {"id": 99, "prob": 0.25, "text": " "}, {"id": 98, "prob": 0.1, "text": "e"},
                      {"id": 97, "prob": 0.03, "text": "a"}, {"id": 96, "prob": 0.02, "text": "\\n"}]})
ui.APP.show_result({"prompt_ids": [0] * 7, "tokens": list(range(42)), "finish_reason": "length",
                    "timings": {"ttft_ms": 120.0, "decode_ms_per_token": 9.5, "prefill_tokens_per_s": 60.0,
                                "total_ms": 520.0}})
True""")
        ui.locator("#output").scroll_into_view_if_needed()
        ui.locator("#output-text .tok").nth(30).click()
        popup = ui.locator("#token-popup")
        popup.wait_for(state="visible")
        box = popup.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, box
        assert ui.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shot(ui, "phone-output", full_page=False)
        ui.locator("#output-text .tok").nth(30).click()
        shot(ui, "phone-full")
    finally:
        ui.set_viewport_size(DESKTOP)
    # The media query's change event reaches Python a task later: wait for it, then check.
    ui.wait_for_function("() => document.querySelector('#settings').open", timeout=10_000)
    assert ui.locator("#model-details").evaluate("(d) => d.open")


def test_no_webgpu_shows_a_banner_and_keeps_the_page_usable(browser, site_url):
    context = browser.new_context(viewport=DESKTOP)
    try:
        context.add_init_script("delete Navigator.prototype.gpu; delete navigator.gpu;")
        page, guard = open_page(context, site_url, guard_allow=["WebGPU|navigator.gpu|PyWebGPT failed to start"])
        page.wait_for_selector("body[data-ui='failed']", state="attached")
        alert = page.get_by_role("alert")
        assert alert.is_visible()
        text = alert.inner_text()
        assert "cannot run here" in text and "navigator.gpu" in text and "Chrome" in text, text
        assert page.locator("#generate-button").is_disabled() and page.locator("#load-button").is_disabled()
        page.fill("#prompt", "still editable")
        assert page.locator("#prompt").input_value() == "still editable"
        assert page.locator("#status").get_attribute("data-state") == "error"
        shot(page, "desktop-no-webgpu", full_page=False)
        assert not CspWatch.events(page)
        assert not guard.unexpected(), guard.unexpected()
    finally:
        context.close()


def test_built_site_under_a_sub_path_passes_the_smoke_flow(browser, tmp_path_factory):
    """The GitHub Pages build (tools/build_site.py) served under /repo/: the models list, the
    default model, a short generation, and not one request outside the sub-path."""
    import build_site
    from serve import Server

    site = tmp_path_factory.mktemp("pages") / "_site"
    build_site.build(site)
    assert (site / "weights" / "models.json").is_file(), "the build must ship the models list"
    server = Server(tmp_path_factory.mktemp("origin-root"), mounts={"/repo/": site}).start()
    url = f"http://{server.host}:{server.port}/repo/"
    context = browser.new_context(viewport=DESKTOP)
    try:
        urls: list[str] = []
        context.on("request", lambda r: urls.append(r.url))
        page, guard = open_page(context, url)
        wait_model(page)
        assert page.locator("#model-select option").count() == len(MODELS), "weights/models.json is not in the build"
        assert "Shakespeare" in page.locator("#model-state").inner_text()
        result = generate(page, "ROMEO:", max_new_tokens=3, greedy=True)
        assert result["state"] == "done" and result["tokens"] == 3, result
        blob = f"blob:http://{server.host}:{server.port}/"  # the engine worker's script (web/engine-client.js)
        outside = [u for u in urls if not u.startswith((url, blob))]
        assert not outside, outside
        assert not CspWatch.events(page) and not page.csp.console
        assert not guard.unexpected(), guard.unexpected()
    finally:
        context.close()
        server.stop()
