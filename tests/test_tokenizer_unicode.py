"""The Unicode side of the tokenizer.json loader against Hugging Face tokenizers 0.23.3: the character
tables of app/unicode_data.py, the Oniguruma regexes run with Python's `re` (app/hf_patterns.py),
and the Unicode normalizers (app/hf_pretokenize.py), code point by code point or on seeded random
text."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import tokenizers  # the reference (requirements-dev.txt): not installed fails, never skips

from app import unicode_data as U
from app.errors import ModelFormatError
from app.hf_patterns import LiteralMatcher, UnicodeRegex, is_word_char
from app.hf_pretokenize import GPT2_SPLIT_PATTERN, build_normalizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from tokenizer_corpus import corpus  # noqa: E402
from unicode_tables import normalization_active, regex_class, to_ranges  # noqa: E402


@pytest.mark.parametrize("table, pattern", [("LETTER_RANGES", r"\p{L}"), ("NUMBER_RANGES", r"\p{N}"),
                                            ("MARK_RANGES", r"\p{M}")])
def test_class_tables_match_oniguruma(table, pattern):
    """Every code point: \\p{L}, \\p{N}, \\p{M} as tokenizers' Oniguruma matches them == the tables."""
    assert [tuple(r) for r in to_ranges(regex_class(pattern))] == list(getattr(U, table))


def test_whitespace_matches_oniguruma():
    assert regex_class(r"\s") == set(map(ord, U.WHITESPACE))


def test_normalization_table_matches_tokenizers():
    """The code points tokenizers' normalizers act on == NORMALIZATION_RANGES (read out again)."""
    assert [tuple(r) for r in to_ranges(normalization_active())] == list(U.NORMALIZATION_RANGES)


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
OTHER_PATTERNS = [
    r"[\p{L}\p{M}]+|\P{L}",                          # marks, a negated class
    r" ?\p{L}+\p{M}*| ?\p{N}+|[^\s\p{L}\p{N}]+|\s+",  # marks after letters
    r"\p{N}{1,3}(?=\p{N}*$)|\S+?",                    # lookahead, a lazy quantifier, an anchor
    r"(\p{L})\p{L}*|[\x{1F600}-\x{1F64F}]+|.",       # a capturing group, astral escapes (no stand-ins)
]


@pytest.mark.parametrize("pattern", [LLAMA3_PATTERN, GPT2_SPLIT_PATTERN] + OTHER_PATTERNS)
def test_regex_matches_oniguruma(pattern):
    """Split by the pattern, Isolated: the same pieces as tokenizers' Oniguruma on seeded random text
    (all planes, the contraction letters in both cases, long s and Kelvin sign) and the corpus."""
    ours = UnicodeRegex(pattern, "test")
    reference = tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), "isolated")
    rng = random.Random(pattern)
    common = list(" \t\n\r'sdmtlvreSDMTLVRE\u00a0\u2028\x1c\x85\u0301\u200d0٣²😀ſK\U0001e5d0\U00016130")
    texts = corpus()[::4]
    for _ in range(3000):
        texts.append("".join(rng.choice(common) if rng.random() < 0.5 else
                             chr(rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x10000, 0x30000)]))
                             for _ in range(rng.randrange(40))))
    for text in texts:
        expected = [piece for piece, _ in reference.pre_tokenize_str(text)]
        spans, pieces, last = ours.spans(text), [], 0
        for start, end in spans:
            pieces += [text[last:start]] if start > last else []
            pieces.append(text[start:end])
            last = end
        pieces += [text[last:]] if last < len(text) else []
        assert [p for p in pieces if p] == expected, repr(text)


@pytest.mark.parametrize("pattern, what", [(r"\d+", r"the escape \\d"), (r"\w", r"the escape \\w"),
                                           (r"\p{Lu}", r"the character class \\p\{Lu\}"), (r"[\S]", r"\\S inside"),
                                           (r"(?<name>x)", "a named group"), ("[a-", "an unclosed"),
                                           (r"\p{L", r"an unclosed \\p\{"), (r"\pL", r"\\p without braces")])
def test_unsupported_regex_syntax(pattern, what):
    with pytest.raises(ModelFormatError, match=f"where: the regex .* uses {what}"):
        UnicodeRegex(pattern, "where")


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_unicode_normalizers_match_tokenizers(form):
    """The corpus and seeded soups of marks, jamo, new-Unicode marks and composables: the same text
    as tokenizers' normalizer, whose Unicode tables are older than CPython's."""
    ours = build_normalizer({"type": form})
    reference = getattr(tokenizers.normalizers, form)()
    rng = random.Random(form)
    pool = [(0x300, 0x370), (0x1AB0, 0x1B00), (0x1DC0, 0x1E00), (0x41, 0x7B), (0xAC00, 0xAC40), (0x1100, 0x1180),
            (0x11935, 0x11939), (0x0B3E, 0x0B48), (0x3C, 0x3F), (0x338, 0x339), (0x10000, 0x20000), (0xF900, 0xFB50)]
    texts = corpus()
    for _ in range(20000):
        texts.append("".join(chr(rng.randrange(*rng.choice(pool))) for _ in range(rng.randrange(1, 8))))
    for text in texts:
        assert ours(text) == reference.normalize_str(text), repr(text)


def test_lowercase_matches_tokenizers():
    """Lowercase: every code point alone, and the corpus (final sigma, dotted I, Unicode 16 letters)."""
    ours = build_normalizer({"type": "Lowercase"})
    reference = tokenizers.normalizers.Lowercase()
    code_points = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    assert [ours(c) for c in code_points] == reference.normalize_str("\x00".join(code_points)).split("\x00")
    for text in corpus():
        assert ours(text) == reference.normalize_str(text), repr(text)


def test_literal_matcher_is_leftmost_longest():
    matcher = LiteralMatcher(["<s>", "<s>x", "ab", "abc", "b", "\n", "\n\n"])
    text = "<s>x<s> abcab b\n\n\n"
    assert [text[a:b] for a, b in matcher.find(text)] == ["<s>x", "<s>", "abc", "ab", "b", "\n\n", "\n"]


def test_word_characters():
    """single_word's \\w: letters, marks, decimal digits, connector punctuation, ZWJ."""
    assert all(map(is_word_char, "aé中_\u0301٣\u200d\U0001e5d0"))
    assert not any(map(is_word_char, " .!-²😀\t"))
