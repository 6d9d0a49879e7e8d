"""What every config.json reader shares: JSON parsing, field checks, and matching a file's tensors.

Standard library only (runs in Pyodide and CPython). Every problem is a ModelFormatError whose
message names the file and the key (or tensor) at fault.
"""

from __future__ import annotations

import json
import math

from .errors import ModelFormatError
from .safetensors import brief

# Dtypes the GPU engine can take weights in (BF16 is converted on load).
SUPPORTED_WEIGHT_DTYPES = ("F32", "F16", "BF16")


def load_json(text, filename):
    """config.json's bytes or text -> the parsed JSON value (not yet checked to be an object)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError(f"{filename}: not UTF-8 text") from None
    if text.lstrip().startswith("version https://git-lfs"):
        raise ModelFormatError(
            f"{filename}: this is a Git LFS pointer file, not the config; run "
            f"`git lfs pull` or download the real file"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelFormatError(f"{filename}: not valid JSON ({detail})") from None


def require_object(d, filename) -> dict:
    if not isinstance(d, dict):
        raise ModelFormatError(f"{filename}: must be a JSON object, got {type(d).__name__}")
    return d


def positive_int(d, key, filename, where="") -> int:
    """d[key], a positive JSON integer. `where` names an enclosing object, e.g. "'rope_scaling' ".."""
    if key not in d:
        raise ModelFormatError(f"{filename}: missing key {where}{key!r}")
    value = d[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelFormatError(
            f"{filename}: {where}{key!r} must be an integer, got {value!r:.40} ({type(value).__name__})"
        )
    if value <= 0:
        raise ModelFormatError(f"{filename}: {where}{key!r} must be positive, got {shown(value)}")
    return value


def positive_number(d, key, filename, where="") -> float:
    """d[key], a finite JSON number > 0, as a float."""
    if key not in d:
        raise ModelFormatError(f"{filename}: missing key {where}{key!r}")
    value = d[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not finite(value) or value <= 0:
        raise ModelFormatError(f"{filename}: {where}{key!r} must be a positive number, got {value!r:.40}")
    return float(value)


def boolean(d, key, default, filename) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise ModelFormatError(f"{filename}: {key!r} must be true or false, got {value!r:.40}")
    return value


def finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def shown(value) -> str:
    """A value for a one-line message: a JSON integer may have thousands of digits."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def token_ids(value, key, vocab_size, filename, notices) -> tuple:
    """config.json's bos/eos value (an int, a list of ints, or null) -> the ids inside the vocabulary.

    An id outside the vocabulary is dropped with a notice, not refused: transformers
    itself writes GPT-2's 50256 into configs of models with small vocabularies.
    """
    values = value if isinstance(value, list) else [] if value is None else [value]
    kept = []
    for item in values:
        if not isinstance(item, int) or isinstance(item, bool):
            raise ModelFormatError(
                f"{filename}: {key!r} must be an integer, a list of integers or null, got {value!r:.40}"
            )
        if 0 <= item < vocab_size:
            if item not in kept:
                kept.append(item)
        else:
            notices.append(
                f"{filename}: {key!r} {shown(item)} is outside the vocabulary (size {vocab_size}); ignored"
            )
    return tuple(kept)


def match_named_tensors(tensors, filename, *, expected, optional, canonical, skip, missing_help, shape_help,
                        transposed_hint, family, notices):
    """Check a file's tensors against the names and shapes a config needs.

    tensors: stored key -> object with .dtype, .shape (and .filename for sharded models).
    expected: canonical name -> shape, all required; optional: name -> shape, used when present.
    canonical(key) -> canonical name; skip(name) -> True for buffers that are not weights.
    missing_help / shape_help: the config's facts shown after a missing tensor / a wrong shape;
    transposed_hint: said when a 2-D shape is the transpose of the expected one.
    Returns (canonical name -> object, notices).
    """
    mapping, stored_key, extra = {}, {}, []
    for key, info in tensors.items():
        name = canonical(key)
        if skip(name):
            continue
        if name not in expected and name not in optional:
            extra.append(key)
            continue
        if name in mapping:
            raise ModelFormatError(
                f"{file_of(info, filename)}: tensor {name!r} is stored twice, as "
                f"{stored_key[name]!r} and {key!r}"
            )
        mapping[name] = info
        stored_key[name] = key

    missing = [name for name in expected if name not in mapping]
    if missing:
        listed = ", ".join(repr(name) for name in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ModelFormatError(
            f"{filename}: missing tensor{'s' if len(missing) > 1 else ''} {listed}{more} {missing_help}"
        )

    for name, info in mapping.items():
        where = f"{file_of(info, filename)}: tensor {stored_key[name]!r}"
        want = expected.get(name) or optional[name]
        shape = tuple(info.shape)
        if shape != want:
            hint = transposed_hint if len(shape) == 2 and shape == want[::-1] else ""
            raise ModelFormatError(f"{where} has shape {list(shape)} but {shape_help} needs {list(want)}{hint}")
        if info.dtype not in SUPPORTED_WEIGHT_DTYPES:
            raise ModelFormatError(
                f"{where} has dtype {info.dtype}; supported: {', '.join(SUPPORTED_WEIGHT_DTYPES)}"
            )

    notices = list(notices)
    if extra:
        listed = ", ".join(brief(k) for k in extra[:10])
        more = f" and {len(extra) - 10} more" if len(extra) > 10 else ""
        notices.append(
            f"{filename}: ignored {len(extra)} tensor{'s' if len(extra) > 1 else ''} that "
            f"{family} does not use: {listed}{more}"
        )
    dtypes = sorted({info.dtype for info in mapping.values()})
    if len(dtypes) > 1:
        notices.append(f"{filename}: tensors have mixed dtypes ({', '.join(dtypes)})")
    return mapping, notices


def file_of(info, default):
    return getattr(info, "filename", "") or default


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
