"""generation_config.json: the end-of-sequence tokens a model stops on and its sampling defaults.

Standard library only. transformers' generate() stops on every id of its eos_token_id (an int or a
list), and its sampling settings are the model's recommended defaults; the page uses them as that
model's defaults, where present. A malformed file is a ModelFormatError naming the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .errors import ModelFormatError

FILENAME = "generation_config.json"
# generation_config.json key -> the engine's sampling option
SAMPLING_DEFAULTS = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                     "repetition_penalty": "repetition_penalty"}


@dataclass(frozen=True)
class GenerationConfig:
    eos_token_ids: tuple = ()
    defaults: dict = field(default_factory=dict)  # sampling option -> value (only what the file sets)

    @classmethod
    def from_json(cls, text, vocab_size: int, filename: str = FILENAME) -> "GenerationConfig":
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ModelFormatError(f"{filename}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
        if not isinstance(d, dict):
            raise ModelFormatError(f"{filename}: must be a JSON object, got {type(d).__name__}")
        eos = d.get("eos_token_id")
        eos = [] if eos is None else eos if isinstance(eos, list) else [eos]
        for value in eos:
            if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < vocab_size):
                raise ModelFormatError(f"{filename}: 'eos_token_id' holds {value!r:.40}, not a token id of the "
                                       f"vocabulary (0..{vocab_size - 1})")
        defaults = {}
        if d.get("do_sample") is False:
            defaults["temperature"] = 0.0  # greedy, as transformers' generate() then decodes
        else:
            for key, option in SAMPLING_DEFAULTS.items():
                value = d.get(key)
                if value is None:
                    continue
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                        or value < 0:
                    raise ModelFormatError(f"{filename}: {key!r} must be a non-negative number, got {value!r:.40}")
                defaults[option] = value
        return cls(tuple(dict.fromkeys(eos)), defaults)
