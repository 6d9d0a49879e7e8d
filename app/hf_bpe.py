"""The BPE model of a tokenizer.json, with the results of Hugging Face tokenizers 0.23 (stdlib only).

A word (one piece of the pre-tokenizer) becomes initial symbols, one per character: the
character's token; else, with byte_fallback, the tokens <0x..> of its UTF-8 bytes; else the
unk_token (runs of unknown characters fused into one with fuse_unk); else nothing. (As in
tokenizers, a byte-fallback character does not end a pending unk run: the unk token comes after
its bytes.) For a byte-level tokenizer the characters are the word's UTF-8 bytes in GPT-2's byte
alphabet. With ignore_merges, a word that is itself a token is that token.

Then merges: repeatedly the adjacent pair with the lowest merge rank (its line in "merges"; a pair
listed twice keeps its last line, as tokenizers' hash map does), leftmost first, becomes the token
it merges into. Short words rescan a list; long ones use a heap with lazy deletion, as tokenizers'
Word::merge_all does (a stale entry is recognised because its pair no longer gives the same
merge).

Speed: results are cached per word (a dict cleared when full; words over 1,024 characters are
not). A SentencePiece-style word (a whole sentence, as Llama-2's and Gemma's files have no
pre-tokenizer) is first cut before each
"▁" whose preceding character can never be merged with it (no token of the vocabulary contains
that pair of characters, and both are tokens themselves), and, when no merge involves a byte token
(Llama-2's and Gemma's files), around every character that is not a token itself (its byte tokens
stand in for it and never merge): no merge can cross such a cut, so the pieces' results joined
are the word's result, and the pieces repeat enough to be cached.
"""

from __future__ import annotations

import heapq
import re
from itertools import chain, repeat
from operator import add, mul

from .byte_level import bytes_to_unicode
from .errors import ModelFormatError
from .hf_patterns import chars_class_body

__all__ = ["BPE"]

_BYTE_CHARS = [bytes_to_unicode()[b] for b in range(256)]
_HEAP_MIN_SYMBOLS = 48
_CACHED_MAX_CHARS = 1024  # longer words (a SentencePiece paragraph) are not cached whole, their pieces are
_META = "\u2581"


def _merge_pairs(merges: list, where: str):
    """model.merges ("a b" strings or [a, b] pairs; "#version" lines skipped) -> (firsts, seconds)."""
    if merges and all(isinstance(m, str) for m in (merges[0], merges[-1])):
        lines = [m for m in merges if not m.startswith("#version")] if merges[0].startswith("#version") else merges
        if set(map(type, lines)) == {str} and set(map(str.count, lines, repeat(" "))) == {1}:
            parts = " ".join(lines).split(" ")  # one space per line: one split for all
            return parts[0::2], parts[1::2]
        try:
            pairs = [m.split(" ") for m in lines]
        except (AttributeError, TypeError):
            pairs = None
    else:
        pairs = lines = merges
    if pairs is not None and set(map(type, pairs)) <= {list} and set(map(len, pairs)) <= {2}:
        firsts, seconds = [p[0] for p in pairs], [p[1] for p in pairs]
        if set(map(type, firsts)) | set(map(type, seconds)) <= {str}:
            return firsts, seconds
    for number, item in enumerate(lines):  # find the bad one for the message
        parts = item.split(" ") if isinstance(item, str) else item
        if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(x, str) for x in parts):
            raise ModelFormatError(f"{where}.merges[{number}]: expected \"a b\" or [a, b], got {item!r}")
    raise ModelFormatError(f"{where}.merges: expected a list of \"a b\" strings or [a, b] pairs")


def _vocab_by_id(vocab: dict, where: str) -> dict:
    ids = list(vocab.values())
    if set(map(type, ids)) == {int} and min(ids) >= 0 and len(set(ids)) == len(ids):
        return dict(zip(ids, vocab))
    by_id: dict = {}
    for token, token_id in vocab.items():
        if type(token_id) is not int or token_id < 0:
            raise ModelFormatError(f"{where}.vocab: the id of {token!r} is not a non-negative integer: "
                                   f"{token_id!r}")
        if token_id in by_id:
            raise ModelFormatError(f"{where}.vocab: id {token_id} is given to both {by_id[token_id]!r} and {token!r}")
        by_id[token_id] = token
    return by_id


class BPE:
    def __init__(self, spec: dict, byte_level: bool, where: str = "tokenizer.json: model", cache_size: int = 100_000):
        vocab = spec.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise ModelFormatError(f"{where}.vocab: expected a non-empty object {{token: id}}")
        by_id = _vocab_by_id(vocab, where)
        merges = spec.get("merges")
        if not isinstance(merges, list):
            raise ModelFormatError(f"{where}.merges: expected a list")
        dropout = spec.get("dropout")
        if dropout not in (None, 0, 0.0):
            raise ModelFormatError(f"{where}.dropout: {dropout!r} is not supported (BPE dropout is random; "
                                   "use null)")
        for key in ("continuing_subword_prefix", "end_of_word_suffix"):
            if spec.get(key) not in (None, ""):
                raise ModelFormatError(f"{where}.{key}: {spec[key]!r} is not supported (only null or \"\")")
        unk = spec.get("unk_token")
        if unk is not None and not isinstance(unk, str):
            raise ModelFormatError(f"{where}.unk_token: expected a string or null, got {unk!r}")

        self.vocab = vocab
        self.by_id = by_id
        self.size = len(vocab)
        self.byte_level = byte_level
        self.byte_fallback = bool(spec.get("byte_fallback", False))
        self.fuse_unk = bool(spec.get("fuse_unk", False))
        self.ignore_merges = bool(spec.get("ignore_merges", False))
        self.unk_token = unk
        self._shift = max(by_id) + 1
        firsts, seconds = _merge_pairs(merges, where)
        shift = self._shift
        get = vocab.get
        lefts, rights = list(map(get, firsts)), list(map(get, seconds))
        merged = list(map(get, map(str.__add__, firsts, seconds)))
        if None in lefts or None in rights or None in merged:
            for rank, (a, b) in enumerate(zip(firsts, seconds)):
                for part in (a, b, a + b):
                    if part not in vocab:
                        raise ModelFormatError(f"{where}.merges: merge {rank} ({a!r} {b!r}): {part!r} is not in "
                                               "the vocabulary")
        # a pair listed twice keeps its last rank, as tokenizers' hash map does
        # (left * shift + right) -> rank; _merged[rank] is the token the pair becomes
        self._merges = dict(zip(map(add, map(mul, lefts, repeat(shift)), rights), range(len(merged))))
        self._merged = merged
        self.merge_count = len(firsts)
        self._byte_fallback_ids = [vocab.get(f"<0x{b:02X}>") for b in range(256)]
        self._byte_level_ids = [vocab.get(c) for c in _BYTE_CHARS]
        self.cache_size = int(cache_size)
        self._cache: dict = {}
        self._char_symbols: dict = {}  # character -> its initial symbols (SentencePiece-style words)
        self._cut, self._cut_needs_check = self._sentencepiece_cut(firsts, seconds)

    def _sentencepiece_cut(self, firsts: list, seconds: list):
        """(a regex finding safe cuts in a word, whether each cut must still be checked), or (None, _):
        see the module docstring."""
        if self.byte_level or self.ignore_merges or _META not in self.vocab:
            return None, False
        glued = {token[i - 1] for token in self.vocab if _META in token[1:]
                 for i in range(1, len(token)) if token[i] == _META and token[i - 1] != _META}
        excluded = chars_class_body(glued | {_META})
        before_meta = f"(?<=[^{excluded}])(?={_META})"
        byte_tokens = {f"<0x{b:02X}>" for b in range(256)}
        if not (self.byte_fallback and None not in self._byte_fallback_ids
                and byte_tokens.isdisjoint(firsts) and byte_tokens.isdisjoint(seconds)):
            return re.compile(before_meta), True
        # Byte tokens are never merged: a character that is not a token itself (its bytes stand in
        # for it) can be cut off on both sides, and no cut needs checking.
        chars = chars_class_body(t for t in self.vocab if len(t) == 1)
        return re.compile(f"{before_meta}|(?<=[^{chars}])|(?=[^{chars}])"), False

    # -- words -----------------------------------------------------------------------------------

    def encode_words(self, words: list) -> list:
        cache = self._cache
        found = list(map(cache.get, words))
        if None in found:
            for i, ids in enumerate(found):
                if ids is None:
                    ids = cache.get(words[i])
                    found[i] = ids if ids is not None else self._encode_word(words[i])
        return list(chain.from_iterable(found))

    def _encode_word(self, word: str) -> tuple:
        if self._cut is not None and len(word) > 12:
            parts = self._cut.split(word)
            if len(parts) > 1:
                joined = [parts[0]]
                if self._cut_needs_check:
                    vocab = self.vocab
                    for part in parts[1:]:
                        if joined[-1][-1] in vocab:
                            joined.append(part)
                        else:  # a character that is not a token itself: no cut after it
                            joined[-1] += part
                else:
                    joined = [part for part in parts if part]
                if len(joined) > 1:
                    ids = tuple(self.encode_words(joined))
                    self._store(word, ids)
                    return ids
        ids = self._whole(word) or tuple(self._merge(self._symbols(word)))
        self._store(word, ids)
        return ids

    def _store(self, word: str, ids: tuple):
        if len(word) > _CACHED_MAX_CHARS:
            return
        cache = self._cache
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[word] = ids

    def _whole(self, word: str):
        """ignore_merges: the word as one token, or None."""
        if not self.ignore_merges:
            return None
        text = "".join([_BYTE_CHARS[b] for b in word.encode("utf-8")]) if self.byte_level else word
        token_id = self.vocab.get(text)
        return None if token_id is None else (token_id,)

    def _symbols(self, word: str) -> list:
        if self.byte_level:
            symbols = [self._byte_level_ids[b] for b in word.encode("utf-8")]
            if None not in symbols:
                return symbols
            word = "".join([_BYTE_CHARS[b] for b in word.encode("utf-8")])
        else:
            parts = list(map(self._char_symbols.get, word))
            if None not in parts:
                return list(chain.from_iterable(parts))
            if self._learn_chars(word):
                return list(chain.from_iterable(map(self._char_symbols.get, word)))
        return self._symbols_with_unknowns(word)

    def _learn_chars(self, word: str) -> bool:
        """Adds the word's characters to _char_symbols (their token, or their byte-fallback tokens);
        False when one of them needs the unk token, whose runs only the slow path handles."""
        table, vocab = self._char_symbols, self.vocab
        for ch in set(word) - table.keys():
            token_id = vocab.get(ch)
            if token_id is not None:
                table[ch] = (token_id,)
                continue
            ids = [None]
            if self.byte_fallback:
                ids = [self._byte_fallback_ids[b] for b in ch.encode("utf-8", "surrogatepass")]
            if None in ids:
                return False
            if len(table) < 1_000_000:
                table[ch] = tuple(ids)
        return True

    def _symbols_with_unknowns(self, word: str) -> list:
        """tokenizers' BPE::merge_word before the merges, for words with characters not in the vocab."""
        vocab = self.vocab
        symbols: list = []
        unk = None  # a pending unk token (fused over a run when fuse_unk)
        for ch in word:
            token_id = vocab.get(ch)
            if token_id is not None:
                if unk is not None:
                    symbols.append(unk)
                    unk = None
                symbols.append(token_id)
                continue
            if self.byte_fallback:
                ids = [self._byte_fallback_ids[b] for b in ch.encode("utf-8", "surrogatepass")]
                if None not in ids:
                    symbols += ids
                    continue
            if self.unk_token is not None:
                unk_id = vocab.get(self.unk_token)
                if unk_id is None:
                    raise ModelFormatError(f"tokenizer.json: model.unk_token {self.unk_token!r} is not in the "
                                           "vocabulary")
                if unk is not None and not self.fuse_unk:
                    symbols.append(unk)
                unk = unk_id
        if unk is not None:
            symbols.append(unk)
        return symbols

    # -- merges ----------------------------------------------------------------------------------

    def _merge(self, symbols: list) -> list:
        if len(symbols) < 2:
            return symbols
        if len(symbols) >= _HEAP_MIN_SYMBOLS:
            return self._merge_heap(symbols)
        get, shift, merged = self._merges.get, self._shift, self._merged
        none = 1 << 62
        ranks = [get(symbols[i] * shift + symbols[i + 1], none) for i in range(len(symbols) - 1)]
        while ranks:
            best = min(ranks)
            if best == none:
                break
            i = ranks.index(best)
            symbols[i] = merged[best]
            del symbols[i + 1]
            del ranks[i]
            if i < len(ranks):
                ranks[i] = get(symbols[i] * shift + symbols[i + 1], none)
            if i > 0:
                ranks[i - 1] = get(symbols[i - 1] * shift + symbols[i], none)
        return symbols

    def _merge_heap(self, symbols: list) -> list:
        get, shift, merged = self._merges.get, self._shift, self._merged
        n = len(symbols)
        after = list(range(1, n + 1))
        after[-1] = -1
        before = list(range(-1, n - 1))
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            value = get(symbols[i] * shift + symbols[i + 1])
            if value is not None:
                heap.append((value, i))
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            value, i = pop(heap)
            if not alive[i]:
                continue
            j = after[i]
            if j < 0 or get(symbols[i] * shift + symbols[j]) != value:
                continue  # stale: one side has merged since
            symbols[i] = merged[value]
            alive[j] = False
            k = after[j]
            after[i] = k
            if k >= 0:
                before[k] = i
                other = get(symbols[i] * shift + symbols[k])
                if other is not None:
                    push(heap, (other, i))
            p = before[i]
            if p >= 0:
                other = get(symbols[p] * shift + symbols[i])
                if other is not None:
                    push(heap, (other, p))
        return [symbols[i] for i in range(n) if alive[i]]
