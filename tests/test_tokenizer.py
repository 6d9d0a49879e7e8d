"""app/tokenizer.py against references: tiktoken's GPT-2 encoding (built offline from the shipped
vocab.json + merges.txt) and transformers' GPT2Tokenizer.

The GPT-2 tokenizer must give tiktoken's ids for any str: a fixed corpus (tinyshakespeare, many
scripts, code, emoji, whitespace runs, contractions, numbers) and >= 10,000 hypothesis strings
drawn from every Unicode category plus the characters that trip pre-tokenizers.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import tokenizer as T
from app.tokenizer import (
    GPT2_PATTERN,
    CharTokenizer,
    GPT2Tokenizer,
    StreamingDetokenizer,
    UnknownCharactersError,
    bytes_to_unicode,
    load_tokenizer_from_texts,
    pretokenize,
)

tiktoken = pytest.importorskip("tiktoken")

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "weights" / "gpt2-tokenizer"
SHAKESPEARE = ROOT / "tests" / "data" / "tinyshakespeare.txt"
CHAR_VOCAB = ROOT / "weights" / "shakespeare-char" / "char_vocab.json"

BYTE_DECODER = {c: b for b, c in bytes_to_unicode().items()}


def _reference_encoding(name="gpt2"):
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(BYTE_DECODER[c] for c in token): i for token, i in vocab.items() if token != "<|endoftext|>"}
    return tiktoken.Encoding(name=name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


@pytest.fixture(scope="module")
def tok() -> GPT2Tokenizer:
    return GPT2Tokenizer.from_files(TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt")


@pytest.fixture(scope="module")
def enc():
    return _reference_encoding()


# ---------------------------------------------------------------------------------------------
# the shipped files


def test_shipped_files_are_openai_gpt2():
    """The files are OpenAI's GPT-2 encoder.json / vocab.bpe (hashes tiktoken pins for gpt2)."""
    digests = {name: hashlib.sha256((TOKENIZER_DIR / name).read_bytes()).hexdigest()
               for name in ("vocab.json", "merges.txt")}
    assert digests == {
        "vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    }


def test_basic_properties(tok):
    assert tok.vocab_size == 50257
    assert tok.eos_token_id == 50256
    assert tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.token_bytes(50256) == b"<|endoftext|>"
    assert tok.token_bytes(220) == b" "
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.decode([15496, 995]) == "Hello world"
    assert tok.id_to_token(995) == "Ġworld"


# ---------------------------------------------------------------------------------------------
# the pre-tokenizer's character classes


def _probe_class(pattern: str) -> set[int]:
    """The code points tiktoken's regex engine matches with `pattern` (unmatched text is dropped)."""
    probe = tiktoken.Encoding(name="probe", pat_str=pattern, mergeable_ranks={bytes([b]): b for b in range(256)},
                              special_tokens={})
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    return set(map(ord, bytes(probe.encode_ordinary(everything)).decode("utf-8")))


def _expand(ranges) -> set[int]:
    out = set()
    for a, b in ranges:
        out.update(range(a, b + 1))
    return out


def test_unicode_tables_match_tiktoken():
    """Every code point: \\p{L}, \\p{N} and \\s as tiktoken sees them == the embedded tables."""
    assert _expand(T.LETTER_RANGES) == _probe_class(r"\p{L}")
    assert _expand(T.NUMBER_RANGES) == _probe_class(r"\p{N}")
    assert set(map(ord, T.WHITESPACE)) == _probe_class(r"\s")


def test_whitespace_is_unicode_white_space_not_isspace():
    assert "\x1c" not in T.WHITESPACE and "\x1c".isspace()
    assert "\x85" in T.WHITESPACE and "\u3000" in T.WHITESPACE
    assert pretokenize("a\x1c\x1db") == ["a", "\x1c\x1d", "b"]
    assert pretokenize("a \x1cb") == ["a", " \x1c", "b"]


@pytest.mark.parametrize("text, pieces", [
    ("a   b", ["a", "  ", " b"]),
    ("a   ", ["a", "   "]),
    ("   a", ["  ", " a"]),
    ("a\n\n b", ["a", "\n\n", " b"]),
    ("a \n b", ["a", " \n", " b"]),
    ("x\r\ny", ["x", "\r", "\n", "y"]),                          # the last whitespace before a word stands alone
    ("x\r\n\r\n y", ["x", "\r\n\r\n", " y"]),
    ("I'm you're he'LL it's O'S", ["I", "'m", " you", "'re", " he", "'", "LL", " it", "'s", " O", "'", "S"]),
    ("don't''s", ["don", "'t", "''", "s"]),
    ("e\u0301t\u00e9", ["e", "\u0301", "t\u00e9"]),             # a combining mark is not a letter
    ("abc123 ٣٤ ²³ Ⅻ ½", ["abc", "123", " ٣٤", " ²³", " Ⅻ", " ½"]),
    ("𝔸𝔹 𝟙𝟚", ["𝔸𝔹", " 𝟙𝟚"]),                                 # astral letters and digits
    ("hi\u00a0there", ["hi", "\u00a0", "there"]),               # only U+0020 is the optional space
    ("hi \u00a0there", ["hi", " ", "\u00a0", "there"]),
])
def test_pretokenize_examples(text, pieces):
    assert pretokenize(text) == pieces
    assert "".join(pieces) == text


def test_pretokenize_matches_regex_module():
    """Piece by piece against the `regex` module on the characters whose classes it agrees on
    (it may know a newer Unicode than tiktoken)."""
    regex = pytest.importorskip("regex")
    rng = random.Random(1234)
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    differ = (_expand(T.LETTER_RANGES) ^ set(map(ord, regex.findall(r"\p{L}", everything)))) | (
        _expand(T.NUMBER_RANGES) ^ set(map(ord, regex.findall(r"\p{N}", everything))))
    agree = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000 and c not in differ]
    common = list(" \t\n\r'sdmtlvre\u00a0\u2028\x1c\x85\u0301\u200d0٣²😀") + [chr(c) for c in range(0x20, 0x7F)]
    pattern = regex.compile(GPT2_PATTERN)
    for _ in range(3000):
        text = "".join(rng.choice(common) if rng.random() < 0.6 else chr(rng.choice(agree))
                       for _ in range(rng.randrange(40)))
        assert pretokenize(text) == pattern.findall(text), repr(text)


def test_astral_stand_ins_equal_full_classes():
    """Text with characters above U+FFFF is scanned with stand-ins; the same pieces as the pattern
    with the complete classes."""
    full = T._compile_pattern(T.LETTER_RANGES, T.NUMBER_RANGES).findall
    rng = random.Random(99)
    special = [0x1D538, 0x1D7D9, 0x1F600, 0x16130, 0x1E5D0, 0x10FFFF, 0xF0000, 0x1F3FD, 0xE0001, 0x20000, 0x10107]
    for _ in range(5000):
        text = "".join(chr(rng.choice(special) if rng.random() < 0.5 else rng.randrange(0x10000, 0x110000))
                       if rng.random() < 0.4 else rng.choice(" 'sdtA1!\n\t\u00a0a\u0301")
                       for _ in range(rng.randrange(24)))
        assert pretokenize(text) == full(text), repr(text)


# ---------------------------------------------------------------------------------------------
# a fixed corpus

CORPUS = [
    "",
    "Hello, world! How's it going? I'm fine, you're great, they'll come, we've won, she'd go.",
    "HOW'S IT GOING? I'M FINE. YOU'RE. THEY'LL. WE'VE. SHE'D. It'S odd 'tis' 'twas' ''quoted''",
    "The year 2024 had 366 days; π≈3.14159, e=2.71828, 1,000,000.00 and 12345678901234567890.",
    "Numbers: ٠١٢٣٤٥٦٧٨٩ ०१२३४५६७८९ ০১২৩ ๑๒๓ ①②③ ⅠⅡⅢⅣ ½¼¾ ²³¹ 𝟘𝟙𝟚 𐄇𐄈",
    "Deutsch: Größe, Übermaß, Straße. Français: déjà vu, façade, œuvre. Español: ¿Qué tal? ¡Olé!",
    "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Українська: Чуєш їх, доцю, га?",
    "中文：我能吞下玻璃而不伤身体。日本語：私はガラスを食べられます。それは私を傷つけません。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. ภาษาไทย: ฉันกินกระจกได้",
    "עברית: אני יכול לאכול זכוכית וזה לא מזיק לי. العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
    "हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती. தமிழ்: நான் கண்ணாடி சாப்பிடுவேன்",
    "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì. Yorùbá: Mo lè je̩ dígí.",
    "ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ ꦲꦏ꧀ꦱꦫꦗꦮ 𓀀𓀁𓀂 𐌰𐌱𐌲 ",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇩🇪 🧑🏿‍🚀 *️⃣ #️⃣ 1️⃣",
    "Combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353\u0354a\u0355\u0356l\u0357g\u0358o\u0359 \u0915\u094d\u0937",
    "Whitespace:\t\ttab\n\nnewlines\r\n\r\ncrlf \x0b\x0c \u00a0nbsp \u2028ls \u2029ps \u3000ideo \u202f \u205f "
    "\u1680 \u200b",
    "Separators \x1c\x1d\x1e\x1f and \x85 next-line and \x00 nul \x07 bell \x7f del",
    "    four spaces\n        eight spaces\n\t\ttabs    \n   \n \n",
    " leading and trailing   ",
    "a" * 300 + " " + "ab" * 200 + " " + "!" * 150 + " " + "1" * 77,
    " " * 1000 + "x" + "\n" * 300 + "y" + " \t" * 100,
    "=" * 500 + "-" * 400 + "#" * 64,
    "Zero\u200bwidth\u200cjoiner\u200dmarks\ufeffBOM",
    "Private use \ue000\uf8ff, noncharacters \ufdd0\uffff, replacement \ufffd, astral private \U000f0000",
    "Unassigned \u0378\u0379 \U0002fffe \U0010ffff and new letters \u1c89\ua7cb \U00011380 \U0001e5d0 "
    "digits \U00016130",
    "<|endoftext|> is plain text here; so are <|endoftext and endoftext|> and <|im_start|>.",
    "URLs https://example.com/path?query=1&x=y#frag and mail: someone@example.org",
    "JSON {\"key\": [1, 2.5e-10, true, null], \"s\": \"esc\\\"aped\\n\"}",
    "def f(x: int) -> int:\n    return x ** 2  # comment\n\nclass A(B):\n    pass\n",
    "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }",
    "SELECT * FROM t WHERE a >= 10 AND b <> 'x'; -- sql\n/* c comment */ int *p = &a[0];",
    "#include <stdio.h>\nint main(void){printf(\"%d\\n\",42);return 0;}\n",
    "<div class=\"x\">Hello &amp; goodbye &#x1F600;</div>\n<br/>",
    "Base64: SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0IG9mIGxvbmcgdG9rZW5z/+==" * 5,
    "Math: ∀x∈ℝ, ∃y: x²+y²=1 ⇒ ∫₀¹ f(x)dx ≤ ∑ₙ aₙ; ℵ₀ < 𝔠",
    "Mixed123abc 123abc abc123 a1b2c3 1.2.3 v2.0-beta+build.5 0x1F 1e10",
    "Quotes ‘single’ “double” «guillemets» „low“ 'ascii' \"ascii\" ’s ’t",
    "Ligatures ﬁ ﬂ ﬀ and full-width ＡＢＣ１２３ and half-width ｶﾀｶﾅ",
]


def _corpus_texts():
    texts = list(CORPUS)
    texts.append(Path(__file__).read_text(encoding="utf-8"))
    return texts


def test_corpus_matches_tiktoken(tok, enc):
    for text in _corpus_texts():
        ids = tok.encode(text)
        assert ids == enc.encode_ordinary(text), repr(text[:80])
        assert tok.decode(ids) == text
        assert tok.encode(text, allow_special=True) == enc.encode(text, allowed_special="all"), repr(text[:80])


def test_tinyshakespeare_matches_tiktoken(tok, enc):
    text = SHAKESPEARE.read_text(encoding="utf-8")
    ids = tok.encode(text)
    assert ids == enc.encode_ordinary(text)
    assert len(ids) == 338025 and len(text) == 1115394
    assert tok.decode(ids) == text
    # in chunks of varied sizes and offsets, so that pieces start mid-word and mid-whitespace
    rng = random.Random(7)
    start = 0
    while start < len(text):
        end = start + rng.randrange(1, 4000)
        chunk = text[start:end]
        assert tok.encode(chunk) == enc.encode_ordinary(chunk), (start, end)
        start = end


def test_corpus_matches_transformers(tok):
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2Tokenizer.from_pretrained(str(TOKENIZER_DIR))
    texts = [*_corpus_texts(), SHAKESPEARE.read_text(encoding="utf-8")[:200_000]]
    for text in texts:
        if "\U0001e5d0" in text or "\u1c89" in text:
            continue  # Unicode 16 letters: transformers' regex tables may be older or newer
        # transformers always recognizes "<|endoftext|>" in text
        assert tok.encode(text, allow_special=True) == hf.encode(text), repr(text[:80])


def test_long_pieces_use_the_heap_merge(tok, enc):
    rng = random.Random(3)
    for text in [" " * 5000 + "a", "a" * 4000, "ab" * 1500, "=" * 3000, "1" * 2000,
                 "".join(rng.choice("abcdefghij ") for _ in range(5000)).replace(" ", ""),
                 "".join(rng.choice("!@#$%^&*()-=+[]{}") for _ in range(3000))]:
        assert tok.encode(text) == enc.encode_ordinary(text)


def test_heap_merge_equals_simple_merge(tok):
    rng = random.Random(11)
    alphabet = [b"a", b"b", b"e", b"t", b"h", b" ", b"\n", b"0", b"1", b"\xc3\xa9", b"\xe4\xb8\xad", b"th", b"in", b"!"]
    for _ in range(300):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 120)))
        expected = _simple_merge(tok, raw)
        assert tok._merge_heap(raw) == expected, raw
        assert tok._merge(raw) == expected, raw


def _simple_merge(tok, raw: bytes) -> list[bytes]:
    """tiktoken's loop, spelled out (no length switch)."""
    parts = [raw[i:i + 1] for i in range(len(raw))]
    while len(parts) > 1:
        ranks = [tok._ranks.get(parts[i] + parts[i + 1]) for i in range(len(parts) - 1)]
        found = [(r, i) for i, r in enumerate(ranks) if r is not None]
        if not found:
            break
        _, i = min(found)
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def test_surrogates_like_tiktoken(tok, enc):
    for text in ["\ud83d\ude00", "a\ud800b", "\udc00", "x\ud83d", "\ud83d\ude00\ud83d", "ok \udfff \ud800\udc00 end"]:
        assert tok.encode(text) == enc.encode_ordinary(text), repr(text)
        assert tok.encode(text, allow_special=True) == enc.encode(text, allowed_special="all")
    assert tok.decode(tok.encode("\ud83d\ude00")) == "😀"
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"


def test_special_tokens(tok, enc):
    text = "a<|endoftext|>b <|endoftext|><|endoftext|>"
    plain = tok.encode(text)
    assert 50256 not in plain
    assert plain == enc.encode_ordinary(text)
    special = tok.encode(text, allow_special=True)
    assert special == enc.encode(text, allowed_special="all")
    assert special.count(50256) == 3
    assert tok.encode(text, allow_special={"<|endoftext|>"}) == special
    assert tok.encode(text, allow_special=set()) == plain
    assert tok.decode(special) == text


def test_cache_is_bounded():
    small = GPT2Tokenizer.from_files(TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt", cache_size=50)
    enc = _reference_encoding()
    text = CORPUS[1] * 3 + CORPUS[5] + CORPUS[6]
    for _ in range(3):
        assert small.encode(text) == enc.encode_ordinary(text)
        assert len(small._cache) <= 50


def test_decode_errors(tok):
    with pytest.raises(ValueError, match=r"token id 50257 at position 1 is out of range.*0\.\.50256"):
        tok.decode([1, 50257])
    with pytest.raises(ValueError, match="token id -1 at position 0 is out of range"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="not an integer"):
        tok.decode([1, "x"])
    with pytest.raises(ValueError, match="out of range"):
        tok.token_bytes(10**9)
    assert tok.decode([]) == ""
    assert tok.decode(iter([15496, 995])) == tok.decode(x for x in [15496, 995]) == "Hello world"
    assert tok.decode([129, 129]) == "\ufffd\ufffd"  # byte 0xC2 twice: invalid UTF-8, replaced
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


# ---------------------------------------------------------------------------------------------
# hypothesis: any str

# Hypothesis spends ~1 ms per example drawing even simple strategies, so the text strategy is one
# st.text over every code point (all categories, unassigned ones too; 40% ASCII, 20% astral),
# and characters that tokenizers get wrong are mixed in by translating 54 "slot" code points
# (C0/C1 controls other than the whitespace ones, which hypothesis draws often) into them.
SLOTS = [chr(c) for c in (*range(0x01, 0x09), *range(0x0E, 0x1C), 0x7F, *range(0x80, 0x85), *range(0x86, 0xA0))]
FRAGMENTS = [
    # whitespace runs and Unicode White_Space (and U+180E, which is no longer whitespace)
    " ", "  ", "   ", "\r\n", "\u00a0", "\u1680", "\u2000", "\u2028", "\u2029", "\u202f", "\u3000", "\u180e",
    # contractions, also in upper case (which GPT-2's pattern does not treat as contractions)
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'",
    # numbers of other scripts, superscripts, fractions, roman numerals, astral and Unicode 16 digits
    "٣", "੩", "²", "½", "Ⅻ", "𝟙", "\U00016130", "\U0001e5f1",
    # combining marks, joiners, variation selector, skin tone modifier
    "\u0301", "\u094d", "\u0e31", "\u200d", "\ufe0f", "\U0001f3fd",
    # letters: Latin, Cyrillic, CJK, Hangul, titlecase, astral, Unicode 16 (unknown to CPython 3.11)
    "é", "ж", "中", "한", "ǅ", "𝔸", "\U0001e5d0", "\u1c89",
    # emoji sequences, the special token's text and its parts, invisible and control characters
    "😀", "👨\u200d👩", "🇫🇷", "<|endoftext|>", "<|", "|>", "\u200b", "\ufeff", "\x00", "\x7f",
]
assert len(FRAGMENTS) == len(SLOTS)
_TO_FRAGMENT = {ord(slot): fragment for slot, fragment in zip(SLOTS, FRAGMENTS)}
TEXT = st.text(st.characters(codec="utf-8"), max_size=16).map(lambda t: t.translate(_TO_FRAGMENT))


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_hypothesis_matches_tiktoken(text):
    tok, enc = _cached()
    ids = tok.encode(text)
    assert ids == enc.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert tok.encode(text, allow_special=True) == enc.encode(text, allowed_special="all")


_TO_SURROGATE = dict(_TO_FRAGMENT)
for i, c in enumerate(range(0x80, 0x85)):
    _TO_SURROGATE[c] = ["\ud83d", "\ude00", "\ud800\udc00", "\udfff", "\ud83d\ude00"][i]
TEXT_WITH_SURROGATES = st.text(st.characters(codec=None, exclude_categories=[]), max_size=12).map(
    lambda t: t.translate(_TO_SURROGATE))


@settings(max_examples=1500, deadline=None)
@given(TEXT_WITH_SURROGATES)
def test_hypothesis_surrogates_match_tiktoken(text):
    tok, enc = _cached()
    assert tok.encode(text) == enc.encode_ordinary(text)


_REFS = {}


def _cached():
    if not _REFS:
        _REFS["tok"] = GPT2Tokenizer.from_files(TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt")
        _REFS["enc"] = _reference_encoding()
    return _REFS["tok"], _REFS["enc"]


# ---------------------------------------------------------------------------------------------
# tokenizer.json and the loader


def _tokenizer_json(merges_as_pairs: bool) -> str:
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    lines = (TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
    merges = [line.split(" ") if merges_as_pairs else line for line in lines if line]
    return json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "truncation": None,
        "padding": None,
        "model": {"type": "BPE", "vocab": vocab, "merges": merges, "dropout": None, "unk_token": None},
    })


@pytest.mark.parametrize("pairs", [False, True])
def test_from_tokenizer_json(tok, pairs):
    other = GPT2Tokenizer.from_tokenizer_json(_tokenizer_json(pairs))
    assert other.vocab_size == 50257 and other.eos_token_id == 50256
    for text in CORPUS:
        assert other.encode(text) == tok.encode(text)
        assert other.encode(text, allow_special=True) == tok.encode(text, allow_special=True)


def test_from_tokenizer_json_written_by_transformers(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2Tokenizer.from_pretrained(str(TOKENIZER_DIR))
    hf.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    other = load_tokenizer_from_texts({"tokenizer.json": (tmp_path / "tokenizer.json").read_text(encoding="utf-8")})
    for text in CORPUS[:12]:
        assert other.encode(text) == tok.encode(text)


def test_tokenizer_json_add_prefix_space_like_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    data = json.loads(_tokenizer_json(True))
    data["pre_tokenizer"]["add_prefix_space"] = True
    reference = tokenizers.Tokenizer.from_str(json.dumps(data))
    ours = GPT2Tokenizer.from_tokenizer_json(json.dumps(data))
    assert ours.add_prefix_space
    for text in ["hello", " hello", "\nhello", "a<|endoftext|>b", "a<|endoftext|> b", "", "  x", CORPUS[1]]:
        assert ours.encode(text, allow_special=True) == reference.encode(text).ids, repr(text)


def test_tokenizer_json_errors():
    with pytest.raises(ValueError, match="tokenizer.json: not valid JSON"):
        GPT2Tokenizer.from_tokenizer_json("{nope")
    with pytest.raises(ValueError, match="tokenizer.json: model type 'WordPiece' is not supported"):
        GPT2Tokenizer.from_tokenizer_json(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}))
    with pytest.raises(ValueError, match="tokenizer.json: no \"model\""):
        GPT2Tokenizer.from_tokenizer_json("{}")
    data = json.loads(_tokenizer_json(True))
    data["model"]["merges"].append(["Ġ", "notatoken"])
    with pytest.raises(ValueError, match="tokenizer.json: merges: line 50001.*'notatoken' is not in vocab.json"):
        GPT2Tokenizer.from_tokenizer_json(json.dumps(data))
    data = json.loads(_tokenizer_json(True))
    data["pre_tokenizer"] = {"type": "Metaspace"}
    with pytest.raises(ValueError, match="pre_tokenizer 'Metaspace' is not supported"):
        GPT2Tokenizer.from_tokenizer_json(json.dumps(data))


def test_vocab_and_merges_validation():
    byte_vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    small = GPT2Tokenizer(dict(byte_vocab, ab=256), [("a", "b")])
    assert small.encode("abab ab") == [256, 256, byte_vocab["Ġ"], 256]
    assert small.vocab_size == 257 and small.eos_token_id is None
    assert GPT2Tokenizer(dict(byte_vocab, ab=256), "#version: 0.2\na b\n").encode("ab") == [256]
    with pytest.raises(ValueError, match="256 byte tokens are missing"):
        GPT2Tokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="id 0 is given to both"):
        GPT2Tokenizer(dict(byte_vocab, zz=0), [])
    with pytest.raises(ValueError, match="non-negative integers"):
        GPT2Tokenizer(dict(byte_vocab, ab=-3), [])
    with pytest.raises(ValueError, match="non-negative integers"):
        GPT2Tokenizer(dict(byte_vocab, ab=True), [])
    with pytest.raises(ValueError, match="line 2: expected two tokens"):
        GPT2Tokenizer(dict(byte_vocab, ab=256), "#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match="vocab.json: not valid JSON"):
        GPT2Tokenizer.from_texts("{", "")


def test_load_tokenizer_from_texts(tok):
    vocab = (TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8")
    merges = (TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8")
    chars = CHAR_VOCAB.read_text(encoding="utf-8")
    loaded = load_tokenizer_from_texts({"vocab.json": vocab, "merges.txt": merges})
    assert isinstance(loaded, GPT2Tokenizer) and loaded.encode(CORPUS[1]) == tok.encode(CORPUS[1])
    assert isinstance(load_tokenizer_from_texts({"tokenizer.json": _tokenizer_json(False)}), GPT2Tokenizer)
    assert isinstance(load_tokenizer_from_texts({"char_vocab.json": chars}), CharTokenizer)
    both = load_tokenizer_from_texts({"vocab.json": vocab, "merges.txt": merges, "tokenizer.json": "{broken"})
    assert isinstance(both, GPT2Tokenizer)  # vocab.json + merges.txt first
    expected = "no tokenizer files: expected vocab.json + merges.txt, tokenizer.json or char_vocab.json"
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_tokenizer_from_texts({})
    with pytest.raises(ValueError, match="vocab.json without merges.txt"):
        load_tokenizer_from_texts({"vocab.json": vocab})
    with pytest.raises(ValueError, match="both char_vocab.json and vocab.json"):
        load_tokenizer_from_texts({"vocab.json": vocab, "merges.txt": merges, "char_vocab.json": chars})
    with pytest.raises(ValueError, match="char_vocab.json: not valid JSON"):
        load_tokenizer_from_texts({"char_vocab.json": "{'a': 0}"})
    with pytest.raises(ValueError, match="vocab.json: expected a JSON object"):
        load_tokenizer_from_texts({"vocab.json": "[1]", "merges.txt": merges})
    with pytest.raises(ValueError, match="tokenizer.json: not valid JSON"):
        load_tokenizer_from_texts({"tokenizer.json": ""})


# ---------------------------------------------------------------------------------------------
# characters


@pytest.fixture(scope="module")
def chars() -> CharTokenizer:
    return CharTokenizer.from_json(CHAR_VOCAB.read_text(encoding="utf-8"))


def test_char_tokenizer_roundtrip(chars):
    assert chars.vocab_size == 65 and chars.eos_token_id is None and chars.bos_token_id is None
    text = "ROMEO:\nWhat, ho! Is't you, my lord?\n"
    ids = chars.encode(text)
    assert len(ids) == len(text) and chars.decode(ids) == text
    assert chars.encode("\n a") == [0, 1, 39]
    assert chars.token_bytes(39) == b"a"
    whole = SHAKESPEARE.read_text(encoding="utf-8")
    assert chars.decode(chars.encode(whole)) == whole


def test_char_tokenizer_unknown_characters(chars):
    with pytest.raises(UnknownCharactersError) as info:
        chars.encode("héllo wörld é~")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.chars == ["~", "é", "ö"]
    assert err.positions == [(1, "é"), (7, "ö"), (12, "é"), (13, "~")]
    message = str(err)
    assert "'é'" in message and "'ö'" in message and "'~'" in message
    assert "1 ('é')" in message and "drop_unknown=True" in message
    assert chars.encode("héllo wörld é~", drop_unknown=True) == chars.encode("hllo wrld ")
    many = "€" * 25
    with pytest.raises(UnknownCharactersError, match="and 15 more"):
        chars.encode(many)


def test_char_tokenizer_validation():
    with pytest.raises(ValueError, match="not a single character"):
        CharTokenizer({"ab": 0})
    with pytest.raises(ValueError, match="id 0 is given to both 'a' and 'b'"):
        CharTokenizer({"a": 0, "b": 0})
    with pytest.raises(ValueError, match="non-negative integers"):
        CharTokenizer({"a": -1})
    with pytest.raises(ValueError, match="non-negative integers"):
        CharTokenizer({"a": 1.0})
    with pytest.raises(ValueError, match="non-negative integers"):
        CharTokenizer({"a": False})
    with pytest.raises(ValueError, match="non-empty JSON object"):
        CharTokenizer({})
    with pytest.raises(ValueError, match="char_vocab.json: expected a JSON object"):
        CharTokenizer.from_json("[\"a\"]")
    with pytest.raises(ValueError, match="lone surrogate"):
        CharTokenizer({"\ud800": 0})
    gappy = CharTokenizer({"a": 0, "c": 2}, bos_token_id=2)
    assert gappy.vocab_size == 3 and gappy.bos_token_id == 2
    with pytest.raises(ValueError, match="token id 1 at position 1 is not in this tokenizer's vocabulary"):
        gappy.decode([0, 1])
    with pytest.raises(ValueError, match="out of range"):
        gappy.decode([3])
    with pytest.raises(ValueError, match="out of range"):
        gappy.decode([-1])
    with pytest.raises(ValueError, match="bos_token_id 1 is not"):
        CharTokenizer({"a": 0, "c": 2}, bos_token_id=1)


# ---------------------------------------------------------------------------------------------
# streaming


def _could_complete(pending: bytes) -> bool:
    """True if some continuation bytes make `pending` a valid UTF-8 character."""
    for tail in (b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x90\x80\x80", b"\xa0\x80", b"\xbf\xbf\xbf", b"\x90\x80",
                 b"\xa0\x80\x80"):
        for n in range(len(tail) + 1):
            try:
                (pending + tail[:n]).decode("utf-8")
                return True
            except UnicodeDecodeError:
                pass
    return False


def test_streaming_examples(tok):
    ids = tok.encode("a😀b")  # the emoji is split over byte tokens
    detok = StreamingDetokenizer(tok)
    out = [detok.push(i) for i in ids]
    assert out[0] == "a" and "\ufffd" not in "".join(out)
    assert "".join(out) + detok.flush() == "a😀b"
    assert [o for o in out[1:-1] if o] == ["😀"]
    assert detok.invalid_tail_bytes == 0
    # an incomplete character at the end: reported, shown as U+FFFD
    emoji = tok.encode("😀")
    detok = StreamingDetokenizer(tok)
    assert "".join(detok.push(i) for i in emoji[:-1]) == ""
    assert detok.pending_bytes and detok.flush() == "\ufffd"
    assert detok.invalid_tail_bytes == len(b"".join(tok.token_bytes(i) for i in emoji[:-1]))
    # bytes that are invalid at once come out at once
    detok = StreamingDetokenizer(tok)
    assert detok.push(tok._byte_ids[0x80]) == "\ufffd"  # a continuation byte with no lead
    assert detok.push(tok._byte_ids[0xE2]) == ""          # a 3-byte lead: wait
    assert detok.push(tok._byte_ids[0x41]) == "\ufffdA"   # 'A' cannot continue it
    assert detok.flush() == "" and detok.invalid_tail_bytes == 0


def test_streaming_char_tokenizer(chars):
    detok = StreamingDetokenizer(chars)
    assert "".join(detok.push(i) for i in chars.encode("Hi!\n")) == "Hi!\n"
    assert detok.flush() == ""


UTF8_FRAGMENT_BYTES = [0xC3, 0xA9, 0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x98, 0x80, 0xED, 0xA0, 0xF4, 0x90, 0xC0, 0xF8, 0xFF]


def _ids_from_bytes(data: bytes) -> list[int]:
    """An id sequence from bytes (one cheap hypothesis draw): 0x00-0x0F takes the next two bytes
    as any id; 0x10-0x1F is the byte token of a UTF-8 lead/continuation/invalid byte; any other
    byte is its own byte token."""
    byte_ids = _cached()[0]._byte_ids
    ids, i = [], 0
    while i < len(data):
        b = data[i]
        if b < 0x10:
            ids.append(int.from_bytes(data[i + 1:i + 3] or b"\0", "big") % 50257)
            i += 3
            continue
        ids.append(byte_ids[UTF8_FRAGMENT_BYTES[b - 0x10]] if b < 0x20 else byte_ids[b])
        i += 1
    return ids


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=40).map(_ids_from_bytes))
def test_hypothesis_streaming_equals_decode(ids):
    tok = _cached()[0]
    detok = StreamingDetokenizer(tok)
    pieces = []
    for token in ids:
        pieces.append(detok.push(token))
        pending = detok.pending_bytes
        assert len(pending) <= 3 and (not pending or _could_complete(pending)), pending
    tail = detok.flush()
    assert "".join(pieces) + tail == tok.decode(ids)
    assert tail.count("\ufffd") == (1 if detok.invalid_tail_bytes else 0)
