"""Every error PyWebGPT reports, and the one list of error codes.

Standard library only: CPython tools and tests import it, and so does every layer of the engine.
An error crosses to JavaScript as `to_dict()`: {name, code, message, ...fields}. web/api.js turns
that into an Error with the same `name`, `code` and fields, so a caller (the page's UI included)
reads `err.code` and `err.chars` instead of parsing the message.

    try:
        ids = tokenizer.encode(text)
    except UnknownCharactersError as exc:
        exc.code, exc.chars, exc.positions
"""

from __future__ import annotations

# code -> what it means to a caller (what it can do about it)
ERROR_CODES = {
    "input": "a bad argument, option or text from the caller; fix the request",
    "http": "the server answered with an error status for a model file",
    "network": "a model file could not be fetched (offline, CORS, a broken connection)",
    "format": "the files are not a model this engine can read",
    "too_large": "the model does not fit this GPU's limits or the memory budget",
    "memory": "the browser tab ran out of memory",
    "gpu": "WebGPU is missing, or the GPU refused or failed the work",
    "device_lost": "the GPU device was lost; the next call restarts it",
    "cancelled": "the caller cancelled the load",
    "busy": "another load or generation is running",
    "no_model": "no model is loaded",
    "engine": "an unexpected failure inside the engine",
}


class PyWebGPTError(Exception):
    """Base class: a message for the person using the page, a `code` from ERROR_CODES and, in
    subclasses, structured fields (`fields()`) that callers read instead of the message."""

    code = "engine"

    def fields(self) -> dict:
        """Structured facts about the error, JSON-serializable (empty by default)."""
        return {}

    def to_dict(self) -> dict:
        message = str(self) if self.args else type(self).__name__
        return {"name": type(self).__name__, "code": self.code, "message": message, **self.fields()}


class InputError(PyWebGPTError, ValueError):
    """A bad argument or option (a ValueError, so plain `except ValueError` still catches it)."""

    code = "input"


class UnknownCharactersError(InputError):
    """The text has characters that a character-level vocabulary does not contain.

    .chars: the unknown characters, sorted and unique; .positions: [(index, char), ...] for every
    occurrence. The message names them; CharTokenizer.encode(text, drop_unknown=True) drops them.
    """

    SHOWN_POSITIONS = 10

    def __init__(self, chars: list, positions: list):
        self.chars = list(chars)
        self.positions = list(positions)
        shown = ", ".join(f"{i} ({c!r})" for i, c in positions[:self.SHOWN_POSITIONS])
        more = f" and {len(positions) - self.SHOWN_POSITIONS} more" if len(positions) > self.SHOWN_POSITIONS else ""
        noun = "character" if len(chars) == 1 else "characters"
        super().__init__(
            f"the text has {len(chars)} {noun} that this model's vocabulary does not contain: "
            f"{', '.join(repr(c) for c in chars)} (at position {shown}{more}); "
            "remove them, or encode with drop_unknown=True")

    def fields(self) -> dict:
        return {"chars": self.chars, "positions": [[i, c] for i, c in self.positions]}


class ModelFormatError(PyWebGPTError, ValueError):
    """A model file that is malformed or not supported; the message names the file and the key."""

    code = "format"


class ModelError(PyWebGPTError, ValueError):
    """A model or a request this engine cannot run on this GPU (shapes over a kernel's limits, a
    token outside the vocabulary, a full context)."""

    code = "input"


class LoadError(PyWebGPTError, ValueError):
    """A model that could not be loaded, with a message naming the file and what to do; the code
    says which kind of failure it was."""

    def __init__(self, message: str, code: str = "format"):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code


class LoadCancelled(LoadError):
    def __init__(self, message: str = "loading was cancelled"):
        super().__init__(message, "cancelled")


class GPUError(PyWebGPTError, RuntimeError):
    """A WebGPU failure, with a message meant for the person using the page."""

    code = "gpu"


class WebGPUUnavailable(GPUError):
    """No WebGPU here: navigator.gpu missing, no adapter, or the device request failed."""


class DeviceLostError(GPUError):
    """The GPU device was lost (driver reset, GPU process gone); the next call restarts it."""

    code = "device_lost"

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason

    def fields(self) -> dict:
        return {"reason": self.reason}


class GenerationBusy(PyWebGPTError, RuntimeError):
    """A second generation (or a load) was asked for while one is running."""

    code = "busy"


class NoModelError(PyWebGPTError, RuntimeError):
    """A generation was asked for with no model loaded (or after the model was unloaded)."""

    code = "no_model"


def error_dict(exc: BaseException) -> dict:
    """Any exception as {name, code, message, ...}: ours keep their code and fields; anything else
    is an 'engine' failure (a bug, or a JS exception from deep inside the browser)."""
    if isinstance(exc, PyWebGPTError):
        return exc.to_dict()
    message = str(exc) if getattr(exc, "args", None) else type(exc).__name__
    return {"name": type(exc).__name__, "code": "engine", "message": message}
