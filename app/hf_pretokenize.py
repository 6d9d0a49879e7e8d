"""tokenizer.json's normalizers and pre-tokenizers, as Hugging Face tokenizers 0.23 runs them.

Standard library only (CPython and Pyodide). Each is built from its JSON object; a type or an
option this module does not implement is refused with a ModelFormatError naming the key.

Normalizers map a str to a str: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace
(string or regex), Strip.

Pre-tokenizers cut a normalized piece into the words the model sees: Sequence, Split (every
behaviour: Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel
(add_prefix_space, use_regex: GPT-2's pattern), Metaspace (prepend_scheme always/first/never,
split), Digits (individual_digits). ByteLevel, when present, must be the last step: its mapping
of bytes to characters is then left to the model (app/hf_tokenizer.py), which caches by word.

Pieces are Python strs; `at_start` tells whether a piece starts at offset 0 of the original text,
which only Metaspace's prepend_scheme "first" looks at (tokenizers' offsets_original().0 == 0).

Unicode versions: NFC/NFD/NFKC/NFKD follow tokenizers, whose normalization tables are older than
CPython's: only the code points tokenizers itself normalizes are handed to unicodedata (see
app/unicode_data.py). Lowercase maps each character alone (no final-sigma rule), as Rust's
char::to_lowercase does, with the Unicode 16 letters CPython 3.11 does not know added
(app/unicode_data.py's LOWERCASE_16).
"""

from __future__ import annotations

import re
import unicodedata

from .errors import ModelFormatError
from .hf_patterns import LiteralPattern, UnicodeRegex, class_body, pattern_from_json
from .unicode_data import LOWERCASE_16, NORMALIZATION_RANGES, NUMBER_RANGES, WHITESPACE

__all__ = ["build_normalizer", "build_pre_tokenizer", "PreTokenizer", "GPT2_SPLIT_PATTERN"]

# ByteLevel's own split pattern in tokenizers (pre_tokenizers/byte_level.rs)
GPT2_SPLIT_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def _need(spec: dict, key: str, kind, where: str):
    value = spec.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ModelFormatError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _type_of(spec, where: str) -> str:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFormatError(f"{where}: expected an object with a \"type\", got {spec!r}")
    return spec["type"]


# ---------------------------------------------------------------------------------------------
# normalizers

def _unicode_normalizer(form: str):
    """unicodedata's normalization, restricted to the code points tokenizers normalizes: runs of
    them are normalized, every other code point is a boundary kept as it is (see
    app/unicode_data.py's NORMALIZATION_RANGES)."""
    normalize, is_normalized = unicodedata.normalize, unicodedata.is_normalized

    def run(text: str) -> str:
        if text.isascii() or is_normalized(form, text):
            return text  # CPython leaves it alone, and so tokenizers, which knows fewer code points
        return _ACTIVE_RUNS.sub(lambda m: normalize(form, m.group()), text)

    return run


_ACTIVE_RUNS = re.compile("[" + class_body(NORMALIZATION_RANGES) + "]+")


def _lowercase(text: str) -> str:
    """Each character on its own (no final-sigma rule), as Rust's char::to_lowercase."""
    if text.isascii():
        return text.lower()
    return "".join([c.lower() for c in text.translate(LOWERCASE_16)])


def _strip_normalizer(left: bool, right: bool):
    def run(text: str) -> str:
        if left:
            text = text.lstrip(WHITESPACE)
        if right:
            text = text.rstrip(WHITESPACE)
        return text
    return run


def _replace_normalizer(pattern, content: str):
    if isinstance(pattern, LiteralPattern):
        old = pattern.pattern
        return (lambda text: text.replace(old, content)) if old else (lambda text: text)

    def run(text: str) -> str:
        out, last = [], 0
        for start, end in pattern.spans(text):
            out.append(text[last:start])
            out.append(content)
            last = end
        out.append(text[last:])
        return "".join(out)
    return run


def build_normalizer(spec, where: str = "tokenizer.json: normalizer"):
    """The normalizer as a function str -> str, or None."""
    if spec is None:
        return None
    kind = _type_of(spec, where)
    if kind == "Sequence":
        steps = [build_normalizer(s, f"{where}.normalizers[{i}]")
                 for i, s in enumerate(_need(spec, "normalizers", list, where))]
        steps = [s for s in steps if s is not None]

        def run(text: str) -> str:
            for step in steps:
                text = step(text)
            return text
        return run
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return _unicode_normalizer(kind)
    if kind == "Lowercase":
        return _lowercase
    if kind == "Prepend":
        prefix = _need(spec, "prepend", str, where)
        return lambda text: prefix + text if text else text
    if kind == "Replace":
        pattern = pattern_from_json(spec.get("pattern"), f"{where}.pattern")
        return _replace_normalizer(pattern, _need(spec, "content", str, where))
    if kind == "Strip":
        return _strip_normalizer(bool(spec.get("strip_left", True)), bool(spec.get("strip_right", True)))
    raise ModelFormatError(f"{where}: the normalizer type {kind!r} is not supported "
                           "(supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip)")


# ---------------------------------------------------------------------------------------------
# pre-tokenizers

BEHAVIORS = ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")


def find_matches(pattern, text: str, invert: bool) -> list:
    """tokenizers' Pattern::find_matches: [((start, end), is_match)] covering all of `text`."""
    if not text:
        return [((0, 0), invert)]
    out, prev = [], 0
    for start, end in pattern.spans(text):
        if prev != start:
            out.append(((prev, start), invert))
        out.append(((start, end), not invert))
        prev = end
    if prev != len(text):
        out.append(((prev, len(text)), invert))
    return out


def split_by_behavior(text: str, matches: list, behavior: str):
    """NormalizedString::split: (pieces, whether the first kept piece starts at offset 0)."""
    if behavior == "Isolated":
        spans = [span for span, _ in matches]
    elif behavior == "Removed":
        spans = [span for span, is_match in matches if not is_match]
    elif behavior == "Contiguous":
        spans, previous = [], False
        for span, is_match in matches:
            if is_match == previous and spans:
                spans[-1] = (spans[-1][0], span[1])
            else:
                spans.append(span)
            previous = is_match
    elif behavior == "MergedWithPrevious":
        spans, previous = [], False
        for span, is_match in matches:
            if is_match and not previous and spans:
                spans[-1] = (spans[-1][0], span[1])
            else:
                spans.append(span)
            previous = is_match
    else:  # MergedWithNext
        spans, previous = [], False
        for span, is_match in reversed(matches):
            if is_match and not previous and spans:
                spans[-1] = (span[0], spans[-1][1])
            else:
                spans.append(span)
            previous = is_match
        spans.reverse()
    kept = [(s, e) for s, e in spans if e > s]
    return [text[s:e] for s, e in kept], bool(kept) and kept[0][0] == 0


class SplitStep:
    def __init__(self, pattern, behavior: str, invert: bool):
        self.pattern, self.behavior, self.invert = pattern, behavior, invert
        self.isolated = behavior == "Isolated" and not invert

    def split(self, text: str, at_start: bool):
        if self.isolated:
            pieces = self.pattern.covering_pieces(text)
            if pieces is not None:
                return pieces, at_start
        elif not self.invert and isinstance(self.pattern, LiteralPattern) and self.pattern.pattern not in text:
            return [text], at_start  # no match: one piece whatever the behaviour
        pieces, first_at_zero = split_by_behavior(text, find_matches(self.pattern, text, self.invert), self.behavior)
        return pieces, at_start and first_at_zero


class ByteLevelStep:
    _gpt2 = None

    def __init__(self, add_prefix_space: bool, use_regex: bool):
        self.add_prefix_space = add_prefix_space
        if use_regex and ByteLevelStep._gpt2 is None:
            ByteLevelStep._gpt2 = UnicodeRegex(GPT2_SPLIT_PATTERN, "ByteLevel")
        self.regex = ByteLevelStep._gpt2 if use_regex else None

    def split(self, text: str, at_start: bool):
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        if self.regex is None:
            return [text], at_start
        pieces = self.regex.covering_pieces(text)
        if pieces is None:  # the pattern matches every character; kept for safety
            pieces, _ = split_by_behavior(text, find_matches(self.regex, text, False), "Isolated")
        return pieces, at_start


class MetaspaceStep:
    def __init__(self, replacement: str, prepend_scheme: str, split: bool):
        self.replacement, self.prepend_scheme = replacement, prepend_scheme
        self.splitter = LiteralPattern(replacement, "Metaspace") if split else None

    def split(self, text: str, at_start: bool):
        rep = self.replacement
        text = text.replace(" ", rep)
        if not text.startswith(rep) and (self.prepend_scheme == "always"
                                         or self.prepend_scheme == "first" and at_start):
            text = rep + text
        if self.splitter is None:
            return [text], at_start
        pieces, first_at_zero = split_by_behavior(text, find_matches(self.splitter, text, False), "MergedWithNext")
        return pieces, at_start and first_at_zero


class _CharClassPattern:
    """Every character of a class is its own match (tokenizers' Pattern for Fn(char) -> bool)."""

    def __init__(self, regex: str):
        self._re = re.compile(regex)

    def spans(self, text: str) -> list:
        return [m.span() for m in self._re.finditer(text)]

    def covering_pieces(self, text: str):
        return None if self._re.search(text) else [text]


def _digits_step(individual: bool) -> SplitStep:
    body = class_body(NUMBER_RANGES)  # Rust's char::is_numeric
    return SplitStep(_CharClassPattern(f"[{body}]"), "Isolated" if individual else "Contiguous", False)


class PreTokenizer:
    """A chain of steps; `byte_level` says that the words still have to be mapped to bytes."""

    def __init__(self, steps: list, byte_level: bool, byte_level_prefix: bool):
        self.steps = steps
        self.byte_level = byte_level
        self.byte_level_prefix = byte_level_prefix  # ByteLevel's add_prefix_space

    def __call__(self, text: str, at_start: bool) -> list:
        pieces = [text]
        for step in self.steps:
            if len(pieces) == 1:
                pieces, at_start = step.split(pieces[0], at_start)
                continue
            out = []
            for i, piece in enumerate(pieces):
                sub, first_at_zero = step.split(piece, at_start and i == 0)
                out += sub
                if i == 0:
                    at_start = first_at_zero
            pieces = out
        return pieces


def _step(spec, where: str) -> list:
    kind = _type_of(spec, where)
    if kind == "Sequence":
        steps = []
        for i, sub in enumerate(_need(spec, "pretokenizers", list, where)):
            steps += _step(sub, f"{where}.pretokenizers[{i}]")
        return steps
    if kind == "Split":
        behavior = spec.get("behavior")
        if behavior not in BEHAVIORS:
            raise ModelFormatError(f"{where}.behavior: {behavior!r} is not one of {', '.join(BEHAVIORS)}")
        pattern = pattern_from_json(spec.get("pattern"), f"{where}.pattern")
        return [SplitStep(pattern, behavior, bool(spec.get("invert", False)))]
    if kind == "ByteLevel":
        return [ByteLevelStep(bool(spec.get("add_prefix_space", True)), bool(spec.get("use_regex", True)))]
    if kind == "Metaspace":
        replacement = spec.get("replacement", "\u2581")
        if not isinstance(replacement, str) or len(replacement) != 1:
            raise ModelFormatError(f"{where}.replacement: expected one character, got {replacement!r}")
        scheme = spec.get("prepend_scheme", "always")
        if spec.get("add_prefix_space") is False:
            if scheme != "never":  # tokenizers: prepend_scheme defaults to "always", a mismatch
                raise ModelFormatError(f"{where}: add_prefix_space does not match declared prepend_scheme")
            scheme = "never"
        if scheme not in ("always", "first", "never"):
            raise ModelFormatError(f"{where}.prepend_scheme: {scheme!r} is not one of always, first, never")
        return [MetaspaceStep(replacement, scheme, bool(spec.get("split", True)))]
    if kind == "Digits":
        return [_digits_step(bool(spec.get("individual_digits", False)))]
    raise ModelFormatError(f"{where}: the pre-tokenizer type {kind!r} is not supported "
                           "(supported: Sequence, Split, ByteLevel, Metaspace, Digits)")


def build_pre_tokenizer(spec, where: str = "tokenizer.json: pre_tokenizer") -> PreTokenizer:
    steps = [] if spec is None else _step(spec, where)
    byte_level = [i for i, s in enumerate(steps) if isinstance(s, ByteLevelStep)]
    if byte_level and byte_level != [len(steps) - 1]:
        raise ModelFormatError(f"{where}: ByteLevel must be the last pre-tokenizer of the Sequence (and appear once)")
    prefix = bool(byte_level) and steps[-1].add_prefix_space
    if byte_level and not prefix and steps[-1].regex is None:
        steps.pop()  # it only maps bytes to characters, which the model does
    return PreTokenizer(steps, bool(byte_level), prefix)
