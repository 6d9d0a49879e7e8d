"""Read the Unicode tables of app/unicode_data.py out of the reference engines (a tool, not a test).

    python tools/unicode_tables.py [--table letters|numbers|marks|whitespace|normalization]

Prints JSON {table: [[first, last], ...]} of inclusive code point ranges, as Hugging Face tokenizers
(0.23.3, the installed one) sees them:
  letters, numbers, marks, whitespace  what its Oniguruma regexes match with \\p{L}, \\p{N}, \\p{M}, \\s
  normalization                        every code point its NFC/NFD/NFKC/NFKD act on: ones with a
                                       (canonical or compatibility) decomposition, a non-zero
                                       canonical combining class, or a part in a canonical composition
tests/test_tokenizer_json.py compares app/unicode_data.py with these; format_ranges() writes a
table in that module's text form.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import unicodedata

CODE_POINTS = [c for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]


def to_ranges(codes) -> list:
    out: list = []
    for code in sorted(codes):
        if out and out[-1][1] == code - 1:
            out[-1][1] = code
        else:
            out.append([code, code])
    return out


def format_ranges(ranges, width: int = 96) -> str:
    text = " ".join(f"{a:x}" if a == b else f"{a:x}-{b:x}" for a, b in ranges)
    return "\n".join(textwrap.wrap(text, width))


def regex_class(pattern: str) -> set:
    """The code points tokenizers' Split regex `pattern` matches (one at a time)."""
    from tokenizers import Regex, pre_tokenizers

    everything = "\x00" + "".join(map(chr, CODE_POINTS))
    split = pre_tokenizers.Split(Regex(pattern), "removed")
    kept = set(map(ord, "".join(piece for piece, _ in split.pre_tokenize_str(everything))))
    return set(CODE_POINTS) - kept


def _each(normalizer, strings: list) -> list:
    return normalizer.normalize_str("\x00".join(strings)).split("\x00")


def normalization_active() -> set:
    """Code points tokenizers' Unicode normalizers act on (see the module docstring)."""
    from tokenizers import normalizers

    nfkd, nfc = normalizers.NFKD(), normalizers.NFC()
    active = {c for c, out in zip(CODE_POINTS, _each(nfkd, [chr(c) for c in CODE_POINTS])) if out != chr(c)}
    decomposable = set(active)
    # a non-zero combining class: moved past U+0334 (class 1) or U+0345 (class 240)
    after_low = _each(nfc, ["a" + chr(c) + "\u0334" for c in CODE_POINTS])
    after_high = _each(nfc, ["a\u0345" + chr(c) for c in CODE_POINTS])
    for c, low, high in zip(CODE_POINTS, after_low, after_high):
        if "\u0334" in low[:-1] or high != "a\u0345" + chr(c) and high.endswith("\u0345"):
            active.add(c)
    # both parts of every canonical pair that composes (Hangul's are algorithmic)
    pairs = []
    for c in decomposable:
        mapping = unicodedata.decomposition(chr(c))
        if mapping and not mapping.startswith("<") and len(mapping.split()) == 2:
            pairs.append((c, [int(x, 16) for x in mapping.split()]))
    for (c, parts), out in zip(pairs, _each(nfc, ["".join(map(chr, parts)) for _, parts in pairs])):
        if out == chr(c):
            active.update(parts)
    for first, last in ((0x1100, 0x1112), (0x1161, 0x1175), (0x11A8, 0x11C2), (0xAC00, 0xD7A3)):
        active.update(range(first, last + 1))
    return active


TABLES = {
    "letters": lambda: regex_class(r"\p{L}"),
    "numbers": lambda: regex_class(r"\p{N}"),
    "marks": lambda: regex_class(r"\p{M}"),
    "whitespace": lambda: regex_class(r"\s"),
    "normalization": normalization_active,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(TABLES), action="append")
    parser.add_argument("--text", action="store_true", help="print app/unicode_data.py's text form instead of JSON")
    args = parser.parse_args(argv)
    for name in args.table or sorted(TABLES):
        ranges = to_ranges(TABLES[name]())
        print(f"# {name}\n{format_ranges(ranges)}" if args.text else json.dumps({name: ranges}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
