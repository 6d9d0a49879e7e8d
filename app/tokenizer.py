"""Tokenizers in pure Python (standard library only): GPT-2 byte-level BPE, characters, streaming,
and the entry points for a model folder's tokenizer files (tokenizer.json: app/hf_tokenizer.py).

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
         * The letter and number classes are embedded tables (app/unicode_data.py's `LETTER_RANGES`,
           `NUMBER_RANGES`), not `unicodedata`: CPython 3.11 knows Unicode 14 while tiktoken's
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
    that never completed in `invalid_tail_bytes`. A tokenizer.json tokenizer streams through its
    own decoder (stripped leading space, byte-fallback runs), with the same guarantee.

load_tokenizer_from_texts({filename: text}) picks the tokenizer a model folder describes:
HFTokenizer for a tokenizer.json (with tokenizer_config.json and chat_template.jinja), GPT2Tokenizer
for vocab.json + merges.txt or a plain GPT-2 tokenizer.json, CharTokenizer for char_vocab.json.
load_tokenizer(folder) does the same from a local folder (CPython). measure_speed(tokenizer, text)
times encode and decode.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from bisect import bisect_right
from itertools import chain

from .byte_level import bytes_to_unicode
from .byte_level import incomplete_tail as _incomplete_tail
from .errors import UnknownCharactersError
from .hf_tokenizer import HFTokenizer
from .unicode_data import LETTER_RANGES, NUMBER_RANGES, WHITESPACE

_chain = chain.from_iterable

__all__ = [
    "GPT2_PATTERN",
    "GPT2Tokenizer",
    "CharTokenizer",
    "UnknownCharactersError",
    "StreamingDetokenizer",
    "load_tokenizer_from_texts",
    "load_tokenizer",
    "measure_speed",
    "bytes_to_unicode",
    "pretokenize",
    "WHITESPACE",
]

# The pre-tokenizer pattern of tiktoken's "gpt2" encoding (written for the `regex` module / Rust).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ENDOFTEXT = "<|endoftext|>"

# Pieces longer than this (in bytes) are merged with a heap: O(n log n) instead of O(n^2).
_HEAP_BPE_MIN_BYTES = 128
_NO_RANK = 1 << 62


_BYTE_ENCODER = bytes_to_unicode()
_BYTE_DECODER = {c: b for b, c in _BYTE_ENCODER.items()}


def _fix_surrogates(text: str) -> str:
    """tiktoken's treatment of a str that UTF-8 cannot encode (it holds surrogates)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _json_object(text, filename: str) -> dict:
    if isinstance(text, dict):  # already parsed
        return text
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
            levels = [pre] if pre.get("type") != "Sequence" else [
                p for p in pre.get("pretokenizers", []) if isinstance(p, dict)]
            if not any(p.get("type") == "ByteLevel" for p in levels):
                raise ValueError(f"tokenizer.json: pre_tokenizer {pre.get('type')!r} is not supported "
                                 "(only GPT-2's ByteLevel)")
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
            prefix = "" if message.startswith("tokenizer.json") else "tokenizer.json: "
            raise ValueError(prefix + message) from None

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

    def clear_cache(self):
        """Forget the cached pieces (a benchmark's cold start)."""
        self._cache.clear()

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
        return (f"GPT2Tokenizer(vocab_size={self.vocab_size}, merges={len(self._ranks)}, "
                f"specials={sorted(self.special_tokens)})")


# ---------------------------------------------------------------------------------------------
# characters


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

    A tokenizer with its own streaming decoder (a tokenizer.json one: `stream_decoder()`, whose
    decoders may strip a leading space or hold a run of byte-fallback tokens) streams through it,
    with the same guarantee against decode(ids, skip_special_tokens).
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.pending_bytes = b""  # the start of a character that is not complete yet
        self.invalid_tail_bytes = 0
        make = getattr(tokenizer, "stream_decoder", None)
        self._stream = make(skip_special_tokens) if make is not None else None

    def push(self, token_id: int) -> str:
        if self._stream is not None:
            return self._stream.push(token_id)
        data = self.pending_bytes + self.tokenizer.token_bytes(token_id)
        keep = _incomplete_tail(data)
        if keep:
            self.pending_bytes = data[-keep:]
            data = data[:-keep]
        else:
            self.pending_bytes = b""
        return data.decode("utf-8", "replace")

    def flush(self) -> str:
        if self._stream is not None:
            return self._stream.flush()
        rest, self.pending_bytes = self.pending_bytes, b""
        self.invalid_tail_bytes = len(rest)
        return rest.decode("utf-8", "replace")


# the files a model folder's tokenizer may have, in the order load_tokenizer reads them
TOKENIZER_FILE_NAMES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json",
                        "merges.txt", "char_vocab.json")


def _is_plain_gpt2(data: dict) -> bool:
    """A tokenizer.json that says no more than GPT-2's vocab.json + merges.txt: byte-level BPE with
    GPT-2's own pattern, nothing around it, and <|endoftext|> as its only added token. Such a file
    keeps GPT2Tokenizer (tiktoken's ids; <|endoftext|> in text is plain text unless allowed)."""
    def kind(key: str):
        value = data.get(key)
        return "ByteLevel" if value is None else value.get("type") if isinstance(value, dict) else None

    model, pre = data.get("model"), data.get("pre_tokenizer")
    added = data.get("added_tokens") or []
    return (isinstance(model, dict) and model.get("type", "BPE") == "BPE" and not model.get("byte_fallback")
            and not model.get("ignore_merges") and model.get("unk_token") is None
            and data.get("normalizer") is None
            and isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and kind("post_processor") == "ByteLevel" and kind("decoder") == "ByteLevel"
            and isinstance(added, list) and [a.get("content") for a in added if isinstance(a, dict)] == [ENDOFTEXT])


def load_tokenizer_from_texts(files: dict):
    """The tokenizer a model folder describes, from {file name: file text}.

    tokenizer.json -> HFTokenizer (app/hf_tokenizer.py; with tokenizer_config.json and
    chat_template.jinja when given), except a file that is plain GPT-2 (`_is_plain_gpt2`), which
    stays GPT2Tokenizer, from vocab.json + merges.txt when they are there too; vocab.json +
    merges.txt alone (or next to an unreadable tokenizer.json, which was never read before) ->
    GPT2Tokenizer; char_vocab.json -> CharTokenizer. A char_vocab.json next to other tokenizer
    files is ambiguous and refused. Problems raise ValueError naming the file.
    """
    present = {name for name, text in files.items() if text is not None}
    has_bpe = {"vocab.json", "merges.txt"} <= present
    if "char_vocab.json" in present:
        if has_bpe or "tokenizer.json" in present:
            other = "vocab.json + merges.txt" if has_bpe else "tokenizer.json"
            raise ValueError(f"both char_vocab.json and {other} are present: it is unclear which tokenizer "
                             "the model uses; keep only one")
        return CharTokenizer.from_json(files["char_vocab.json"])
    if "tokenizer.json" in present:
        try:
            data = _json_object(files["tokenizer.json"], "tokenizer.json")
        except ValueError:
            if not has_bpe:
                raise
            data = None
        if data is not None and not _is_plain_gpt2(data):
            return HFTokenizer(data, None if files.get("tokenizer_config.json") is None else
                               _json_object(files["tokenizer_config.json"], "tokenizer_config.json"),
                               files.get("chat_template.jinja"))
        if data is not None and not has_bpe:
            return GPT2Tokenizer.from_tokenizer_json(data)
    if has_bpe:
        return GPT2Tokenizer.from_texts(files["vocab.json"], files["merges.txt"])
    if present & {"vocab.json", "merges.txt"}:
        have, lack = ("vocab.json", "merges.txt") if "vocab.json" in present else ("merges.txt", "vocab.json")
        raise ValueError(f"{have} without {lack}: GPT-2 tokenizer files come in pairs")
    raise ValueError("no tokenizer files: expected vocab.json + merges.txt, tokenizer.json or char_vocab.json")


def load_tokenizer(folder):
    """The tokenizer of a local model folder (CPython: tools, tests): reads whichever of
    TOKENIZER_FILE_NAMES it has and picks as load_tokenizer_from_texts does."""
    files = {}
    for name in TOKENIZER_FILE_NAMES:
        path = os.path.join(os.fspath(folder), name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                files[name] = f.read()
    if not files:
        raise ValueError(f"{folder}: no tokenizer files: expected tokenizer.json, vocab.json + merges.txt "
                         "or char_vocab.json")
    return load_tokenizer_from_texts(files)


# ---------------------------------------------------------------------------------------------
# the pre-tokenizer


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


def measure_speed(tokenizer, text: str, repeat: int = 3) -> dict:
    """Encode and decode speed of `tokenizer` on `text`, best of `repeat` runs, in UTF-8 MB (10**6
    bytes) per second: encode_cold (caches cleared first), encode_warm (every piece cached: the
    steady state on real text) and decode. Runs the same in CPython (tools/bench_tokenizer.py) and
    in Pyodide, e.g. from the page's console:

        from pywebgpt.tokenizer import load_tokenizer_from_texts, measure_speed
        tok = load_tokenizer_from_texts({"tokenizer.json": tokenizer_json_text})
        measure_speed(tok, sample_text)
    """
    import time  # noqa: PLC0415 - only the benchmark needs it

    mb = len(text.encode("utf-8", "surrogatepass")) / 1e6
    clear = getattr(tokenizer, "clear_cache", None)

    def best(run) -> float:
        fastest = float("inf")
        for _ in range(max(1, repeat)):
            start = time.perf_counter()
            run()
            fastest = min(fastest, time.perf_counter() - start)
        return max(fastest, 1e-9)

    def cold():
        if clear is not None:
            clear()
        tokenizer.encode(text)

    cold_s = best(cold)
    ids = tokenizer.encode(text)
    warm_s = best(lambda: tokenizer.encode(text))
    decode_s = best(lambda: tokenizer.decode(ids))
    return {"text_mb": round(mb, 4), "tokens": len(ids), "encode_cold_mb_s": round(mb / cold_s, 3),
            "encode_warm_mb_s": round(mb / warm_s, 3), "decode_mb_s": round(mb / decode_s, 3)}
