"""tokenizer.json's decoders, whole and streaming, as Hugging Face tokenizers 0.23 runs them.

Standard library only (CPython and Pyodide).

Decoder(spec).decode(tokens) follows tokenizers' decode_chain step by step: each decoder maps a
list of token strings to a new list, and the text is the final list joined. Supported: ByteLevel,
Replace (string pattern), ByteFallback, Fuse, Strip, Metaspace and a Sequence of them. Any other
type or option is refused with a ModelFormatError naming the key.

Decoder.streamer() returns a TokenStreamer: fed token strings one at a time, it returns text
whose concatenation (with flush()) equals decode(all tokens), exactly, and never half a
character. Each decoder becomes a streaming stage:
  * ByteLevel keeps back the bytes of an incomplete UTF-8 character (as app/tokenizer.py's
    StreamingDetokenizer does); bytes that can never become a character come out as U+FFFD.
  * ByteFallback keeps back a run of byte tokens (<0x0A>, <0xE4>...) until the run ends: a run
    that is not valid UTF-8 as a whole becomes one U+FFFD per byte (tokenizers' rule), so no part
    of it is certain before the next non-byte token (or the end).
  * Fuse turns the token stream into chunks of one growing string; a Strip after it removes the
    text's first `start` content characters as they come and holds back up to `stop` trailing ones.
  * Metaspace counts tokens: the first one loses its replacement characters (prepend_scheme other
    than "never"), later ones turn them into spaces.
"""

from __future__ import annotations

import re

from .byte_level import bytes_to_unicode, incomplete_tail
from .errors import ModelFormatError
from .hf_patterns import LiteralPattern, pattern_from_json

__all__ = ["Decoder", "TokenStreamer", "BYTE_LEVEL_CHARS"]

_CHAR_BYTES = {c: b for b, c in bytes_to_unicode().items()}
BYTE_LEVEL_CHARS = frozenset(_CHAR_BYTES)
_HEX = re.compile(r"\+?[0-9A-Fa-f]{1,2}")


def byte_level_bytes(token: str) -> bytes:
    """ByteLevel's bytes of one token: its characters mapped back to bytes when every one of them
    is in the byte alphabet, else the token's own UTF-8 (tokenizers' rule)."""
    try:
        return bytes([_CHAR_BYTES[c] for c in token])
    except KeyError:
        return token.encode("utf-8", "surrogatepass")


def byte_fallback_value(token: str):
    """The byte of a "<0xAB>" token, else None (Rust's u8::from_str_radix accepts a leading +)."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">") and token.isascii() \
            and _HEX.fullmatch(token, 3, 5):
        return int(token[3:5], 16)
    return None


def _run_text(run: bytearray) -> list:
    try:
        return [run.decode("utf-8")]
    except UnicodeDecodeError:
        return ["\ufffd"] * len(run)


# ---------------------------------------------------------------------------------------------
# stages: each one is both a whole-list step (chain) and a streaming step (push/flush)


class _ByteLevel:
    fuses = True

    def chain(self, tokens: list) -> list:
        return [b"".join(map(byte_level_bytes, tokens)).decode("utf-8", "replace")]

    def start(self):
        self.pending = b""

    def push(self, items: list) -> list:
        data = self.pending + b"".join(map(byte_level_bytes, items))
        keep = incomplete_tail(data)
        self.pending = data[len(data) - keep:] if keep else b""
        text = (data[:len(data) - keep] if keep else data).decode("utf-8", "replace")
        return [text] if text else []

    def flush(self) -> list:
        rest, self.pending = self.pending, b""
        return [rest.decode("utf-8", "replace")] if rest else []


class _Replace:
    fuses = False

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def chain(self, tokens: list) -> list:
        if not self.old:
            return list(tokens)
        return [t.replace(self.old, self.new) for t in tokens]

    def start(self):
        self.held = ""

    def push(self, items: list) -> list:
        if not self.fused or len(self.old) <= 1:
            return self.chain(items)
        text = self.held + "".join(items)
        keep = next((k for k in range(min(len(self.old) - 1, len(text)), 0, -1)
                     if self.old.startswith(text[-k:])), 0)
        self.held = text[len(text) - keep:] if keep else ""
        return [text[:len(text) - keep].replace(self.old, self.new)]

    def flush(self) -> list:
        rest, self.held = self.held, ""
        return [rest] if rest else []


class _ByteFallback:
    fuses = False

    def chain(self, tokens: list) -> list:
        out, run = [], bytearray()
        for token in tokens:
            value = byte_fallback_value(token)
            if value is not None:
                run.append(value)
                continue
            if run:
                out += _run_text(run)
                run = bytearray()
            out.append(token)
        if run:
            out += _run_text(run)
        return out

    def start(self):
        self.run = bytearray()

    def push(self, items: list) -> list:
        out = []
        for token in items:
            value = byte_fallback_value(token)
            if value is not None:
                self.run.append(value)
                continue
            if self.run:
                out += _run_text(self.run)
                self.run = bytearray()
            out.append(token)
        return out

    def flush(self) -> list:
        run, self.run = self.run, bytearray()
        return _run_text(run) if run else []


class _Fuse:
    fuses = True

    def chain(self, tokens: list) -> list:
        return ["".join(tokens)]

    def start(self):
        pass

    def push(self, items: list) -> list:
        return items

    def flush(self) -> list:
        return []


class _Strip:
    fuses = False

    def __init__(self, content: str, start: int, stop: int):
        self.content, self.start_n, self.stop_n = content, start, stop

    def _strip(self, token: str) -> str:
        begin = 0
        while begin < min(self.start_n, len(token)) and token[begin] == self.content:
            begin += 1
        end = len(token)
        for _ in range(self.stop_n):
            if end > begin and token[end - 1] == self.content:
                end -= 1
            else:
                break
        return token[begin:end]

    def chain(self, tokens: list) -> list:
        return [self._strip(t) for t in tokens]

    def start(self):
        self.removed = 0
        self.leading_done = self.start_n == 0
        self.held = ""

    def push(self, items: list) -> list:
        if not self.fused:
            return self.chain(items)
        text = "".join(items)
        if not self.leading_done:
            i = 0
            while i < len(text) and self.removed < self.start_n and text[i] == self.content:
                i += 1
                self.removed += 1
            if i < len(text) or self.removed == self.start_n:
                self.leading_done = True
            text = text[i:]
        if self.stop_n:
            text = self.held + text
            keep = 0
            while keep < min(self.stop_n, len(text)) and text[len(text) - 1 - keep] == self.content:
                keep += 1
            self.held = text[len(text) - keep:] if keep else ""
            text = text[:len(text) - keep]
        return [text] if text else []

    def flush(self) -> list:
        self.held = ""  # trailing content characters: stripped
        return []


class _Metaspace:
    fuses = False

    def __init__(self, replacement: str, prepend_scheme: str):
        self.replacement, self.prepend_scheme = replacement, prepend_scheme

    def _one(self, index: int, token: str) -> str:
        if index == 0 and self.prepend_scheme != "never":
            return token.replace(self.replacement, "")
        return token.replace(self.replacement, " ")

    def chain(self, tokens: list) -> list:
        return [self._one(i, t) for i, t in enumerate(tokens)]

    def start(self):
        self.count = 0

    def push(self, items: list) -> list:
        out = []
        for token in items:
            out.append(self._one(0 if self.fused else self.count, token))
            self.count += 1
        return out

    def flush(self) -> list:
        return []


# ---------------------------------------------------------------------------------------------


def _stages(spec, where: str) -> list:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFormatError(f"{where}: expected an object with a \"type\", got {spec!r}")
    kind = spec["type"]
    if kind == "Sequence":
        decoders = spec.get("decoders")
        if not isinstance(decoders, list):
            raise ModelFormatError(f"{where}.decoders: expected a list, got {decoders!r}")
        out = []
        for i, sub in enumerate(decoders):
            out += _stages(sub, f"{where}.decoders[{i}]")
        return out
    if kind == "ByteLevel":
        return [_ByteLevel()]
    if kind == "Replace":
        pattern = pattern_from_json(spec.get("pattern"), f"{where}.pattern")
        if not isinstance(pattern, LiteralPattern):
            raise ModelFormatError(f"{where}.pattern: a Replace decoder with a regex is not supported")
        content = spec.get("content")
        if not isinstance(content, str):
            raise ModelFormatError(f"{where}.content: expected a string, got {content!r}")
        return [_Replace(pattern.pattern, content)]
    if kind == "ByteFallback":
        return [_ByteFallback()]
    if kind == "Fuse":
        return [_Fuse()]
    if kind == "Strip":
        content, start, stop = spec.get("content"), spec.get("start"), spec.get("stop")
        if not isinstance(content, str) or len(content) != 1:
            raise ModelFormatError(f"{where}.content: expected one character, got {content!r}")
        for key, value in (("start", start), ("stop", stop)):
            if type(value) is not int or value < 0:
                raise ModelFormatError(f"{where}.{key}: expected a non-negative integer, got {value!r}")
        return [_Strip(content, start, stop)]
    if kind == "Metaspace":
        replacement = spec.get("replacement", "\u2581")
        scheme = spec.get("prepend_scheme", "always")
        if spec.get("add_prefix_space") is False:
            scheme = "never"
        if not isinstance(replacement, str) or len(replacement) != 1 or scheme not in ("always", "first", "never"):
            raise ModelFormatError(f"{where}: Metaspace needs a one-character replacement and a prepend_scheme "
                                   f"of always, first or never, got {replacement!r}, {scheme!r}")
        return [_Metaspace(replacement, scheme)]
    raise ModelFormatError(f"{where}: the decoder type {kind!r} is not supported "
                           "(supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)")


class Decoder:
    """A tokenizer.json "decoder" (None: tokens joined with spaces, as tokenizers does)."""

    def __init__(self, spec, where: str = "tokenizer.json: decoder"):
        self.stages = [] if spec is None else _stages(spec, where)
        self.joiner = " " if spec is None else ""
        fused = False
        for stage in self.stages:
            if fused and isinstance(stage, (_ByteLevel, _ByteFallback)):
                raise ModelFormatError(f"{where}: {type(stage).__name__.strip('_')} after Fuse or ByteLevel "
                                       "is not supported")
            fused = fused or stage.fuses
        self.byte_level_only = len(self.stages) == 1 and isinstance(self.stages[0], _ByteLevel)

    def decode(self, tokens: list) -> str:
        for stage in self.stages:
            tokens = stage.chain(tokens)
        return self.joiner.join(tokens)

    def token_text(self, token: str) -> bytes:
        """One token's bytes as the engine shows it alone: byte tokens as their byte, the byte-level
        alphabet mapped back, replacement characters as spaces (no Strip, no first-token rule)."""
        if any(isinstance(s, _ByteLevel) for s in self.stages):
            return byte_level_bytes(token)
        value = byte_fallback_value(token) if any(isinstance(s, _ByteFallback) for s in self.stages) else None
        if value is not None:
            return bytes([value])
        for stage in self.stages:
            if isinstance(stage, _Replace):
                token = stage.chain([token])[0]
            elif isinstance(stage, _Metaspace):
                token = stage._one(1, token)
        return token.encode("utf-8", "surrogatepass")

    def streamer(self) -> "TokenStreamer":
        return TokenStreamer(self)


class TokenStreamer:
    """Token strings in, text out: "".join(push(t) for t in tokens) + flush() == decode(tokens)."""

    def __init__(self, decoder: Decoder):
        self.decoder = decoder
        self.stages = [type(s).__new__(type(s)) for s in decoder.stages]
        fused = False
        for copy, stage in zip(self.stages, decoder.stages):
            copy.__dict__.update(stage.__dict__)
            copy.fused = fused
            copy.start()
            fused = fused or stage.fuses
        self.count = 0

    def push(self, token: str) -> str:
        items = [token]
        for stage in self.stages:
            items = stage.push(items)
            if not items:
                return ""
        return self._join(items)

    def flush(self) -> str:
        out = []
        items: list = []
        for stage in self.stages:
            items = stage.push(items) if items else []
            items += stage.flush()
        out += items
        return self._join(out)

    def _join(self, items: list) -> str:
        if self.decoder.joiner:
            text = "".join((self.decoder.joiner if self.count + i else "") + t for i, t in enumerate(items))
            self.count += len(items)
            return text
        return "".join(items)
