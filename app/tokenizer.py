"""Tokenizers in pure Python (standard library only): GPT-2 byte-level BPE, characters, streaming.

This module runs unchanged in CPython (tools, tests) and in Pyodide (the page), where neither the
third-party `regex` module nor numpy exists.

GPT2Tokenizer
    Byte-level BPE that gives exactly the ids of tiktoken's "gpt2" encoding for any Python str.
    Text goes through three stages, each a faithful copy of tiktoken's:

    1. Pre-tokenization with GPT-2's pattern (`GPT2_PATTERN`)

           '(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

       emulated with the standard `re` module: `\\p{L}`, `\\p{N}` and `\\s` are spelled out as explicit
       character classes, so that the scan runs at C speed and keeps the pattern's backtracking
       (`\\s+(?!\\S)` leaves the last space of a run to the word after it: "a   b" -> "a", "  ",
       " b"). Notes on exactness:
         * The letter and number classes are embedded tables (`_LETTER_RANGES`, `_NUMBER_RANGES` at
           the end of this file), not `unicodedata`: CPython 3.11 knows Unicode 14 while tiktoken's
           Rust regex engine and Pyodide's CPython 3.14 know Unicode 16, so categories from
           `unicodedata` would differ from tiktoken (and between the two runtimes) for the ~9,400
           letters and digits added since. The tables were read out of tiktoken 0.14's own regex
           engine (tests/test_tokenizer.py re-derives them and checks every code point).
         * `\\s` is Unicode White_Space (25 characters: \\t \\n \\v \\f \\r, space, \\x85, \\xa0,
           \\u1680, \\u2000-\\u200a, \\u2028, \\u2029, \\u202f, \\u205f, \\u3000). It is not
           `str.isspace()`: the separators \\x1c-\\x1f are punctuation here.
         * The contractions are case-sensitive ("'S" is "'" + "S"), as in tiktoken.
         * Surrogates: a Python str may hold UTF-16 surrogates, which UTF-8 cannot encode. tiktoken
           then re-reads the text as UTF-16 with errors="replace": a high+low surrogate pair becomes
           the character it encodes and a lone surrogate becomes U+FFFD. This module does the same,
           so encode() never raises on any str and agrees with tiktoken on it.
    2. Byte-level BPE on each piece with tiktoken's algorithm: a piece that is a token as a whole
       is that token; otherwise, starting from single bytes, repeatedly merge the adjacent pair
       whose concatenation has the lowest merge rank, leftmost first. (The rank belongs to the
       concatenated bytes, as in tiktoken; for GPT-2's files this is the same as ranking by merge
       line.) Long pieces (say, a run of 10,000 spaces) use a heap instead of rescanning.
    3. A cache piece -> ids (a dict, cleared when it reaches `cache_size` entries). Real text repeats
       its pieces, so most of it is dictionary lookups.

    `<|endoftext|>` in the input is plain text unless encode(..., allow_special=True).

CharTokenizer
    One token per character from a `char_vocab.json` object (char -> id). Unknown characters raise
    UnknownCharactersError (which names them and their positions) unless drop_unknown=True; they
    are never substituted silently.

StreamingDetokenizer
    Fed ids one by one, returns only complete UTF-8 text: a token that ends inside a character
    returns "" until a later token completes it. Bytes that can never become valid UTF-8 come out
    as U+FFFD as soon as that is certain. flush() returns the rest and counts the trailing bytes
    that never completed in `invalid_tail_bytes`.

load_tokenizer_from_texts({filename: text}) picks the tokenizer a model folder describes.
"""

from __future__ import annotations

import heapq
import json
import re
from bisect import bisect_right
from itertools import chain

_chain = chain.from_iterable

__all__ = [
    "GPT2_PATTERN",
    "GPT2Tokenizer",
    "CharTokenizer",
    "UnknownCharactersError",
    "StreamingDetokenizer",
    "load_tokenizer_from_texts",
    "bytes_to_unicode",
    "pretokenize",
    "WHITESPACE",
]

# The pre-tokenizer pattern of tiktoken's "gpt2" encoding (written for the `regex` module / Rust).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Unicode White_Space, which is what `\s` means in tiktoken's (Rust) regex engine.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"

ENDOFTEXT = "<|endoftext|>"

# Pieces longer than this (in bytes) are merged with a heap: O(n log n) instead of O(n^2).
_HEAP_BPE_MIN_BYTES = 128
_NO_RANK = 1 << 62


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map byte -> printable character used to write vocab.json / merges.txt.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, \\xad, ...) map to
    U+0100 onwards in byte order, so that byte 0x20 (space) is "Ġ" and 0x0a (newline) is "Ċ".
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


_BYTE_ENCODER = bytes_to_unicode()
_BYTE_DECODER = {c: b for b, c in _BYTE_ENCODER.items()}


def _fix_surrogates(text: str) -> str:
    """tiktoken's treatment of a str that UTF-8 cannot encode (it holds surrogates)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _json_object(text, filename: str) -> dict:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{filename}: not UTF-8 text ({exc})") from None
    if not isinstance(text, str):
        raise ValueError(f"{filename}: expected the file's text, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{filename}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{filename}: expected a JSON object, got {type(value).__name__}")
    return value


def _check_id(value, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what}: token ids must be non-negative integers, got {value!r}")
    return value


def _decode_error(ids, table) -> ValueError:
    """A clear error for the first id of `ids` that `table` (id -> bytes or None) cannot decode."""
    for position, token in enumerate(ids):
        if type(token) is not int and not (hasattr(token, "__index__") and not isinstance(token, bool)):
            return ValueError(f"token id at position {position} is not an integer: {token!r}")
        token = int(token)
        if not 0 <= token < len(table):
            return ValueError(f"token id {token} at position {position} is out of range: "
                              f"this tokenizer's ids are 0..{len(table) - 1}")
        if table[token] is None:
            return ValueError(f"token id {token} at position {position} is not in this tokenizer's vocabulary")
    return ValueError("cannot decode these token ids")


def _join_bytes(ids, table) -> bytes:
    if not isinstance(ids, (list, tuple)):
        ids = list(ids)  # a generator, an array, a numpy array
    try:
        if ids and min(ids) < 0:  # a negative index would silently read from the end
            raise IndexError
        return b"".join([table[i] for i in ids])
    except (IndexError, TypeError):
        raise _decode_error(list(ids), table) from None


# ---------------------------------------------------------------------------------------------
# GPT-2 byte-level BPE


def _parse_merges(merges) -> list[tuple[str, str]]:
    """merges.txt text, or a list of "a b" strings / (a, b) pairs -> list of pairs."""
    if isinstance(merges, (bytes, bytearray)):
        merges = bytes(merges).decode("utf-8")
    if isinstance(merges, str):
        lines = merges.split("\n")
        out = []
        for number, line in enumerate(lines, 1):
            if number == 1 and line.startswith("#version"):
                continue
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"merges.txt line {number}: expected two tokens separated by a space, got {line!r}")
            out.append((parts[0], parts[1]))
        return out
    out = []
    for number, item in enumerate(merges):
        if isinstance(item, str):
            parts = item.split(" ")
        elif isinstance(item, (list, tuple)):
            parts = list(item)
        else:
            parts = None
        if not parts or len(parts) != 2 or not all(isinstance(p, str) and p for p in parts):
            raise ValueError(f"merge {number}: expected 'a b' or [a, b], got {item!r}")
        out.append((parts[0], parts[1]))
    return out


class GPT2Tokenizer:
    """Byte-level BPE identical to tiktoken's GPT-2 encoding (see the module docstring).

    GPT2Tokenizer(vocab, merges, special_tokens=None)
        vocab: {token string as written in vocab.json: id}; merges: merges.txt text, or a list of
        "a b" strings or (a, b) pairs, in priority order. special_tokens: {text: id} recognized
        by encode(..., allow_special=True); by default the vocab entries that are neither a byte
        nor the result of a merge (for GPT-2: "<|endoftext|>" = 50256).
    """

    def __init__(self, vocab: dict, merges, special_tokens: dict | None = None, *,
                 add_prefix_space: bool = False, cache_size: int = 100_000):
        if not isinstance(vocab, dict) or not vocab:
            raise ValueError("vocab.json: expected a non-empty JSON object {token: id}")
        merge_pairs = _parse_merges(merges)
        by_id: dict[int, str] = {}
        for token, token_id in vocab.items():
            if not isinstance(token, str) or not token:
                raise ValueError(f"vocab.json: token {token!r} is not a non-empty string")
            _check_id(token_id, f"vocab.json: token {token!r}")
            if token_id in by_id:
                raise ValueError(f"vocab.json: id {token_id} is given to both {by_id[token_id]!r} and {token!r}")
            by_id[token_id] = token
        missing = [b for b, ch in _BYTE_ENCODER.items() if ch not in vocab]
        if missing:
            raise ValueError(f"vocab.json: {len(missing)} of the 256 byte tokens are missing "
                             f"(first: {_BYTE_ENCODER[missing[0]]!r} for byte {missing[0]:#04x}); "
                             "a byte-level BPE vocabulary must contain all of them")

        def to_bytes(token: str, where: str) -> bytes:
            try:
                return bytes([_BYTE_DECODER[ch] for ch in token])
            except KeyError:
                raise ValueError(f"{where}: {token!r} is not written in GPT-2's byte-level alphabet") from None

        # merge rank of the concatenated bytes: tiktoken's notion of merge priority
        ranks: dict[bytes, int] = {}
        merged_tokens = set()
        for number, (a, b) in enumerate(merge_pairs):
            for part in (a, b, a + b):
                if part not in vocab:
                    raise ValueError(f"merges: line {number + 1} ({a} {b}): {part!r} is not in vocab.json")
            merged = to_bytes(a, "merges") + to_bytes(b, "merges")
            ranks.setdefault(merged, number)
            merged_tokens.add(a + b)
        if special_tokens is None:
            byte_symbols = set(_BYTE_ENCODER.values())
            special_tokens = {t: i for t, i in vocab.items() if t not in byte_symbols and t not in merged_tokens}
        specials = {}
        for text, token_id in special_tokens.items():
            if not isinstance(text, str) or not text:
                raise ValueError(f"special token {text!r} is not a non-empty string")
            specials[text] = _check_id(token_id, f"special token {text!r}")

        special_ids = set(specials.values())
        encoder: dict[bytes, int] = {}
        table_size = max(list(by_id) + list(special_ids)) + 1
        decoder: list = [None] * table_size
        for token_id, token in by_id.items():
            if token_id in special_ids:
                continue
            if token in specials:
                raise ValueError(f"special token {token!r} has id {specials[token]} but vocab.json gives it {token_id}")
            raw = to_bytes(token, "vocab.json")
            decoder[token_id] = raw
            encoder.setdefault(raw, token_id)
        for text, token_id in specials.items():
            decoder[token_id] = text.encode("utf-8", "surrogatepass")

        self._encoder = encoder
        self._ranks = ranks
        self._decoder = decoder
        self._byte_ids = [encoder[bytes([b])] for b in range(256)]
        self.special_tokens = dict(specials)
        self._special_re = (re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
                            if specials else None)
        self.add_prefix_space = bool(add_prefix_space)
        self.vocab_size = table_size
        self.eos_token_id = specials.get(ENDOFTEXT)
        self.bos_token_id = self.eos_token_id
        self.cache_size = int(cache_size)
        self._cache: dict[str, tuple] = {}

    # -- construction from files ---------------------------------------------------------------

    @classmethod
    def from_texts(cls, vocab_json_text, merges_txt_text, **kwargs) -> "GPT2Tokenizer":
        """From the contents of vocab.json and merges.txt (str or bytes), e.g. fetched by the page."""
        vocab = _json_object(vocab_json_text, "vocab.json")
        if isinstance(merges_txt_text, (bytes, bytearray)):
            try:
                merges_txt_text = bytes(merges_txt_text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"merges.txt: not UTF-8 text ({exc})") from None
        if not isinstance(merges_txt_text, str):
            raise ValueError(f"merges.txt: expected the file's text, got {type(merges_txt_text).__name__}")
        return cls(vocab, merges_txt_text, **kwargs)

    @classmethod
    def from_files(cls, vocab_json_path, merges_txt_path, **kwargs) -> "GPT2Tokenizer":
        with open(vocab_json_path, encoding="utf-8") as f:
            vocab_text = f.read()
        with open(merges_txt_path, encoding="utf-8") as f:
            merges_text = f.read()
        return cls.from_texts(vocab_text, merges_text, **kwargs)

    @classmethod
    def from_tokenizer_json(cls, text, **kwargs) -> "GPT2Tokenizer":
        """From a Hugging Face tokenizer.json whose model is byte-level BPE (GPT-2 and its kin).

        The vocabulary and merges come from "model" (merges as "a b" strings or [a, b] pairs); the
        special tokens are "added_tokens" (content -> id).
        """
        data = _json_object(text, "tokenizer.json")
        model = data.get("model")
        if not isinstance(model, dict):
            raise ValueError("tokenizer.json: no \"model\" object")
        kind = model.get("type", "BPE")
        if kind != "BPE":
            raise ValueError(f"tokenizer.json: model type {kind!r} is not supported (only byte-level BPE)")
        vocab, merges = model.get("vocab"), model.get("merges")
        if not isinstance(vocab, dict):
            raise ValueError("tokenizer.json: model.vocab is not an object {token: id}")
        if not isinstance(merges, list):
            raise ValueError("tokenizer.json: model.merges is not a list")
        pre = data.get("pre_tokenizer")
        levels = []
        if isinstance(pre, dict):
            levels = [pre] if pre.get("type") != "Sequence" else [p for p in pre.get("pretokenizers", []) if isinstance(p, dict)]
            if not any(p.get("type") == "ByteLevel" for p in levels):
                raise ValueError(f"tokenizer.json: pre_tokenizer {pre.get('type')!r} is not supported (only GPT-2's ByteLevel)")
        add_prefix_space = any(p.get("type") == "ByteLevel" and p.get("add_prefix_space") for p in levels)
        added = data.get("added_tokens") or []
        if not isinstance(added, list):
            raise ValueError("tokenizer.json: added_tokens is not a list")
        specials = {}
        for entry in added:
            if not isinstance(entry, dict) or not isinstance(entry.get("content"), str) or "id" not in entry:
                raise ValueError(f"tokenizer.json: malformed added token {entry!r}")
            specials[entry["content"]] = _check_id(entry["id"], f"tokenizer.json: added token {entry['content']!r}")
        vocab = {t: i for t, i in vocab.items() if t not in specials}
        kwargs.setdefault("add_prefix_space", add_prefix_space)
        try:
            return cls(vocab, merges, specials, **kwargs)
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message if message.startswith("tokenizer.json") else f"tokenizer.json: {message}") from None

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, text: str, allow_special=False) -> list[int]:
        """Token ids of `text`, identical to tiktoken's encode_ordinary (or, with allow_special=True,
        to encode(text, allowed_special="all"): special token texts such as "<|endoftext|>" become
        their ids). allow_special may also be a collection of the special token texts to allow."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        if not allow_special or self._special_re is None:
            return self._encode_ordinary(text)
        allowed = self.special_tokens if allow_special is True else set(allow_special)
        out: list[int] = []
        start = 0
        for match in self._special_re.finditer(text):
            if match.group() not in allowed:
                continue
            if match.start() > start:
                out += self._encode_ordinary(text[start:match.start()])
            out.append(self.special_tokens[match.group()])
            start = match.end()
        if start < len(text):
            out += self._encode_ordinary(text[start:])
        return out

    def _encode_ordinary(self, text: str) -> list[int]:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = _fix_surrogates(text)
        if self.add_prefix_space and text and text[0] != " ":
            text = " " + text
        pieces = _findall(text)
        found = list(map(self._cache.get, pieces))
        if None in found:
            get = self._cache.get  # a piece may repeat within this text: look again before merging
            for i, ids in enumerate(found):
                if ids is None:
                    ids = get(pieces[i])
                    found[i] = ids if ids is not None else self._encode_piece(pieces[i])
        return list(_chain(found))

    def _encode_piece(self, piece: str) -> tuple:
        raw = piece.encode("utf-8")
        token = self._encoder.get(raw)
        if token is not None:
            ids = (token,)
        elif len(raw) == 1:
            ids = (self._byte_ids[raw[0]],)
        else:
            encoder = self._encoder
            ids = tuple(encoder[p] for p in self._merge(raw))
        cache = self._cache
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[piece] = ids
        return ids

    def _merge(self, raw: bytes) -> list[bytes]:
        """tiktoken's byte-pair merge: repeatedly join the leftmost adjacent pair of lowest rank."""
        if len(raw) >= _HEAP_BPE_MIN_BYTES:
            return self._merge_heap(raw)
        get = self._ranks.get
        parts = [raw[i:i + 1] for i in range(len(raw))]
        ranks = [get(parts[i] + parts[i + 1], _NO_RANK) for i in range(len(parts) - 1)]
        while ranks:
            best = min(ranks)
            if best == _NO_RANK:
                break
            i = ranks.index(best)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
            del ranks[i]
            if i < len(ranks):
                ranks[i] = get(parts[i] + parts[i + 1], _NO_RANK)
            if i > 0:
                ranks[i - 1] = get(parts[i - 1] + parts[i], _NO_RANK)
        return parts

    def _merge_heap(self, raw: bytes) -> list[bytes]:
        """The same merges as _merge, with a heap of (rank, start) and lazy deletion.

        Parts are identified by their start offset in `raw`; a heap entry (rank, left, mid, right)
        is the pair raw[left:mid] + raw[mid:right], still valid if both parts still have those
        bounds. Popping the smallest (rank, left) is the leftmost pair of lowest rank.
        """
        get = self._ranks.get
        n = len(raw)
        end = list(range(1, n + 1))          # end[start] of the part beginning at start
        prev = list(range(-1, n - 1))        # previous part's start (-1: none)
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            rank = get(raw[i:i + 2])
            if rank is not None:
                heap.append((rank, i, i + 1, i + 2))
        heapq.heapify(heap)
        while heap:
            rank, left, mid, right = heapq.heappop(heap)
            if not (alive[left] and alive[mid] and end[left] == mid and end[mid] == right):
                continue
            end[left] = right
            alive[mid] = False
            if right < n:
                prev[right] = left
                after = end[right]
                r = get(raw[left:after])
                if r is not None:
                    heapq.heappush(heap, (r, left, right, after))
            before = prev[left]
            if before >= 0:
                r = get(raw[before:right])
                if r is not None:
                    heapq.heappush(heap, (r, before, left, right))
        parts = []
        i = 0
        while i < n:
            parts.append(raw[i:end[i]])
            i = end[i]
        return parts

    # -- decoding --------------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token: its text in UTF-8)."""
        if type(token_id) is int and 0 <= token_id < len(self._decoder):
            raw = self._decoder[token_id]
            if raw is not None:
                return raw
        raise _decode_error([token_id], self._decoder)

    def decode_bytes(self, ids) -> bytes:
        return _join_bytes(ids, self._decoder)

    def decode(self, ids) -> str:
        """Text of the ids; bytes that are not valid UTF-8 become U+FFFD (errors="replace")."""
        return _join_bytes(ids, self._decoder).decode("utf-8", "replace")

    def id_to_token(self, token_id: int) -> str:
        """The token as written in vocab.json (byte-level alphabet), or a special token's text."""
        raw = self.token_bytes(token_id)
        for text, i in self.special_tokens.items():
            if i == token_id:
                return text
        return "".join(_BYTE_ENCODER[b] for b in raw)

    def __repr__(self) -> str:
        return f"GPT2Tokenizer(vocab_size={self.vocab_size}, merges={len(self._ranks)}, specials={sorted(self.special_tokens)})"


# ---------------------------------------------------------------------------------------------
# characters


class UnknownCharactersError(ValueError):
    """The text has characters that a character-level vocabulary does not contain.

    .chars: the unknown characters, sorted and unique; .positions: [(index, char), ...] for every
    occurrence. The message names them; CharTokenizer.encode(text, drop_unknown=True) drops them.
    """

    SHOWN_POSITIONS = 10

    def __init__(self, chars: list, positions: list):
        self.chars = chars
        self.positions = positions
        shown = ", ".join(f"{i} ({c!r})" for i, c in positions[:self.SHOWN_POSITIONS])
        more = f" and {len(positions) - self.SHOWN_POSITIONS} more" if len(positions) > self.SHOWN_POSITIONS else ""
        noun = "character" if len(chars) == 1 else "characters"
        super().__init__(
            f"the text has {len(chars)} {noun} that this model's vocabulary does not contain: "
            f"{', '.join(repr(c) for c in chars)} (at position {shown}{more}); "
            "remove them, or encode with drop_unknown=True")


class CharTokenizer:
    """One token per character, from char_vocab.json: a JSON object {character: id}."""

    def __init__(self, mapping: dict, bos_token_id: int | None = None):
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError("char_vocab.json: expected a non-empty JSON object {character: id}")
        by_id: dict[int, str] = {}
        for ch, token_id in mapping.items():
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"char_vocab.json: key {ch!r} is not a single character")
            if 0xD800 <= ord(ch) < 0xE000:
                raise ValueError(f"char_vocab.json: key {ch!r} is a lone surrogate, not a character")
            _check_id(token_id, f"char_vocab.json: character {ch!r}")
            if token_id in by_id:
                raise ValueError(f"char_vocab.json: id {token_id} is given to both {by_id[token_id]!r} and {ch!r}")
            by_id[token_id] = ch
        self.vocab_size = max(by_id) + 1
        if bos_token_id is not None:
            _check_id(bos_token_id, "bos_token_id")
            if bos_token_id not in by_id:
                raise ValueError(f"bos_token_id {bos_token_id} is not one of the vocabulary's ids")
        self.bos_token_id = bos_token_id
        self.eos_token_id = None
        self._encoder = dict(mapping)
        self._chars: list = [None] * self.vocab_size
        self._bytes: list = [None] * self.vocab_size
        for token_id, ch in by_id.items():
            self._chars[token_id] = ch
            self._bytes[token_id] = ch.encode("utf-8")

    @classmethod
    def from_json(cls, text, **kwargs) -> "CharTokenizer":
        return cls(_json_object(text, "char_vocab.json"), **kwargs)

    @property
    def vocab(self) -> dict:
        return dict(self._encoder)

    def encode(self, text: str, drop_unknown: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        encoder = self._encoder
        try:
            return [encoder[ch] for ch in text]
        except KeyError:
            pass
        if drop_unknown:
            return [encoder[ch] for ch in text if ch in encoder]
        positions = [(i, ch) for i, ch in enumerate(text) if ch not in encoder]
        raise UnknownCharactersError(sorted({ch for _, ch in positions}), positions)

    def decode(self, ids) -> str:
        if not isinstance(ids, (list, tuple)):
            ids = list(ids)
        try:
            if ids and min(ids) < 0:
                raise IndexError
            return "".join([self._chars[i] for i in ids])
        except (IndexError, TypeError):
            raise _decode_error(list(ids), self._chars) from None

    def token_bytes(self, token_id: int) -> bytes:
        if type(token_id) is int and 0 <= token_id < self.vocab_size and self._bytes[token_id] is not None:
            return self._bytes[token_id]
        raise _decode_error([token_id], self._bytes)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------------------------------------
# streaming and loading


class StreamingDetokenizer:
    """Turns ids into text one at a time, emitting only complete UTF-8 characters.

    For any ids, "".join(push(i) for i in ids) + flush() == tokenizer.decode(ids). A token ending
    mid-character returns "" until a later token completes it. Only bytes that can still become
    a valid character are held back (at most 3); bytes that cannot come out as U+FFFD at once.
    (Python's own incremental UTF-8 decoder holds some invalid sequences, such as the start of
    an encoded surrogate b"\\xed\\xa0", one step longer.) After flush(), `invalid_tail_bytes` is
    how many trailing bytes ended incomplete (shown as one U+FFFD).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pending_bytes = b""  # the start of a character that is not complete yet
        self.invalid_tail_bytes = 0

    def push(self, token_id: int) -> str:
        data = self.pending_bytes + self.tokenizer.token_bytes(token_id)
        keep = _incomplete_tail(data)
        if keep:
            self.pending_bytes = data[-keep:]
            data = data[:-keep]
        else:
            self.pending_bytes = b""
        return data.decode("utf-8", "replace")

    def flush(self) -> str:
        rest, self.pending_bytes = self.pending_bytes, b""
        self.invalid_tail_bytes = len(rest)
        return rest.decode("utf-8", "replace")


# the allowed range of the byte after each lead byte that has a narrower one than 80..BF
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _incomplete_tail(data: bytes) -> int:
    """Length of the end of `data` that is a proper prefix of a valid UTF-8 character (0-3)."""
    n = len(data)
    for length in range(1, min(n, 3) + 1):
        lead = data[n - length]
        if 0x80 <= lead < 0xC0:
            continue  # a continuation byte: its lead is further back
        if not 0xC2 <= lead <= 0xF4:
            return 0  # ASCII, or a byte that never starts a character
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if length >= need:
            return 0  # complete (or overlong run): nothing to wait for
        if length >= 2:
            low, high = _SECOND_BYTE.get(lead, (0x80, 0xBF))
            if not low <= data[n - length + 1] <= high:
                return 0
        return length
    return 0


def load_tokenizer_from_texts(files: dict):
    """The tokenizer a model folder describes, from {file name: file text}.

    vocab.json + merges.txt -> GPT2Tokenizer; else tokenizer.json -> GPT2Tokenizer; else
    char_vocab.json -> CharTokenizer. A char_vocab.json next to GPT-2 tokenizer files is
    ambiguous and refused. Problems raise ValueError naming the file.
    """
    present = {name for name, text in files.items() if text is not None}
    has_bpe = {"vocab.json", "merges.txt"} <= present
    if "char_vocab.json" in present:
        if has_bpe or "tokenizer.json" in present:
            other = "vocab.json + merges.txt" if has_bpe else "tokenizer.json"
            raise ValueError(f"both char_vocab.json and {other} are present: it is unclear which tokenizer "
                             "the model uses; keep only one")
        return CharTokenizer.from_json(files["char_vocab.json"])
    if has_bpe:
        return GPT2Tokenizer.from_texts(files["vocab.json"], files["merges.txt"])
    if "tokenizer.json" in present:
        return GPT2Tokenizer.from_tokenizer_json(files["tokenizer.json"])
    if present & {"vocab.json", "merges.txt"}:
        have, lack = ("vocab.json", "merges.txt") if "vocab.json" in present else ("merges.txt", "vocab.json")
        raise ValueError(f"{have} without {lack}: GPT-2 tokenizer files come in pairs")
    raise ValueError("no tokenizer files: expected vocab.json + merges.txt, tokenizer.json or char_vocab.json")


# ---------------------------------------------------------------------------------------------
# the pre-tokenizer


def _parse_ranges(table: str) -> tuple:
    out = []
    for item in table.split():
        first, _, last = item.partition("-")
        out.append((int(first, 16), int(last or first, 16)))
    return tuple(out)


def _char_class(ranges) -> str:
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _compile_pattern(letters, numbers):
    ws = _char_class((ord(c), ord(c)) for c in WHITESPACE)
    lt, nm = _char_class(letters), _char_class(numbers)
    return re.compile(
        rf"'(?:[sdmt]|ll|ve|re)| ?[{lt}]+| ?[{nm}]+| ?[^{ws}{lt}{nm}]+|[{ws}]+(?![^{ws}])|[{ws}]+")


def pretokenize(text: str) -> list[str]:
    """The pieces GPT-2's pattern splits `text` into (after tiktoken's surrogate fix-up)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _fix_surrogates(text)
    return _findall(text)


# \p{L} and \p{N} as tiktoken 0.14's regex engine (Unicode 16.0) sees them: hexadecimal code points
# and inclusive ranges. Generated by probing tiktoken with patterns "\p{L}" and "\p{N}" over every
# code point (tests/test_tokenizer.py::test_unicode_tables_match_tiktoken does it again).
_LETTER_RANGES = """
41-5a 61-7a aa b5 ba c0-d6 d8-f6 f8-2c1 2c6-2d1 2e0-2e4 2ec 2ee 370-374 376-377 37a-37d 37f 386
388-38a 38c 38e-3a1 3a3-3f5 3f7-481 48a-52f 531-556 559 560-588 5d0-5ea 5ef-5f2 620-64a 66e-66f
671-6d3 6d5 6e5-6e6 6ee-6ef 6fa-6fc 6ff 710 712-72f 74d-7a5 7b1 7ca-7ea 7f4-7f5 7fa 800-815 81a
824 828 840-858 860-86a 870-887 889-88e 8a0-8c9 904-939 93d 950 958-961 971-980 985-98c 98f-990
993-9a8 9aa-9b0 9b2 9b6-9b9 9bd 9ce 9dc-9dd 9df-9e1 9f0-9f1 9fc a05-a0a a0f-a10 a13-a28 a2a-a30
a32-a33 a35-a36 a38-a39 a59-a5c a5e a72-a74 a85-a8d a8f-a91 a93-aa8 aaa-ab0 ab2-ab3 ab5-ab9 abd
ad0 ae0-ae1 af9 b05-b0c b0f-b10 b13-b28 b2a-b30 b32-b33 b35-b39 b3d b5c-b5d b5f-b61 b71 b83
b85-b8a b8e-b90 b92-b95 b99-b9a b9c b9e-b9f ba3-ba4 ba8-baa bae-bb9 bd0 c05-c0c c0e-c10 c12-c28
c2a-c39 c3d c58-c5a c5d c60-c61 c80 c85-c8c c8e-c90 c92-ca8 caa-cb3 cb5-cb9 cbd cdd-cde ce0-ce1
cf1-cf2 d04-d0c d0e-d10 d12-d3a d3d d4e d54-d56 d5f-d61 d7a-d7f d85-d96 d9a-db1 db3-dbb dbd
dc0-dc6 e01-e30 e32-e33 e40-e46 e81-e82 e84 e86-e8a e8c-ea3 ea5 ea7-eb0 eb2-eb3 ebd ec0-ec4 ec6
edc-edf f00 f40-f47 f49-f6c f88-f8c 1000-102a 103f 1050-1055 105a-105d 1061 1065-1066 106e-1070
1075-1081 108e 10a0-10c5 10c7 10cd 10d0-10fa 10fc-1248 124a-124d 1250-1256 1258 125a-125d
1260-1288 128a-128d 1290-12b0 12b2-12b5 12b8-12be 12c0 12c2-12c5 12c8-12d6 12d8-1310 1312-1315
1318-135a 1380-138f 13a0-13f5 13f8-13fd 1401-166c 166f-167f 1681-169a 16a0-16ea 16f1-16f8
1700-1711 171f-1731 1740-1751 1760-176c 176e-1770 1780-17b3 17d7 17dc 1820-1878 1880-1884
1887-18a8 18aa 18b0-18f5 1900-191e 1950-196d 1970-1974 1980-19ab 19b0-19c9 1a00-1a16 1a20-1a54
1aa7 1b05-1b33 1b45-1b4c 1b83-1ba0 1bae-1baf 1bba-1be5 1c00-1c23 1c4d-1c4f 1c5a-1c7d 1c80-1c8a
1c90-1cba 1cbd-1cbf 1ce9-1cec 1cee-1cf3 1cf5-1cf6 1cfa 1d00-1dbf 1e00-1f15 1f18-1f1d 1f20-1f45
1f48-1f4d 1f50-1f57 1f59 1f5b 1f5d 1f5f-1f7d 1f80-1fb4 1fb6-1fbc 1fbe 1fc2-1fc4 1fc6-1fcc
1fd0-1fd3 1fd6-1fdb 1fe0-1fec 1ff2-1ff4 1ff6-1ffc 2071 207f 2090-209c 2102 2107 210a-2113 2115
2119-211d 2124 2126 2128 212a-212d 212f-2139 213c-213f 2145-2149 214e 2183-2184 2c00-2ce4
2ceb-2cee 2cf2-2cf3 2d00-2d25 2d27 2d2d 2d30-2d67 2d6f 2d80-2d96 2da0-2da6 2da8-2dae 2db0-2db6
2db8-2dbe 2dc0-2dc6 2dc8-2dce 2dd0-2dd6 2dd8-2dde 2e2f 3005-3006 3031-3035 303b-303c 3041-3096
309d-309f 30a1-30fa 30fc-30ff 3105-312f 3131-318e 31a0-31bf 31f0-31ff 3400-4dbf 4e00-a48c
a4d0-a4fd a500-a60c a610-a61f a62a-a62b a640-a66e a67f-a69d a6a0-a6e5 a717-a71f a722-a788
a78b-a7cd a7d0-a7d1 a7d3 a7d5-a7dc a7f2-a801 a803-a805 a807-a80a a80c-a822 a840-a873 a882-a8b3
a8f2-a8f7 a8fb a8fd-a8fe a90a-a925 a930-a946 a960-a97c a984-a9b2 a9cf a9e0-a9e4 a9e6-a9ef
a9fa-a9fe aa00-aa28 aa40-aa42 aa44-aa4b aa60-aa76 aa7a aa7e-aaaf aab1 aab5-aab6 aab9-aabd aac0
aac2 aadb-aadd aae0-aaea aaf2-aaf4 ab01-ab06 ab09-ab0e ab11-ab16 ab20-ab26 ab28-ab2e ab30-ab5a
ab5c-ab69 ab70-abe2 ac00-d7a3 d7b0-d7c6 d7cb-d7fb f900-fa6d fa70-fad9 fb00-fb06 fb13-fb17 fb1d
fb1f-fb28 fb2a-fb36 fb38-fb3c fb3e fb40-fb41 fb43-fb44 fb46-fbb1 fbd3-fd3d fd50-fd8f fd92-fdc7
fdf0-fdfb fe70-fe74 fe76-fefc ff21-ff3a ff41-ff5a ff66-ffbe ffc2-ffc7 ffca-ffcf ffd2-ffd7
ffda-ffdc 10000-1000b 1000d-10026 10028-1003a 1003c-1003d 1003f-1004d 10050-1005d 10080-100fa
10280-1029c 102a0-102d0 10300-1031f 1032d-10340 10342-10349 10350-10375 10380-1039d 103a0-103c3
103c8-103cf 10400-1049d 104b0-104d3 104d8-104fb 10500-10527 10530-10563 10570-1057a 1057c-1058a
1058c-10592 10594-10595 10597-105a1 105a3-105b1 105b3-105b9 105bb-105bc 105c0-105f3 10600-10736
10740-10755 10760-10767 10780-10785 10787-107b0 107b2-107ba 10800-10805 10808 1080a-10835
10837-10838 1083c 1083f-10855 10860-10876 10880-1089e 108e0-108f2 108f4-108f5 10900-10915
10920-10939 10980-109b7 109be-109bf 10a00 10a10-10a13 10a15-10a17 10a19-10a35 10a60-10a7c
10a80-10a9c 10ac0-10ac7 10ac9-10ae4 10b00-10b35 10b40-10b55 10b60-10b72 10b80-10b91 10c00-10c48
10c80-10cb2 10cc0-10cf2 10d00-10d23 10d4a-10d65 10d6f-10d85 10e80-10ea9 10eb0-10eb1 10ec2-10ec4
10f00-10f1c 10f27 10f30-10f45 10f70-10f81 10fb0-10fc4 10fe0-10ff6 11003-11037 11071-11072 11075
11083-110af 110d0-110e8 11103-11126 11144 11147 11150-11172 11176 11183-111b2 111c1-111c4 111da
111dc 11200-11211 11213-1122b 1123f-11240 11280-11286 11288 1128a-1128d 1128f-1129d 1129f-112a8
112b0-112de 11305-1130c 1130f-11310 11313-11328 1132a-11330 11332-11333 11335-11339 1133d 11350
1135d-11361 11380-11389 1138b 1138e 11390-113b5 113b7 113d1 113d3 11400-11434 11447-1144a
1145f-11461 11480-114af 114c4-114c5 114c7 11580-115ae 115d8-115db 11600-1162f 11644 11680-116aa
116b8 11700-1171a 11740-11746 11800-1182b 118a0-118df 118ff-11906 11909 1190c-11913 11915-11916
11918-1192f 1193f 11941 119a0-119a7 119aa-119d0 119e1 119e3 11a00 11a0b-11a32 11a3a 11a50
11a5c-11a89 11a9d 11ab0-11af8 11bc0-11be0 11c00-11c08 11c0a-11c2e 11c40 11c72-11c8f 11d00-11d06
11d08-11d09 11d0b-11d30 11d46 11d60-11d65 11d67-11d68 11d6a-11d89 11d98 11ee0-11ef2 11f02
11f04-11f10 11f12-11f33 11fb0 12000-12399 12480-12543 12f90-12ff0 13000-1342f 13441-13446
13460-143fa 14400-14646 16100-1611d 16800-16a38 16a40-16a5e 16a70-16abe 16ad0-16aed 16b00-16b2f
16b40-16b43 16b63-16b77 16b7d-16b8f 16d40-16d6c 16e40-16e7f 16f00-16f4a 16f50 16f93-16f9f
16fe0-16fe1 16fe3 17000-187f7 18800-18cd5 18cff-18d08 1aff0-1aff3 1aff5-1affb 1affd-1affe
1b000-1b122 1b132 1b150-1b152 1b155 1b164-1b167 1b170-1b2fb 1bc00-1bc6a 1bc70-1bc7c 1bc80-1bc88
1bc90-1bc99 1d400-1d454 1d456-1d49c 1d49e-1d49f 1d4a2 1d4a5-1d4a6 1d4a9-1d4ac 1d4ae-1d4b9 1d4bb
1d4bd-1d4c3 1d4c5-1d505 1d507-1d50a 1d50d-1d514 1d516-1d51c 1d51e-1d539 1d53b-1d53e 1d540-1d544
1d546 1d54a-1d550 1d552-1d6a5 1d6a8-1d6c0 1d6c2-1d6da 1d6dc-1d6fa 1d6fc-1d714 1d716-1d734
1d736-1d74e 1d750-1d76e 1d770-1d788 1d78a-1d7a8 1d7aa-1d7c2 1d7c4-1d7cb 1df00-1df1e 1df25-1df2a
1e030-1e06d 1e100-1e12c 1e137-1e13d 1e14e 1e290-1e2ad 1e2c0-1e2eb 1e4d0-1e4eb 1e5d0-1e5ed 1e5f0
1e7e0-1e7e6 1e7e8-1e7eb 1e7ed-1e7ee 1e7f0-1e7fe 1e800-1e8c4 1e900-1e943 1e94b 1ee00-1ee03
1ee05-1ee1f 1ee21-1ee22 1ee24 1ee27 1ee29-1ee32 1ee34-1ee37 1ee39 1ee3b 1ee42 1ee47 1ee49 1ee4b
1ee4d-1ee4f 1ee51-1ee52 1ee54 1ee57 1ee59 1ee5b 1ee5d 1ee5f 1ee61-1ee62 1ee64 1ee67-1ee6a
1ee6c-1ee72 1ee74-1ee77 1ee79-1ee7c 1ee7e 1ee80-1ee89 1ee8b-1ee9b 1eea1-1eea3 1eea5-1eea9
1eeab-1eebb 20000-2a6df 2a700-2b739 2b740-2b81d 2b820-2cea1 2ceb0-2ebe0 2ebf0-2ee5d 2f800-2fa1d
30000-3134a 31350-323af
"""

_NUMBER_RANGES = """
30-39 b2-b3 b9 bc-be 660-669 6f0-6f9 7c0-7c9 966-96f 9e6-9ef 9f4-9f9 a66-a6f ae6-aef b66-b6f
b72-b77 be6-bf2 c66-c6f c78-c7e ce6-cef d58-d5e d66-d78 de6-def e50-e59 ed0-ed9 f20-f33
1040-1049 1090-1099 1369-137c 16ee-16f0 17e0-17e9 17f0-17f9 1810-1819 1946-194f 19d0-19da
1a80-1a89 1a90-1a99 1b50-1b59 1bb0-1bb9 1c40-1c49 1c50-1c59 2070 2074-2079 2080-2089 2150-2182
2185-2189 2460-249b 24ea-24ff 2776-2793 2cfd 3007 3021-3029 3038-303a 3192-3195 3220-3229
3248-324f 3251-325f 3280-3289 32b1-32bf a620-a629 a6e6-a6ef a830-a835 a8d0-a8d9 a900-a909
a9d0-a9d9 a9f0-a9f9 aa50-aa59 abf0-abf9 ff10-ff19 10107-10133 10140-10178 1018a-1018b
102e1-102fb 10320-10323 10341 1034a 103d1-103d5 104a0-104a9 10858-1085f 10879-1087f 108a7-108af
108fb-108ff 10916-1091b 109bc-109bd 109c0-109cf 109d2-109ff 10a40-10a48 10a7d-10a7e 10a9d-10a9f
10aeb-10aef 10b58-10b5f 10b78-10b7f 10ba9-10baf 10cfa-10cff 10d30-10d39 10d40-10d49 10e60-10e7e
10f1d-10f26 10f51-10f54 10fc5-10fcb 11052-1106f 110f0-110f9 11136-1113f 111d0-111d9 111e1-111f4
112f0-112f9 11450-11459 114d0-114d9 11650-11659 116c0-116c9 116d0-116e3 11730-1173b 118e0-118f2
11950-11959 11bf0-11bf9 11c50-11c6c 11d50-11d59 11da0-11da9 11f50-11f59 11fc0-11fd4 12400-1246e
16130-16139 16a60-16a69 16ac0-16ac9 16b50-16b59 16b5b-16b61 16d70-16d79 16e80-16e96 1ccf0-1ccf9
1d2c0-1d2d3 1d2e0-1d2f3 1d360-1d378 1d7ce-1d7ff 1e140-1e149 1e2f0-1e2f9 1e4f0-1e4f9 1e5f1-1e5fa
1e8c7-1e8cf 1e950-1e959 1ec71-1ecab 1ecad-1ecaf 1ecb1-1ecb4 1ed01-1ed2d 1ed2f-1ed3d 1f100-1f10c
1fbf0-1fbf9
"""

LETTER_RANGES = _parse_ranges(_LETTER_RANGES)
NUMBER_RANGES = _parse_ranges(_NUMBER_RANGES)

# `re` tests a character class's code points above U+FFFF one range at a time (only the BMP part
# becomes a bitmap), which makes classes with all of Unicode's astral letters and digits ~4x
# slower on any text. So the pattern has BMP-only classes, and text with astral characters is
# scanned through a stand-in: each astral character is replaced by a BMP character of the same
# class ("A" for a letter, "0" for a number, "!" for anything else; no astral character is
# whitespace, an apostrophe or a contraction letter, and these stand-ins are none of those
# either), which leaves every match the same. The pieces are then cut from the original text.
_findall_bmp = _compile_pattern(
    [(a, min(b, 0xFFFF)) for a, b in LETTER_RANGES if a <= 0xFFFF],
    [(a, min(b, 0xFFFF)) for a, b in NUMBER_RANGES if a <= 0xFFFF]).findall
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_LETTERS = [r for r in LETTER_RANGES if r[1] > 0xFFFF]
_ASTRAL_NUMBERS = [r for r in NUMBER_RANGES if r[1] > 0xFFFF]


def _in_ranges(code: int, ranges) -> bool:
    i = bisect_right(ranges, (code, 0x110000)) - 1
    return i >= 0 and ranges[i][0] <= code <= ranges[i][1]


def _astral_stand_in(match) -> str:
    code = ord(match.group())
    if _in_ranges(code, _ASTRAL_LETTERS):
        return "A"
    if _in_ranges(code, _ASTRAL_NUMBERS):
        return "0"
    return "!"


def _findall(text: str) -> list[str]:
    """GPT-2's pre-tokenization of a str without surrogates."""
    if text.isascii() or _ASTRAL.search(text) is None:
        return _findall_bmp(text)
    pieces = []
    start = 0
    for piece in _findall_bmp(_ASTRAL.sub(_astral_stand_in, text)):
        end = start + len(piece)
        pieces.append(text[start:end])
        start = end
    return pieces
