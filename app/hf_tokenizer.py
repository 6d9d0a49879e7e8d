"""Hugging Face tokenizer.json in pure Python: the ids of the `tokenizers` package (0.23), stdlib only.

HFTokenizer.from_texts(tokenizer_json_text, tokenizer_config_text=None) reads the files of a model
folder; encode(text, add_special_tokens=True) -> ids and decode(ids, skip_special_tokens=False)
-> str give what tokenizers' Tokenizer.encode(text).ids and .decode(ids) give. It covers the
byte-level BPE of Llama-3, Qwen2/2.5/3 and SmolLM2 (Split regex + ByteLevel) and the
SentencePiece-style BPE of Llama-2, TinyLlama and Gemma (byte_fallback, Prepend/Replace
normalizers or Metaspace); what it does not cover is refused with a ModelFormatError naming the key.

encode runs tokenizers' pipeline:
  1. added tokens whose "normalized" is false are found in the raw text (leftmost, longest;
     honouring single_word, lstrip and rstrip as AddedVocabulary::find_matches does) and become
     their ids; the text between them goes on,
  2. each remaining piece is normalized on its own (so Llama-2's Prepend("▁") starts every piece
     after a special token with "▁"), and the added tokens with "normalized": true are found in it,
  3. the pre-tokenizer cuts each piece into words (app/hf_pretokenize.py),
  4. the BPE model turns each word into ids (app/hf_bpe.py, cached per word),
  5. with add_special_tokens, the post-processor adds its tokens (TemplateProcessing: Llama-2's
     and Gemma's BOS; ByteLevel: none).
Added tokens take the ids tokenizers gives them (their content's id in the vocabulary, else the
next free one), which is what the file lists for every real file. A str holding lone surrogates
(which UTF-8 cannot encode) is read as UTF-16 with errors="replace" first, as GPT2Tokenizer does.

decode maps ids to token strings (added tokens first), drops special tokens if asked, and runs
the decoder (app/hf_decode.py). Unlike tokenizers, which skips unknown ids silently, an id outside
the vocabulary raises ValueError. stream_decoder() gives the streaming form of the same decoder.

tokenizer_config.json is read for facts only: bos_token, eos_token, pad_token, unk_token (and
their ids), add_bos_token, add_eos_token, and chat_template kept as raw data (a string, or the
list of {"name", "template"}); chat_template.jinja, when given, is the template. Nothing here
renders templates.
"""

from __future__ import annotations

import json

from .errors import ModelFormatError
from .hf_bpe import BPE
from .hf_decode import Decoder, byte_level_bytes
from .hf_patterns import is_word_char, literal_matcher
from .hf_pretokenize import build_normalizer, build_pre_tokenizer
from .unicode_data import WHITESPACE

__all__ = ["HFTokenizer", "HFStreamingDecoder"]

TOKENIZER_JSON = "tokenizer.json"


def _json_object(text, filename: str) -> dict:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFormatError(f"{filename}: not UTF-8 text ({exc})") from None
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        raise ModelFormatError(f"{filename}: expected the file's text, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ModelFormatError(f"{filename}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{filename}: expected a JSON object, got {type(value).__name__}")
    return value


def _fix_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# ---------------------------------------------------------------------------------------------
# added tokens


class AddedVocabulary:
    """tokenizers' AddedVocabulary: ids, and the two matchers (raw text, normalized text)."""

    def __init__(self, entries, model: BPE, normalizer, where: str = "tokenizer.json: added_tokens"):
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise ModelFormatError(f"{where}: expected a list")
        self.content_to_id: dict = {}
        self.by_id: dict = {}        # id -> token dict (content, special, lstrip, ...)
        self.decode_text: dict = {}  # id -> the string decode uses (normalized form if it differs)
        self.special: set = set()
        next_id = model.size
        for number, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
                raise ModelFormatError(f"{where}[{number}]: expected an object with a string \"content\", "
                                       f"got {entry!r}")
            token = {key: bool(entry.get(key, default)) for key, default in (
                ("single_word", False), ("lstrip", False), ("rstrip", False), ("normalized", True), ("special", False))}
            content = token["content"] = entry["content"]
            if not content:
                continue
            token_id = self.content_to_id.get(content, model.vocab.get(content))
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            if token["normalized"] and normalizer is not None:
                normalized = normalizer(content)
                if normalized != content:
                    self.decode_text[token_id] = normalized
            self.content_to_id[content] = token_id
            if token["special"]:
                self.special.add(content)
            self.by_id[token_id] = token
        raw = {t["content"]: (i, t) for i, t in self.by_id.items() if not t["normalized"]}
        normalized = {self.decode_text.get(i, t["content"]): (i, t) for i, t in self.by_id.items() if t["normalized"]}
        self._raw, self._raw_re = raw, literal_matcher(raw)
        self._norm, self._norm_re = normalized, literal_matcher(normalized)
        self.has_normalized = self._norm_re is not None

    def split_raw(self, text: str) -> list:
        return self._split(text, self._raw_re, self._raw)

    def split_normalized(self, text: str) -> list:
        return self._split(text, self._norm_re, self._norm)

    @staticmethod
    def _split(sentence: str, matcher, table: dict) -> list:
        """AddedVocabulary::find_matches: the text cut into strs and token ids (empty strs dropped)."""
        if not sentence:
            return []
        if matcher is None:
            return [sentence]
        out: list = []
        start_offset = 0
        for start, stop in matcher.find(sentence):
            token_id, token = table[sentence[start:stop]]
            if token["single_word"]:
                if start > 0 and is_word_char(sentence[start - 1]) or \
                        stop < len(sentence) and is_word_char(sentence[stop]):
                    continue
            if token["lstrip"]:
                start = max(len(sentence[:start].rstrip(WHITESPACE)), start_offset)
            if token["rstrip"]:
                rest = sentence[stop:]
                stop += len(rest) - len(rest.lstrip(WHITESPACE))
            if start_offset < start:
                out.append(sentence[start_offset:start])
            out.append(token_id)
            start_offset = stop
        if start_offset < len(sentence):
            out.append(sentence[start_offset:])
        return out


# ---------------------------------------------------------------------------------------------
# post-processors


def _template(template, special_tokens: dict, where: str) -> list:
    """A TemplateProcessing "single" template -> [list of ids | "A"]."""
    if isinstance(template, str):
        template = template.split()
    if not isinstance(template, list):
        raise ModelFormatError(f"{where}: expected a list of pieces, got {template!r}")
    out = []
    for number, piece in enumerate(template):
        here = f"{where}[{number}]"
        if isinstance(piece, str):  # the "$A" / "[CLS]:1" string form
            name = piece.split(":")[0]
            piece = ({"Sequence": {"id": "B" if name in ("$B", "$1") else "A"}} if name.startswith("$")
                     else {"SpecialToken": {"id": name}})
        if isinstance(piece, dict) and "Sequence" in piece:
            if piece["Sequence"].get("id") != "A":
                raise ModelFormatError(f"{here}: the single template uses sequence "
                                       f"{piece['Sequence'].get('id')!r}; only A exists there")
            out.append("A")
        elif isinstance(piece, dict) and "SpecialToken" in piece:
            name = piece["SpecialToken"].get("id")
            special = special_tokens.get(name)
            if not isinstance(special, dict) or not isinstance(special.get("ids"), list) \
                    or not all(type(i) is int and i >= 0 for i in special["ids"]):
                raise ModelFormatError(f"{here}: the special token {name!r} is missing from special_tokens "
                                       "(or has no list of ids)")
            out.append(list(special["ids"]))
        else:
            raise ModelFormatError(f"{here}: expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}, "
                                   f"got {piece!r}")
    return out


def build_post_processor(spec, where: str = "tokenizer.json: post_processor"):
    """A function ids -> ids applied when add_special_tokens, or None."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFormatError(f"{where}: expected an object with a \"type\", got {spec!r}")
    kind = spec["type"]
    if kind == "ByteLevel":  # offsets only
        return None
    if kind == "Sequence":
        steps = spec.get("processors")
        if not isinstance(steps, list):
            raise ModelFormatError(f"{where}.processors: expected a list")
        steps = [build_post_processor(s, f"{where}.processors[{i}]") for i, s in enumerate(steps)]
        steps = [s for s in steps if s is not None]
        if not steps:
            return None

        def run(ids: list) -> list:
            for step in steps:
                ids = step(ids)
            return ids
        return run
    if kind == "TemplateProcessing":
        special = spec.get("special_tokens") or {}
        if not isinstance(special, dict):
            raise ModelFormatError(f"{where}.special_tokens: expected an object")
        pieces = _template(spec.get("single"), special, f"{where}.single")
        if pieces == ["A"]:
            return None

        def apply(ids: list) -> list:
            out = []
            for piece in pieces:
                out += ids if piece == "A" else piece
            return out
        return apply
    raise ModelFormatError(f"{where}: the post-processor type {kind!r} is not supported "
                           "(supported: TemplateProcessing, ByteLevel, Sequence)")


# ---------------------------------------------------------------------------------------------


def _token_name(value):
    """A special token in tokenizer_config.json: a string, or an AddedToken object {content: ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """A tokenizer.json tokenizer (see the module docstring)."""

    def __init__(self, data: dict, config: dict | None = None, chat_template_jinja: str | None = None):
        version = data.get("version", "1.0")
        if version != "1.0":
            raise ModelFormatError(f"tokenizer.json: unknown version {version!r} (expected \"1.0\")")
        model = data.get("model")
        if not isinstance(model, dict):
            raise ModelFormatError("tokenizer.json: no \"model\" object")
        if model.get("type", "BPE") != "BPE" or "vocab" not in model or "merges" not in model:
            raise ModelFormatError(f"tokenizer.json: model type {model.get('type')!r} is not supported (only BPE)")
        self._normalize = build_normalizer(data.get("normalizer"))
        self._pre_tokenizer = build_pre_tokenizer(data.get("pre_tokenizer"))
        self.model = BPE(model, byte_level=self._pre_tokenizer.byte_level)
        self.added = AddedVocabulary(data.get("added_tokens"), self.model, self._normalize)
        self._post = build_post_processor(data.get("post_processor"))
        self.decoder = Decoder(data.get("decoder"))

        by_id, added = self.model.by_id, self.added.by_id
        self.vocab_size = max(max(by_id), max(added, default=-1)) + 1
        self._id_to_token = list(map(by_id.get, range(self.vocab_size)))  # added tokens first, as tokenizers
        for token_id, token in added.items():
            self._id_to_token[token_id] = self.added.decode_text.get(token_id, token["content"])
        self.special_tokens = {t["content"]: i for i, t in self.added.by_id.items() if t["special"]}
        self._token_bytes: dict = {}  # token string -> its bytes, for a ByteLevel decoder

        config = dict(config or {})
        self.tokenizer_config = config
        self.bos_token = _token_name(config.get("bos_token"))
        self.eos_token = _token_name(config.get("eos_token"))
        self.pad_token = _token_name(config.get("pad_token"))
        self.unk_token = _token_name(config.get("unk_token"))
        self.bos_token_id = self.token_to_id(self.bos_token) if self.bos_token else None
        self.eos_token_id = self.token_to_id(self.eos_token) if self.eos_token else None
        self.pad_token_id = self.token_to_id(self.pad_token) if self.pad_token else None
        self.add_bos_token = config.get("add_bos_token")
        self.add_eos_token = config.get("add_eos_token")
        if isinstance(chat_template_jinja, (bytes, bytearray)):
            chat_template_jinja = bytes(chat_template_jinja).decode("utf-8")
        self.chat_template = chat_template_jinja if chat_template_jinja is not None else config.get("chat_template")

    @classmethod
    def from_texts(cls, tokenizer_json, tokenizer_config=None, chat_template_jinja=None) -> "HFTokenizer":
        """From the files' texts (str or bytes; tokenizer_config.json and chat_template.jinja optional)."""
        config = None if tokenizer_config is None else _json_object(tokenizer_config, "tokenizer_config.json")
        return cls(_json_object(tokenizer_json, TOKENIZER_JSON), config, chat_template_jinja)

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list:
        """The ids tokenizers' Tokenizer.encode(text, add_special_tokens).ids gives."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        if not text.isascii():
            text = _fix_surrogates(text)
        added, normalize, pre, model = self.added, self._normalize, self._pre_tokenizer, self.model
        ids: list = []
        for index, segment in enumerate(added.split_raw(text)):
            if type(segment) is int:
                ids.append(segment)
                continue
            if normalize is not None:
                segment = normalize(segment)
            pieces = added.split_normalized(segment) if added.has_normalized else [segment] if segment else []
            for number, piece in enumerate(pieces):
                if type(piece) is int:
                    ids.append(piece)
                elif pre.steps:
                    ids += model.encode_words(pre(piece, index == 0 and number == 0))
                else:
                    ids += model.encode_words([piece])
        if add_special_tokens and self._post is not None:
            ids = self._post(ids)
        return ids

    # -- decoding --------------------------------------------------------------------------------

    def _tokens(self, ids, skip_special_tokens: bool) -> list:
        if not isinstance(ids, (list, tuple)):
            ids = list(ids)
        table = self._id_to_token
        try:
            if ids and min(ids) < 0:
                raise IndexError
            tokens = [table[i] for i in ids]
        except (IndexError, TypeError):
            tokens = None
        if tokens is None or None in tokens:
            for position, token_id in enumerate(ids):
                if type(token_id) is not int and not hasattr(token_id, "__index__") or isinstance(token_id, bool):
                    raise ValueError(f"token id at position {position} is not an integer: {token_id!r}")
                if not 0 <= int(token_id) < len(table) or table[int(token_id)] is None:
                    raise ValueError(f"token id {int(token_id)} at position {position} is out of range: "
                                     f"this tokenizer's ids are 0..{len(table) - 1}")
            tokens = [table[int(i)] for i in ids]
        if skip_special_tokens:
            special = self.added.special
            tokens = [t for t in tokens if t not in special]
        return tokens

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text tokenizers' Tokenizer.decode(ids, skip_special_tokens) gives."""
        tokens = self._tokens(ids, skip_special_tokens)
        if self.decoder.byte_level_only:  # the bytes of each token, joined and read as UTF-8
            to_bytes = self._token_bytes
            try:
                return b"".join([to_bytes[t] for t in tokens]).decode("utf-8", "replace")
            except KeyError:
                to_bytes.update((t, byte_level_bytes(t)) for t in tokens if t not in to_bytes)
                return b"".join([to_bytes[t] for t in tokens]).decode("utf-8", "replace")
        return self.decoder.decode(tokens)

    def token_bytes(self, token_id: int) -> bytes:
        """One token's bytes as shown alone (byte tokens as their byte, "▁" as a space)."""
        return self.decoder.token_text(self._tokens([token_id], False)[0])

    def id_to_token(self, token_id: int) -> str:
        return self._tokens([token_id], False)[0]

    def token_to_id(self, token: str):
        token_id = self.added.content_to_id.get(token)
        return token_id if token_id is not None else self.model.vocab.get(token)

    def is_special(self, token_id: int) -> bool:
        return self.id_to_token(token_id) in self.added.special

    def clear_cache(self):
        """Forget the cached words (a benchmark's cold start)."""
        self.model._cache.clear()

    def stream_decoder(self, skip_special_tokens: bool = False) -> "HFStreamingDecoder":
        return HFStreamingDecoder(self, skip_special_tokens)

    def __repr__(self) -> str:
        return (f"HFTokenizer(vocab_size={self.vocab_size}, merges={self.model.merge_count}, "
                f"added={len(self.added.by_id)}, byte_level={self.model.byte_level})")


class HFStreamingDecoder:
    """push(id) -> text, flush() -> the rest: concatenated, decode(ids, skip_special_tokens) exactly,
    and never part of a character (see app/hf_decode.py)."""

    def __init__(self, tokenizer: HFTokenizer, skip_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._stream = tokenizer.decoder.streamer()

    def push(self, token_id: int) -> str:
        table = self.tokenizer._id_to_token
        token = table[token_id] if type(token_id) is int and 0 <= token_id < len(table) else None
        if token is None:
            token = self.tokenizer._tokens([token_id], False)[0]  # raises the usual error
        if self.skip_special_tokens and token in self.tokenizer.added.special:
            return ""
        return self._stream.push(token)

    def flush(self) -> str:
        return self._stream.flush()
