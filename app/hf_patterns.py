"""The regular expressions of tokenizer.json files, run with Python's `re` (standard library only).

tokenizers runs the Split pre-tokenizer's and the Replace normalizer's regexes with Oniguruma, whose
\\p{L}, \\p{N}, \\p{M} and \\s Python's `re` lacks. UnicodeRegex translates such a pattern into an
equivalent `re` pattern with explicit character classes (app/unicode_data.py: the code points
Oniguruma itself matches), keeping the pattern's alternation order and backtracking, which both
engines share.

Speed: `re` tests the part of a character class above U+FFFF one range at a time, which makes the
whole-Unicode classes several times slower on any text. So an ASCII-only pattern is compiled with
BMP-only classes, and text with astral characters is scanned through a stand-in: each astral
character becomes one BMP character of the same class (a letter, a number, a mark or none of
these; no astral character is whitespace). Stand-ins are not ASCII and have no case, so an
ASCII-only pattern treats each one exactly as the character it replaces; the positions of every
match are the same, and pieces are cut from the original text.

LiteralMatcher(words) is the added tokens' matcher: at the leftmost position where any word occurs,
the longest word there (what tokenizers' Aho-Corasick automaton with LeftmostLongest finds).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from itertools import accumulate

from .errors import ModelFormatError
from .unicode_data import LETTER_RANGES, MARK_RANGES, NUMBER_RANGES, WHITESPACE

__all__ = ["class_body", "chars_class_body", "UnicodeRegex", "LiteralPattern",
           "LiteralMatcher", "literal_matcher", "is_word_char", "in_ranges"]

_CLASS_NAMES = {"L": "L", "Letter": "L", "N": "N", "Number": "N", "M": "M", "Mark": "M", "Combining_Mark": "M"}
_TABLES = {"L": LETTER_RANGES, "N": NUMBER_RANGES, "M": MARK_RANGES}
_SIMPLE_ESCAPES = set("rntfv")
# Escapes whose meaning differs between Oniguruma and `re` (Unicode \d, \w, \b, anchors): refused,
# none of the real tokenizer files uses them.
_REFUSED_ESCAPES = set("dDwWbBhHAzZGkKRXyYO0123456789")


def in_ranges(code: int, ranges) -> bool:
    i = bisect_right(ranges, (code, 0x110000)) - 1
    return i >= 0 and ranges[i][0] <= code <= ranges[i][1]


def class_body(ranges, bmp_only: bool = False) -> str:
    """The inside of a `re` character class for inclusive (first, last) code point ranges. The
    characters are written as themselves (escaped where `re` needs it): `re` parses that several
    times faster than \\U escapes, which matters for the large classes in Pyodide."""
    parts = []
    for a, b in ranges:
        if bmp_only:
            if a > 0xFFFF:
                continue
            b = min(b, 0xFFFF)
        parts.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
    return "".join(parts)


def chars_class_body(chars) -> str:
    """class_body() for a set of characters (runs of consecutive code points become ranges)."""
    ranges: list = []
    for code in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return class_body(ranges)


_WHITESPACE_BODY = class_body([(ord(c), ord(c)) for c in WHITESPACE])


def translate(pattern: str, *, bmp_only: bool, where: str) -> str:
    """An Oniguruma pattern as a `re` pattern (capturing groups become non-capturing)."""
    out = []
    i, n = 0, len(pattern)
    depth = 0  # inside [...]: 1

    def fail(what: str):
        raise ModelFormatError(f"{where}: the regex {pattern!r} uses {what}, which this tokenizer does not support")

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                fail("a trailing backslash")
            esc = pattern[i + 1]
            i += 2
            if esc in "pP":
                if not pattern.startswith("{", i):  # Oniguruma reads \pL otherwise than \p{L}
                    fail(f"\\{esc} without braces")
                close = pattern.find("}", i)
                if close < 0:
                    fail("an unclosed \\p{")
                name, i = pattern[i + 1:close], close + 1
                negated = esc == "P"
                if name.startswith("^"):
                    negated, name = not negated, name[1:]
                if name not in _CLASS_NAMES:
                    fail(f"the character class \\{esc}{{{name}}}")
                body = class_body(_TABLES[_CLASS_NAMES[name]], bmp_only)
                if depth:
                    if negated:
                        fail(f"a negated class \\{esc}{{{name}}} inside [...]")
                    out.append(body)
                else:
                    out.append(("[^" if negated else "[") + body + "]")
            elif esc in "sS":
                if depth:
                    if esc == "S":
                        fail("\\S inside [...]")
                    out.append(_WHITESPACE_BODY)
                else:
                    out.append(("[" if esc == "s" else "[^") + _WHITESPACE_BODY + "]")
            elif esc in _SIMPLE_ESCAPES:
                out.append("\\" + esc)
            elif esc == "x":
                if i < n and pattern[i] == "{":
                    close = pattern.find("}", i)
                    if close < 0:
                        fail("an unclosed \\x{")
                    out.append(f"\\U{int(pattern[i + 1:close], 16):08x}")
                    i = close + 1
                else:
                    out.append("\\x" + pattern[i:i + 2])
                    i += 2
            elif esc == "u":
                out.append("\\u" + pattern[i:i + 4])
                i += 4
            elif esc.isalnum() or esc in _REFUSED_ESCAPES:
                fail(f"the escape \\{esc}")
            else:
                out.append("\\" + esc)
            continue
        if depth:
            if ch == "]":
                depth = 0
            elif ch == "[":
                fail("a nested character class")
            out.append(ch)
        elif ch == "[":
            depth = 1
            out.append(ch)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):  # a leading ] is a literal in both engines
                out.append("\\]")
                i += 1
        elif ch == "(":
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                fail("a named group")
            out.append("(" if pattern.startswith("(?", i) else "(?:")
        else:
            out.append(ch)
        i += 1
    if depth:
        fail("an unclosed [")
    return "".join(out)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_LETTERS = tuple(r for r in LETTER_RANGES if r[1] > 0xFFFF)
_ASTRAL_NUMBERS = tuple(r for r in NUMBER_RANGES if r[1] > 0xFFFF)
_ASTRAL_MARKS = tuple(r for r in MARK_RANGES if r[1] > 0xFFFF)
# BMP stand-ins, one per class: CJK ideograph one (Lo), Arabic-Indic zero (Nd), combining grave
# (Mn), snowman (So). None is ASCII, whitespace, or has a case.
_STAND_INS = ("\u4e00", "\u0660", "\u0300", "\u2603")


_STAND_IN_OF: dict = {}  # astral character -> its stand-in, filled as they are met


def _stand_in(match) -> str:
    ch = match.group()
    stand_in = _STAND_IN_OF.get(ch)
    if stand_in is None:
        code = ord(ch)
        stand_in = (_STAND_INS[0] if in_ranges(code, _ASTRAL_LETTERS) else
                    _STAND_INS[1] if in_ranges(code, _ASTRAL_NUMBERS) else
                    _STAND_INS[2] if in_ranges(code, _ASTRAL_MARKS) else _STAND_INS[3])
        if len(_STAND_IN_OF) < 100_000:
            _STAND_IN_OF[ch] = stand_in
    return stand_in


class UnicodeRegex:
    """An Oniguruma pattern from a tokenizer.json, matched with `re` (see the module docstring)."""

    def __init__(self, pattern: str, where: str):
        if not isinstance(pattern, str):
            raise ModelFormatError(f"{where}: the regex is not a string: {pattern!r}")
        self.pattern = pattern
        # Ruby syntax (Oniguruma's default, as tokenizers uses it): ^ and $ are line anchors
        stand_ins_ok = pattern.isascii() and "\\x" not in pattern and "\\u" not in pattern
        try:
            if stand_ins_ok:
                self._bmp = re.compile(translate(pattern, bmp_only=True, where=where), re.M)
                self._full = None
            else:
                self._bmp = None
                self._full = re.compile(translate(pattern, bmp_only=False, where=where), re.M)
        except re.error as exc:
            raise ModelFormatError(f"{where}: the regex {pattern!r} cannot be compiled ({exc})") from None

    def _prepared(self, text: str):
        if self._bmp is None:
            return self._full, text
        if text.isascii() or _ASTRAL.search(text) is None:
            return self._bmp, text
        return self._bmp, _ASTRAL.sub(_stand_in, text)

    def findall(self, text: str) -> list:
        """The matches in order, as strings of `text`; a gap between matches is not returned."""
        compiled, scanned = self._prepared(text)
        if scanned is text:
            return compiled.findall(text)
        pieces = compiled.findall(scanned)
        if sum(map(len, pieces)) == len(text):  # no gaps: cut the original at the same lengths
            ends = list(accumulate(map(len, pieces)))
            return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))
        return [text[m.start():m.end()] for m in compiled.finditer(scanned)]

    def spans(self, text: str) -> list:
        compiled, scanned = self._prepared(text)
        return [m.span() for m in compiled.finditer(scanned)]

    def covering_pieces(self, text: str):
        """findall(text) if the matches cover all of `text` with no gap, else None."""
        pieces = self.findall(text)
        return pieces if sum(map(len, pieces)) == len(text) else None


class LiteralPattern:
    """A plain string pattern (tokenizer.json's {"String": ...}), with UnicodeRegex's interface."""

    def __init__(self, text: str, where: str):
        if not isinstance(text, str):
            raise ModelFormatError(f"{where}: the pattern is not a string: {text!r}")
        self.pattern = text
        self._re = re.compile(re.escape(text)) if text else None

    def findall(self, text: str) -> list:
        return self._re.findall(text) if self._re is not None else []

    def spans(self, text: str) -> list:
        return [m.span() for m in self._re.finditer(text)] if self._re is not None else []

    def covering_pieces(self, text: str):
        pieces = self.findall(text)
        return pieces if sum(map(len, pieces)) == len(text) else None


def pattern_from_json(value, where: str):
    """{"String": s} or {"Regex": r} -> LiteralPattern or UnicodeRegex."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, text), = value.items()
        if kind == "String":
            return LiteralPattern(text, where)
        if kind == "Regex":
            return UnicodeRegex(text, where)
    raise ModelFormatError(f"{where}: expected a pattern {{\"String\": ...}} or {{\"Regex\": ...}}, got {value!r}")


class LiteralMatcher:
    """Finds any of a set of words in a text: at the leftmost position where one occurs, the
    longest one there; then on after it (tokenizers' Aho-Corasick automaton, LeftmostLongest).
    Candidate positions come from a class of the words' first characters; from each, a walk down
    a trie of the words finds the longest one."""

    def __init__(self, words):
        self.words = set(words)
        trie: dict = {}
        for word in self.words:
            node = trie
            for ch in word:
                node = node.setdefault(ch, {})
            node[""] = True
        self._trie = trie
        self._starts = re.compile("[" + "".join(re.escape(ch) for ch in sorted(trie)) + "]")

    def find(self, text: str):
        """[(start, end), ...] of the matches, in order."""
        out = []
        trie, search, n = self._trie, self._starts.search, len(text)
        pos = 0
        while True:
            found = search(text, pos)
            if found is None:
                return out
            start = found.start()
            node, j, end = trie[text[start]], start + 1, -1
            while True:
                if "" in node:
                    end = j
                if j >= n:
                    break
                node = node.get(text[j])
                if node is None:
                    break
                j += 1
            if end > 0:
                out.append((start, end))
                pos = end
            else:
                pos = start + 1


def literal_matcher(words):
    """A LiteralMatcher for the non-empty `words`, or None when there are none."""
    words = [w for w in words if w]
    return LiteralMatcher(words) if words else None


def is_word_char(ch: str) -> bool:
    """Rust regex's Unicode `\\w` for one character (what single_word added tokens look at):
    letters, marks, decimal and letter numbers, connector punctuation, ZWNJ/ZWJ."""
    code = ord(ch)
    if in_ranges(code, LETTER_RANGES) or in_ranges(code, MARK_RANGES) or ch in "\u200c\u200d":
        return True
    return unicodedata.category(ch) in ("Nd", "Nl", "Pc")
