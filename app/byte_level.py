"""GPT-2's byte alphabet and UTF-8 completeness: what the byte-level tokenizers share (stdlib only).

bytes_to_unicode() is the reversible map byte -> printable character in which byte-level BPE
vocabularies (GPT-2's vocab.json, the ByteLevel models of tokenizer.json) write their tokens;
incomplete_tail(data) says how many trailing bytes are the start of a character still to come,
which is what streaming decoders hold back.
"""

from __future__ import annotations

__all__ = ["bytes_to_unicode", "incomplete_tail"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map byte -> printable character used to write vocab.json / merges.txt.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, \\xad, ...) map to
    U+0100 onwards in byte order, so that byte 0x20 (space) is "Ġ" and 0x0a (newline) is "Ċ".
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping



# the allowed range of the byte after each lead byte that has a narrower one than 80..BF
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def incomplete_tail(data: bytes) -> int:
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
