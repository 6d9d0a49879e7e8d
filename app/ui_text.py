"""The page's words and numbers: everything the UI shows or parses that does not touch the DOM.

Standard library only and no `js`: CPython imports it (tests/test_ui_text.py), Pyodide runs it.
app/ui*.py put these strings on the page (as text, never HTML) and read the form values through
these parsers. Sizes, counts and durations that are unknown (None) or not finite show as "?".
"""

from __future__ import annotations

import json
import math
import re

MODELS_URL = "weights/models.json"
FALLBACK_MODELS = [{
    "id": "shakespeare-char", "name": "Shakespeare (character-level, bundled)", "source": "weights/shakespeare-char/",
    "size_bytes": None, "dtype": "F16", "tokenizer": "char", "prompt": "ROMEO:",
    "description": "The bundled character-level model trained on Tiny Shakespeare.",
}]
# Settings field id -> the value "Reset to defaults" puts there (before the model's own defaults).
DEFAULTS = {"max-new-tokens": "200", "temperature": "0.8", "top-k": "40", "top-p": "1",
            "repetition-penalty": "1", "seed": "", "stop-strings": "", "greedy": False}
NUMBER_FIELDS = ("max-new-tokens", "temperature", "top-k", "top-p", "repetition-penalty", "seed")
# generation_config.json's sampling keys (the engine's info().model.generation_defaults) -> field id
GENERATION_DEFAULT_FIELDS = {"temperature": "temperature", "top_k": "top-k", "top_p": "top-p",
                             "repetition_penalty": "repetition-penalty"}
LOW_PROBABILITY = 0.1
FINISH_TEXT = {"length": "reached the token limit", "eos": "end of text", "stop": "stop string",
               "cancelled": "stopped"}
LOAD_PHASES = {"config": "Reading config.json", "tokenizer": "Reading the tokenizer",
               "headers": "Checking the weights", "cache": "Reading from the browser cache",
               "upload": "Uploading the weights to the GPU",
               "compile": "Compiling the GPU kernels (first run)", "done": "Done"}
LOAD_HINTS = {
    "http": "Check the model id or address. Private or gated Hub models cannot be loaded from the page: "
            "download the folder and load it from your computer.",
    "network": "Check your connection and the address. A server on another site must allow cross-origin "
               "requests (CORS), and this page only connects to itself, the Hugging Face Hub and localhost.",
    "format": "This folder is not a GPT-2-family model in the Hugging Face layout (config.json, "
              "model.safetensors, tokenizer files). tools/convert.py converts other checkpoints.",
    "too_large": "Try a smaller model, such as the bundled Shakespeare model or distilgpt2.",
    "memory": "Close other tabs or try a smaller model.",
    "gpu": "The GPU refused the model: try a smaller one, or reload the page.",
    "input": "Pick a model from the list, type a Hub id such as openai-community/gpt2, or choose a folder.",
    "busy": "Wait for the current load to finish, or cancel it.",
}
LOAD_HINT_OTHER = "Check the model and try again, or pick another model."
FOREIGN_HINT = ("This page's security policy lets it download models only from this site, the Hugging Face Hub "
                "and localhost. Download the model folder and load it from your computer instead.")
EMPTY_PROMPT = ("The prompt is empty", "Write something for the model to continue.",
                "For the Shakespeare model, try a name in capitals followed by a colon, like ROMEO:")
NO_MODEL_GIVEN = ("No model given", "Type a Hugging Face model id or the URL of a model folder.",
                  "For example openai-community/gpt2, or https://huggingface.co/distilbert/distilgpt2.")
SETTINGS_HINT = "Fix the highlighted fields, or use Reset to defaults."
HUB_ID = re.compile(r"[\w][\w.-]*/[\w][\w.-]*")
DEFAULT_CONTEXT = 1024
DEFAULT_VOCAB = 50257


# ------------------------------------------------------------------------------ numbers


def finite(value) -> float | None:
    """value as a finite float, or None (None, NaN, infinities, or not a number at all)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def size_text(n) -> str:
    """Bytes for people: 1.52 GB, 549.6 MB, 22 kB, 512 B."""
    n = finite(n)
    if n is None:
        return "?"
    size = abs(n)
    for limit, unit, digits in ((1e12, "TB", 2), (1e9, "GB", 2), (1e6, "MB", 1), (1e3, "kB", 0)):
        if size >= limit:
            return f"{n / limit:.{digits}f} {unit}"
    return f"{n:.0f} B"


def count_text(n) -> str:
    """A count in short form: 10.8M, 124.4M, 1.24B, 512."""
    n = finite(n)
    if n is None:
        return "?"
    size = abs(n)
    for limit, unit, digits in ((1e9, "B", 2), (1e6, "M", 1), (1e3, "k", 1)):
        if size >= limit:
            return f"{n / limit:.{digits}f}{unit}"
    return f"{n:.0f}"


def duration_text(s) -> str:
    """A time left: under a second, 42 s, 3 min, 1.5 h."""
    s = finite(s)
    if s is None:
        return "?"
    if s < 1:
        return "under a second"
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def context_of(info: dict | None) -> int:
    """How many tokens the loaded model holds (its `context`, else n_positions)."""
    info = info or {}
    return int(info.get("context") or info.get("n_positions") or DEFAULT_CONTEXT)


def max_new_tokens_limit(info: dict | None) -> int:
    return max(1, context_of(info) - 1)


# ------------------------------------------------------------------------------ text


def visible(text: str) -> str:
    """A token's text made visible in a table cell: spaces, newlines and tabs as symbols."""
    if text == "":
        return "(part of a character)"
    return (text.replace("\r", "\u240d").replace("\n", "\u21b5").replace("\t", "\u21e5")
            .replace(" ", "\u2423"))


def unescape_stop(line: str) -> str:
    r"""Stop strings are typed one per line; \n, \t and \\ are escapes."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            if nxt in "nt\\":
                out.append({"n": "\n", "t": "\t", "\\": "\\"}[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def stop_strings(text: str) -> list:
    """The Stop strings field: one per line, escapes undone, empty lines left out."""
    return [s for s in (unescape_stop(line) for line in text.split("\n")) if s]


def sentence(message: str) -> str:
    """An engine message as a sentence on the page (a message may start with a file name, kept)."""
    message = message.strip()
    first, space, _ = message.partition(" ")
    if space and first.isalpha() and first.islower():  # a word, not a file name such as config.json
        message = message[:1].upper() + message[1:]
    return message


def python_error_parts(exc: BaseException) -> dict:
    """{name, message, code, ...fields} of a Python exception: the engine's own errors
    (app/errors.py) carry their code and fields; anything else has code None."""
    if hasattr(exc, "to_dict"):
        return exc.to_dict()
    return {"name": type(exc).__name__, "message": str(exc) if exc.args else type(exc).__name__, "code": None}


def drop_chars(text: str, chars) -> str:
    """text without any of the characters in chars."""
    bad = set(chars)
    return "".join(c for c in text if c not in bad)


# ------------------------------------------------------------------------------ errors


def run_error(err: dict) -> dict:
    """The banner for a failed generation: {title, message, hint, chars} (chars: the unknown
    characters that the banner's fix removes, or None)."""
    chars = err.get("chars")
    message = sentence(str(err.get("message") or ""))
    if chars:
        shown = " ".join(repr(c) for c in chars)
        return {"title": "The prompt has characters this model does not know",
                "message": f"This model's vocabulary does not contain {shown}.",
                "hint": f"This model knows only the characters it was trained on. Remove {shown} from the prompt, "
                        "or let the page do it.",
                "chars": list(chars)}
    if err.get("code") == "busy":
        return {"title": "A generation is already running", "message": message,
                "hint": "Wait for it or press Stop (Esc).", "chars": None}
    return {"title": "Generation failed", "message": message,
            "hint": "Your prompt and the output so far are kept. Check the settings and try again; after a lost GPU, "
                    "Generate restarts it and reloads the model.", "chars": None}


def load_error(err: dict, label: str, loaded_label: str | None, foreign: bool) -> dict:
    """The banner for a failed load (not a cancelled one): {title, message, hint}. loaded_label:
    the model still loaded, if any; foreign: the reference is a URL on a host the page's policy
    refuses."""
    code = err.get("code")
    message = sentence(str(err.get("message") or ""))
    hint = LOAD_HINTS.get(code or "", LOAD_HINT_OTHER)
    if "Content Security Policy" in message or (code == "network" and foreign):
        hint = FOREIGN_HINT
    kept = f" {loaded_label} is still loaded." if loaded_label is not None else ""
    return {"title": f"Could not load {label}", "message": message, "hint": hint + kept}


def is_foreign(ref, page_host: str) -> bool:
    """A model URL on a host that the page's connect-src refuses: not the Hub (huggingface.co and
    its *.huggingface.co / *.hf.co CDNs), not this computer, not the page's own host."""
    if not isinstance(ref, str) or not ref.startswith(("http://", "https://")):
        return False
    host = re.sub(r"^https?://([^/?#]+).*$", r"\1", ref, flags=re.DOTALL)
    name = host.rsplit("@", 1)[-1].split(":")[0].lower()
    hub = name == "huggingface.co" or name.endswith((".huggingface.co", ".hf.co"))
    return not (hub or name in ("localhost", "127.0.0.1") or host == page_host)


# ------------------------------------------------------------------------------ the models list


def models_from_json(text: str) -> list:
    """weights/models.json's entries (a list, or {"models": [...]}) that have a source and a name."""
    models = json.loads(text)
    if isinstance(models, dict):
        models = models.get("models", [])
    if not isinstance(models, list):
        raise ValueError(f"expected a list of models, got {type(models).__name__}")
    return [m for m in models if isinstance(m, dict) and m.get("source") and m.get("name")]


def describe_entry(entry: dict) -> str:
    bits = [entry.get("description") or ""]
    if entry.get("size_bytes"):
        bits.append(f"Download: {size_text(entry['size_bytes'])} ({entry.get('dtype', '?')}, "
                    f"{entry.get('tokenizer', '?')} tokenizer).")
    return " ".join(b for b in bits if b)


def entry_for_source(models: list, source: str, resolve):
    """The entry whose source resolves to this loaded base URL, if any. resolve(ref) -> absolute
    URL of a site-relative ref (the browser's URL against the page); a Hub id resolves to the Hub."""
    for entry in models:
        ref = str(entry.get("source", ""))
        if HUB_ID.fullmatch(ref):
            url = f"https://huggingface.co/{ref}/resolve/main/"
        else:
            try:
                url = str(resolve(ref))
            except Exception:  # noqa: BLE001 - not a URL: not this entry
                continue
        if url.rstrip("/") == str(source).rstrip("/"):
            return entry
    return None


# ------------------------------------------------------------------------------ loading


def progress_view(p: dict) -> tuple:
    """A load's progress event -> (text, bar value or None to leave the bar as it is, aria-valuetext)."""
    phase = p.get("phase")
    total = p.get("overall_total") or 0
    done = p.get("overall_loaded") or 0
    if phase == "download" and total:
        fraction = min(1.0, done / total)
        file = p.get("file") or "weights"
        parts = [f"{file}: {size_text(p.get('loaded'))} of {size_text(p.get('total'))}"]
        if (p.get("file_count") or 1) > 1:
            parts[0] += f" (file {(p.get('file_index') or 0) + 1} of {p.get('file_count')})"
        if p.get("bytes_per_s"):
            parts.append(f"{size_text(p['bytes_per_s'])}/s")
        eta = p.get("overall_eta_s", p.get("eta_s"))
        if eta is not None:
            parts.append("less than a second left" if eta < 1 else f"about {duration_text(eta)} left")
        if p.get("from_cache"):
            parts.append("from cache")
        text = " · ".join(parts)
        return text, fraction, f"{fraction * 100:.0f}%: {text}"
    value = None
    text = LOAD_PHASES.get(phase, str(phase or "Loading"))
    if phase == "cache" and p.get("total"):
        text += f": {size_text(p.get('loaded'))} of {size_text(p.get('total'))}"
        value = min(1.0, (p.get("loaded") or 0) / p["total"])
    elif phase in ("upload", "done"):
        value = 1
    if p.get("from_cache") and "cache" not in text:
        text += " (from cache)"
    text += "…" if phase != "done" else ""
    return text, value, text


def adapter_text(adapter: dict | None) -> str:
    adapter = adapter or {}
    return " / ".join(str(adapter.get(k)) for k in ("vendor", "architecture", "description")
                      if adapter.get(k)) or "WebGPU adapter"


def model_rows(info: dict, adapter: dict | None, label: str) -> list:
    """The Model details list: [(term, value), ...]."""
    cached = (info.get("load") or {}).get("from_cache")
    vocab = info.get("vocab_size")
    load_s = info.get("load_s")
    return [
        ("Parameters", count_text(info.get("parameters"))),
        ("Shape", f"{info.get('n_layer')} layers × {info.get('n_head')} heads × {info.get('n_embd')} wide"),
        ("Context", f"{info.get('context')} tokens"),
        ("Vocabulary", f"{vocab:,} tokens ({info.get('tokenizer', '?')})"
         if isinstance(vocab, int) and not isinstance(vocab, bool) else "?"),
        ("Weights", f"{info.get('dtype', '?')}, {size_text(info.get('file_bytes'))}"),
        ("GPU memory", size_text(info.get("gpu_bytes"))),
        ("Adapter", adapter_text(adapter)),
        ("Loaded in", f"{load_s:.1f} s" + (" from cache" if cached else "")
         if finite(load_s) is not None else "?"),
        ("Source", str(info.get("source", label))),
    ]


def model_notices(info: dict) -> list:
    """The model's notices worth showing (the cache one is already in the state line)."""
    return [n for n in info.get("notices") or [] if not str(n).startswith("loaded from the browser cache")]


def loaded_text(label: str, from_cache) -> str:
    return f"{label} is loaded" + (" (from the browser cache)." if from_cache else ".")


# ------------------------------------------------------------------------------ settings


def check_number(text: str, kind, lo, hi, label: str) -> tuple:
    """A number field's text -> (value, None), or (None, the problem in words)."""
    try:
        value = kind(float(text)) if kind is float else int(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError
    except ValueError:
        return None, f"{label}: a number from {lo} to {hi}"
    if value < lo or value > hi:
        return None, f"{label}: from {lo} to {hi}"
    return value, None


def field_rules(context: int, vocab: int) -> dict:
    """field id -> (kind, lowest, highest, label) for a model of this context and vocabulary."""
    return {"max-new-tokens": (int, 1, max(1, context - 1), "Max new tokens"),
            "temperature": (float, 0, 2, "Temperature"), "top-k": (int, 0, vocab, "Top-k"),
            "top-p": (float, 0.01, 1, "Top-p"), "seed": (int, 0, 2 ** 53 - 1, "Seed"),
            "repetition-penalty": (float, 0.5, 2, "Repetition penalty")}


def parse_settings(raw: dict, greedy: bool, context: int, vocab: int) -> tuple:
    """The Settings fields (field id -> the text typed) -> (options for generate(), [(field id,
    problem), ...]). An option whose field is wrong is left out (the problem says why); an empty
    seed means a random one."""
    rules = field_rules(context, vocab)
    problems = []

    def number(name, optional=False):
        text = str(raw.get(name, "")).strip()
        if text == "" and optional:
            return None
        value, problem = check_number(text, *rules[name])
        if problem:
            problems.append((name, problem))
        return value

    opts = {"max_new_tokens": number("max-new-tokens")}
    if greedy:
        opts["temperature"] = 0
    else:
        opts["temperature"] = number("temperature")
        opts["top_k"] = number("top-k")
        opts["top_p"] = number("top-p")
        opts["seed"] = number("seed", optional=True)
    opts["repetition_penalty"] = number("repetition-penalty")
    opts["stop"] = stop_strings(str(raw.get("stop-strings", "")))
    return {k: v for k, v in opts.items() if v is not None}, problems


def settings_problem_text(problems: list) -> str:
    return "; ".join(p for _, p in problems) + "."


def field_value(value) -> str:
    """A number as a settings field shows it: 0.7, 20, 1 (not 1.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def model_defaults(generation_defaults: dict | None, vocab: int | None = None) -> dict:
    """generation_config.json's sampling defaults as settings field values (field id -> text),
    keeping only values the fields accept (a temperature of 5 or a top-k past the vocabulary is
    left to the page's own default)."""
    rules = field_rules(DEFAULT_CONTEXT, vocab or DEFAULT_VOCAB)
    out = {}
    for key, field in GENERATION_DEFAULT_FIELDS.items():
        value = (generation_defaults or {}).get(key)
        if isinstance(value, bool) or finite(value) is None:
            continue
        text = field_value(value)
        if check_number(text, *rules[field])[1] is None:
            out[field] = text
    return out


def settings_for_model(current: dict, old_defaults: dict, new_defaults: dict) -> dict:
    """The fields to change when another model loads (field id -> new text): a field still holding
    the previous model's default takes the new model's default; a field the user changed is kept."""
    old = {**DEFAULTS, **old_defaults}
    new = {**DEFAULTS, **new_defaults}
    return {field: new[field] for field in GENERATION_DEFAULT_FIELDS.values()
            if str(current.get(field, "")).strip() == old[field] and new[field] != old[field]}


# ------------------------------------------------------------------------------ a run's output


def finish_text(reason) -> str:
    return FINISH_TEXT.get(reason, str(reason))


def chosen_probability(top: list, token):
    """The probability of the chosen token among the top candidates, or None."""
    return next((c.get("prob") for c in top if c.get("id") == token), None)


def generating_text(n: int, elapsed_s: float, since_first_s: float | None) -> str:
    """The run state while tokens stream: "Generating… 12 tokens in 1.4 s · 9.8 tokens/s"."""
    rate = ""
    if since_first_s is not None and n > 1 and since_first_s > 0:
        rate = f" · {(n - 1) / since_first_s:.1f} tokens/s"
    return f"Generating… {n} tokens in {elapsed_s:.1f} s{rate}"


def result_stats(r: dict) -> list:
    """A finished generation's figures: [(label, value), ...]."""
    t = r.get("timings") or {}
    decode = t.get("decode_ms_per_token")
    stats = [("Prompt", f"{len(r.get('prompt_ids') or [])} tokens"), ("New", f"{len(r.get('tokens') or [])} tokens")]
    if t.get("ttft_ms") is not None:
        stats.append(("First token", f"{t['ttft_ms']:.0f} ms"))
    if decode:
        stats.append(("Speed", f"{1000 / decode:.1f} tokens/s"))
    if t.get("prefill_tokens_per_s"):
        rate = t["prefill_tokens_per_s"]
        stats.append(("Prompt speed", f"{rate:.0f} tokens/s" if rate >= 10 else f"{rate:.1f} tokens/s"))
    if t.get("total_ms") is not None:
        stats.append(("Total", f"{t['total_ms'] / 1000:.2f} s"))
    stats.append(("Finished", finish_text(r.get("finish_reason"))))
    return stats


# ------------------------------------------------------------------------------ the token popup


def popup_title(index: int, text: str) -> str:
    return f"Token {index + 1}: “{visible(text)}”"


def candidate_rows(top: list, chosen) -> list:
    """The popup's rows: [{text, prob (e.g. "42.0%" or "n/a"), width (CSS %), chosen}, ...]."""
    rows = []
    for cand in top:
        prob = finite(cand.get("prob"))
        rows.append({"text": visible(str(cand.get("text", ""))), "chosen": cand.get("id") == chosen,
                     "prob": "n/a" if prob is None else f"{prob * 100:.1f}%",
                     "width": f"{max(0.0, min(1.0, prob or 0)) * 100:.1f}%"})
    return rows


def popup_notes(top: list, chosen, n_events: int) -> list:
    notes = []
    if top and all(c.get("prob") is None for c in top):
        notes.append("The engine gives probabilities only at temperature 1 or greedy; this list is in "
                     "order of likelihood.")
    if chosen is not None and all(c.get("id") != chosen for c in top):
        notes.append(f"The sampled token (id {chosen}) was not among these.")
    if n_events > 1:
        notes.append(f"This text took {n_events} tokens; showing the last one.")
    return notes

