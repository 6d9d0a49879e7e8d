"""Choosing the next token: greedy, temperature, top-k, top-p, repetition penalty, seed, stop strings.

Pure Python (standard library only), so it runs the same in CPython and in Pyodide. Hugging Face
transformers' semantics are the reference, applied in its order:

1. repetition penalty (RepetitionPenaltyLogitsProcessor): for each distinct token already seen
   (prompt and generated), a logit < 0 is multiplied by the penalty, any other divided by it;
2. temperature 0 means greedy: the largest logit, ties going to the lowest id (no random draw);
3. top-k (TopKLogitsWarper): keep the k largest logits, and every token tied with the k-th;
4. temperature T (TemperatureLogitsWarper): probabilities softmax(logits / T), in float64;
5. top-p (TopPLogitsWarper): in order of probability (ties: lower id first), keep the smallest
   prefix whose mass reaches top_p: a token is kept when the tokens before it hold < top_p;
6. one uniform number u in [0, 1) from the sampler's own PRNG picks the token where the
   cumulative weight first exceeds u times the total (weights in the order of step 3/5, or in id
   order when neither top-k nor top-p filters).

Reproducibility: the PRNG is PCG32 (O'Neill's pcg32_random_r, stream 54) written with Python
ints, so a seed gives the same tokens in any Python version and in the browser; each non-greedy
draw takes two 32-bit outputs (53 bits). The `random` module is not used: its algorithms may
change between versions.

GPU candidates: the model returns its top candidates instead of all 50,257 logits: their ids and
logits, ranked by the penalized logits (in f32; topk.wgsl), with the log-sum-exp of the whole
vocabulary (M, S). `Sampler.sample_step` takes the token `Sampler.sample` would take from all the
logits, consuming the PRNG the same way, when the candidates prove it; else it returns None without
drawing, and the caller reads every logit (generate.py). Proof: a candidate whose f64 penalized
logit exceeds a bound on every token outside the list (the last candidate's, plus the f32
penalty's rounding) ranks ahead of all of them; a choice among such candidates (greedy, top-k with
its ties, a top-p nucleus whose cut S decides beyond its rounding) is the full logits' choice.
Sampling with neither top-k nor top-p draws in id order over the whole vocabulary: the GPU's own
choice then says where its draw fell (its weights before the token and the token's own); Python
takes it when its draw falls inside that share beyond the rounding. `Sampler.sample_candidates`
samples among a list only (an approximation outside those cases).

Bad input fails early with an InputError (a ValueError) that says what is wrong: parameters in
SamplingParams.validate(); NaN or +inf logits (-inf is allowed: a banned token) in the sampler.

StopStringMatcher cuts the streamed text before the first stop string, also when the stop string
spans several tokens.
"""

from __future__ import annotations

import heapq
import math
import os
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate

from .contract import F32_MAX, NEG_INF, NO_ID
from .errors import InputError

__all__ = ["SamplingParams", "Sampler", "PCG32", "StopStringMatcher", "top_candidates"]

_MASK64 = (1 << 64) - 1
_MAX_SEED = _MASK64
_FLOAT_MAX = 1.7976931348623157e308


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class SamplingParams:
    """Generation settings; validated (and normalized: ints to floats, stop to a tuple) on creation.

    max_new_tokens      >= 1
    temperature         >= 0, finite; 0 = greedy
    top_k               >= 0; 0 = off
    top_p               in (0, 1]; 1 = off
    repetition_penalty  > 0, finite; 1 = off; > 1 discourages repeats
    seed                None (a random seed from os.urandom) or an int in 0..2**64-1
    stop                strings that end the generation (not included in the text)
    stop_on_eos         end at the tokenizer's end-of-text token
    """

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple = ()
    stop_on_eos: bool = True

    def __post_init__(self):
        self.validate()

    @staticmethod
    def _integer(name: str, value, minimum: int) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not int:
            raise InputError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < minimum:
            raise InputError(f"{name} must be >= {minimum}, got {value}")
        return value

    @staticmethod
    def _real(name: str, value) -> float:
        if not _is_number(value):
            raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
        try:
            value = float(value)
        except OverflowError:  # an int beyond the float range
            value = math.inf if value > 0 else -math.inf
        if not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value!r}")
        return value

    def validate(self) -> "SamplingParams":
        self.max_new_tokens = self._integer("max_new_tokens", self.max_new_tokens, 1)
        self.temperature = self._real("temperature", self.temperature)
        if self.temperature < 0:
            raise InputError(f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        self.top_k = self._integer("top_k", self.top_k, 0)
        self.top_p = self._real("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}")
        self.repetition_penalty = self._real("repetition_penalty", self.repetition_penalty)
        if self.repetition_penalty <= 0:
            raise InputError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty!r}")
        if self.seed is not None:
            if isinstance(self.seed, float) and self.seed.is_integer():
                self.seed = int(self.seed)
            if type(self.seed) is not int or not 0 <= self.seed <= _MAX_SEED:
                raise InputError(f"seed must be null or an integer in 0..2**64-1, got {self.seed!r}")
        stop = self.stop
        if stop is None:
            stop = ()
        if isinstance(stop, str):
            raise InputError(f"stop must be a list of strings, e.g. [{stop!r}], not a single string")
        if not isinstance(stop, (list, tuple)):
            raise InputError(f"stop must be a list of strings, got {type(stop).__name__}")
        for s in stop:
            if not isinstance(s, str) or not s:
                raise InputError(f"stop strings must be non-empty strings, got {s!r}")
        self.stop = tuple(stop)
        if not isinstance(self.stop_on_eos, bool):
            raise InputError(f"stop_on_eos must be true or false, got {self.stop_on_eos!r}")
        return self


# Options a generation takes besides the sampling settings (app/engine.py Model.generate).
GENERATION_KEYS = ("prompt_ids", "return_logits", "context_policy", "keep_first")
CONTEXT_POLICIES = ("truncate", "slide")
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop",
                 "stop_on_eos")


def generation_options(opts: dict) -> dict:
    """Generation options as a JS caller sends them (JSON; null means "the default") -> keyword
    arguments for Model.generate, checked: an unknown key or a bad value is an InputError."""
    if not isinstance(opts, dict):
        raise InputError(f"generation options must be an object, got {type(opts).__name__}")
    unknown = sorted(set(opts) - set(SAMPLING_KEYS) - set(GENERATION_KEYS))
    if unknown:
        raise InputError(f"unknown generation option(s): {', '.join(map(str, unknown))}")
    out = {k: opts[k] for k in SAMPLING_KEYS if opts.get(k) is not None}
    if "stop_on_eos" in opts:
        out["stop_on_eos"] = bool(opts["stop_on_eos"])
    SamplingParams(**out)  # every value checked before anything runs
    if opts.get("prompt_ids") is not None:
        out["prompt_ids"] = opts["prompt_ids"]
    out["return_logits"] = bool(opts.get("return_logits"))
    for key in ("context_policy", "keep_first"):
        if opts.get(key) is not None:
            out[key] = opts[key]
    check_context_policy(out.get("context_policy", "truncate"), out.get("keep_first", 0))
    return out


def check_context_policy(policy, keep_first) -> None:
    """InputError unless `policy` is one of CONTEXT_POLICIES and keep_first a count of tokens."""
    if policy not in CONTEXT_POLICIES:
        raise InputError(f"context_policy must be one of {', '.join(CONTEXT_POLICIES)}, got {str(policy)[:40]!r}")
    if type(keep_first) is not int or keep_first < 0:
        raise InputError(f"keep_first must be a whole number of tokens >= 0, got {str(keep_first)[:40]!r}")


class PCG32:
    """PCG-XSH-RR 64/32 (M. O'Neill, pcg32_srandom_r / pcg32_random_r) on Python ints."""

    MULTIPLIER = 6364136223846793005

    def __init__(self, seed: int, stream: int = 54):
        self.inc = ((stream << 1) | 1) & _MASK64
        self.state = 0
        self.next_u32()
        self.state = (self.state + seed) & _MASK64
        self.next_u32()

    def next_u32(self) -> int:
        old = self.state
        self.state = (old * self.MULTIPLIER + self.inc) & _MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << ((-rot) & 31))) & 0xFFFFFFFF

    def random(self) -> float:
        """Uniform in [0, 1) with 53 random bits (two outputs)."""
        a = self.next_u32() >> 5
        b = self.next_u32() >> 6
        return (a * 67108864 + b) / 9007199254740992.0

    def peek_random(self, ahead: int = 0) -> float:
        """What random() will return after `ahead` more calls, without changing the state."""
        twin = PCG32.__new__(PCG32)
        twin.inc, twin.state = self.inc, self.state
        for _ in range(ahead):
            twin.random()
        return twin.random()


def _as_sequence(logits):
    if isinstance(logits, (list, tuple, array)):
        return logits
    return list(logits)


def _check_logits(values) -> None:
    """NaN or +inf anywhere: ValueError naming the index. -inf is allowed (a banned token)."""
    total = sum(values)
    if math.isfinite(total):
        return
    for i, v in enumerate(values):
        if v != v:
            raise InputError(f"logit {i} is NaN: the model's output is broken")
        if v == math.inf:
            raise InputError(f"logit {i} is +inf: the model's output is broken")
    if max(values) == -math.inf:
        raise InputError("every logit is -inf: there is no token to choose")


def top_candidates(logits, k: int) -> tuple[list, list]:
    """(ids, logits) of the k largest logits, best first, ties to the lower id."""
    values = _as_sequence(logits)
    k = min(k, len(values))
    ids = heapq.nlargest(k, range(len(values)), key=values.__getitem__)
    return ids, [values[i] for i in ids]


def _best_first(ids, values) -> tuple[list, list]:
    """Candidates sorted by value, best first, ties to the lower id."""
    order = sorted(range(len(ids)), key=lambda j: (-values[j], ids[j]))
    return [ids[j] for j in order], [values[j] for j in order]


def _clamp(value: float) -> float:
    """A penalized logit kept finite: an extreme penalty (say 1e-320) would overflow to +-inf, and
    inf - inf is NaN in the softmax. -inf (a banned token) stays -inf."""
    if value == -math.inf:
        return value
    return max(-_FLOAT_MAX, min(_FLOAT_MAX, value))


class Sampler:
    """Chooses tokens for one generation; holds the PRNG, so use one Sampler per generation."""

    def __init__(self, params: SamplingParams | None = None):
        self.params = params if params is not None else SamplingParams()
        self.params.validate()
        seed = self.params.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self.seed = seed  # report it to make a run with seed=None repeatable
        self.rng = PCG32(seed)

    # -- the two entry points ------------------------------------------------------------------

    def sample(self, logits, seen_ids=()) -> int:
        """The next token from all the logits (a list or array('f') of vocab_size floats)."""
        ids, weights = self._candidates_full(logits, seen_ids)
        return self._draw(ids, weights)

    def sample_candidates(self, ids, logits, seen_ids=()) -> int:
        """The next token from the model's top candidates (ids with their logits, best first)."""
        ids, weights = self._candidates_short(ids, logits, seen_ids)
        return self._draw(ids, weights)

    def sample_step(self, step, seen_ids=(), vocab_size: int | None = None) -> int | None:
        """The token `sample` would take from all the logits, decided from a step's candidates
        (`step`: .ids, .logits ranked by the penalized logits, best first; .max_logit, .sum_exp at
        .temperature over the whole vocabulary), or None (no draw) when they cannot prove it."""
        p = self.params
        real = [(t, v) for t, v in zip(step.ids, step.logits) if t != NO_ID]
        if not real:
            raise InputError("no logit is a number: the model's output is broken")
        _check_logits([v for _, v in real])
        ids = [t for t, _ in real]
        values = self.penalized_candidates(ids, [v for _, v in real], seen_ids)
        last = values[-1]  # the GPU's last candidate
        ids, values = _best_first(ids, values)
        if p.temperature == 0 and p.repetition_penalty == 1.0:
            return ids[0]  # the GPU ranks the logits themselves exactly, ties to the lower id
        # Every token outside the list ranks at most as the last candidate on the GPU; with a penalty
        # its f64 value may exceed its f32 one by a few ulps, or by what f32 flushes to zero.
        penalized = p.repetition_penalty != 1.0
        if penalized and not 1e-30 <= p.repetition_penalty <= 1e30:
            return None  # the penalty or its inverse is no f32 the GPU can multiply by
        if len(real) < len(step.ids):
            bound = NEG_INF  # every token with a real ranked logit is in the list
        else:
            last = max(-F32_MAX, min(F32_MAX, last))
            if abs(last) >= F32_MAX * (1 - 2 ** -20):
                return None  # clamped on the GPU: nothing bounds the tokens outside
            bound = last + (abs(last) * 2 ** -20 + 2 ** -100 if penalized else 0.0)
        certain = 0  # candidates certainly ahead of every token outside the list: a prefix of `values`
        while certain < len(values) and values[certain] > bound:
            certain += 1
        if p.temperature == 0:
            return ids[0] if certain else None
        k = p.top_k
        if k and (vocab_size is None or k < vocab_size):
            if k > certain:
                return None
            kept = k  # and the k-th value's ties: all certain, as they exceed the bound
            while kept < certain and values[kept] == values[k - 1]:
                kept += 1
            return self._draw(*self._nucleus(ids[:kept], values[:kept]))
        if p.top_p >= 1.0:
            return self._drawn_in_id_order(step, values[0])
        token = self._nucleus_of_vocabulary(step, ids[:certain], values[:certain]) if certain else None
        return token if token is not None else self._drawn_from_the_nucleus(step, values[0])

    @staticmethod
    def _sums_slack(step, top: float, t: float) -> float | None:
        """How far (relative to S) the GPU's f32 sums of weights may be from the f64 ones: their
        rounding, and the exponents' (f32 logits, penalized in f32, over T); None if S is no number."""
        m, s = step.max_logit, step.sum_exp
        if not (math.isfinite(m) and math.isfinite(s) and s > 0) or step.temperature != t:
            return None
        return 1e-4 + 2 ** -20 * (abs(m) + abs(top) + 1) / t

    def _drawn_in_id_order(self, step, top: float) -> int | None:
        """Sampling in id order over the vocabulary: the GPU's choice, when the draw falls inside the
        chosen token's share of the mass (its weights before it and its own, over S) by more than
        the sums' rounding."""
        slack = self._sums_slack(step, top, self.params.temperature)
        before, weight = step.choice_weights[:2]
        if slack is None or not weight > 0:
            return None
        s = step.sum_exp
        return self._gpu_choice_if_drawn_within(step, before / s + slack, (before + weight) / s - slack)

    def _gpu_choice_if_drawn_within(self, step, low: float, high: float) -> int | None:
        """The GPU's choice, drawing the number it stands for, when that number falls in (low, high)."""
        if not low < self.rng.peek_random() < high:
            return None  # the draw within rounding of the chosen token's share
        self.rng.random()
        return step.choice

    def _nucleus_of_vocabulary(self, step, ids, values) -> int | None:
        """Top-p alone from the candidates certainly first: the nucleus is cut at top_p of the whole
        vocabulary's mass, known from the GPU's S to within its f32 rounding (`slack`)."""
        t, top = self.params.temperature, values[0]
        slack = self._sums_slack(step, top, t)
        if slack is None:
            return None
        total = step.sum_exp * math.exp(min(700.0, (step.max_logit - top) / t))
        threshold = self.params.top_p * total
        weights = self._weights(values, top)
        cumulative = list(accumulate(weights))
        n = bisect_left(cumulative, threshold * (1 - slack)) + 1
        if n > len(cumulative) or cumulative[n - 1] < threshold * (1 + slack):
            return None  # the cut lies beyond the candidates, or within rounding of a boundary
        return self._draw(ids[:n], weights[:n])

    def _drawn_from_the_nucleus(self, step, top: float) -> int | None:
        """Top-p alone, its nucleus larger than the candidates: the GPU's choice (topk.wgsl searched
        the whole vocabulary), when its cut (the weights before the nucleus's last token and that
        token's own) and its draw's place both clear the sums' rounding. Without a penalty only: the
        GPU then orders the logits themselves, exactly as the sampler does (a penalty's f32 rounding
        could order two nearly equal tokens the other way)."""
        p = self.params
        slack = self._sums_slack(step, top, p.temperature)
        before, weight, cut_before, cut_weight = step.choice_weights
        if p.repetition_penalty != 1.0 or slack is None or not (weight > 0 and cut_weight > 0):
            return None
        s = step.sum_exp
        if not cut_before / s < p.top_p - slack <= p.top_p + slack <= (cut_before + cut_weight) / s:
            return None  # the cut within rounding of a boundary
        nucleus = (cut_before + cut_weight) / s  # > 2 slack: the cut clears top_p + slack
        return self._gpu_choice_if_drawn_within(step, (before / s + slack) / (nucleus - slack),
                                                ((before + weight) / s - slack) / (nucleus + slack))

    def upcoming_draw(self, ahead: int = 0) -> float:
        """The uniform number the choice `ahead` tokens after the next one will draw (0 = the next
        token's), without drawing it: a sampled choice draws exactly one, a greedy one none.
        generate.py hands it to the GPU so a chained decode step can be fed the same choice."""
        if self.params.temperature == 0:
            return 0.0
        return self.rng.peek_random(ahead)

    def distribution(self, logits, seen_ids=()) -> list:
        """[(id, probability)] that `sample` draws from, in its order (no PRNG use); greedy: [(id, 1.0)]."""
        ids, weights = self._candidates_full(logits, seen_ids)
        if weights is None:
            return [(ids, 1.0)]
        total = math.fsum(weights)
        return [(i, w / total) for i, w in zip(ids, weights) if w > 0]

    # -- internals -------------------------------------------------------------------------------

    def _draw(self, ids, weights) -> int:
        if weights is None:  # greedy
            return ids
        cumulative = list(accumulate(weights))
        target = self.rng.random() * cumulative[-1]
        i = bisect_right(cumulative, target)
        if i >= len(ids):  # rounding at the very top: the last token with weight
            i = max(j for j, w in enumerate(weights) if w > 0)
        return ids[i]

    def _penalized(self, values, seen_ids):
        """A float list with the repetition penalty applied to the distinct seen ids."""
        penalty = self.params.repetition_penalty
        values = list(values)
        n = len(values)
        for token in set(seen_ids):
            if not 0 <= token < n:
                raise InputError(f"seen token id {token} is outside the logits (0..{n - 1})")
            v = values[token]
            values[token] = _clamp(v * penalty if v < 0 else v / penalty)
        return values

    def penalized_candidates(self, ids, values, seen_ids) -> list:
        """Candidates' logits with the repetition penalty applied to those seen, as `_penalized`."""
        penalty = self.params.repetition_penalty
        if penalty == 1.0 or not seen_ids:
            return list(values)
        seen = set(seen_ids)
        return [_clamp(v * penalty if v < 0 else v / penalty) if t in seen else v for t, v in zip(ids, values)]

    def _candidates_full(self, logits, seen_ids):
        """(ids, weights) to draw from, or (id, None) when greedy."""
        p = self.params
        values = _as_sequence(logits)
        n = len(values)
        if n == 0:
            raise InputError("no logits to sample from")
        _check_logits(values)
        if p.repetition_penalty != 1.0 and seen_ids:
            values = self._penalized(values, seen_ids)
        if p.temperature == 0:
            return values.index(max(values)), None
        k = p.top_k
        if k and k < n:
            # every token with a logit >= the k-th largest (HF keeps ties), best first
            return self._nucleus(*self._at_least(values, heapq.nlargest(k, values)[-1]))
        if p.top_p >= 1.0:
            return range(n), self._weights(values, max(values))
        # Top-p alone. All weights are needed for the total; the order only for the nucleus, which
        # is usually small: look among the 256 largest logits first, sort everything only if the
        # nucleus is larger. (The weights follow the logits' order, so sorting the logits, which
        # is fast without a key, is enough; the ids are fetched once the cut-off is known.)
        top = max(values)
        threshold = p.top_p * math.fsum(self._weights(values, top))
        head = heapq.nlargest(256, values) if n > 256 else sorted(values, reverse=True)
        weights = self._weights(head, top)
        count = self._nucleus_size(weights, threshold)
        if count == len(head) and count < n:
            head = sorted(values, reverse=True)
            weights = self._weights(head, top)
            count = self._nucleus_size(weights, threshold)
        order, _ = self._at_least(values, head[count - 1])
        return order[:count], weights[:count]

    @staticmethod
    def _at_least(values, floor):
        """(ids, logits) of the logits >= floor, best first, ties to the lower id."""
        order = sorted((i for i in range(len(values)) if values[i] >= floor), key=values.__getitem__, reverse=True)
        return order, [values[i] for i in order]

    @staticmethod
    def _nucleus_size(weights, threshold: float) -> int:
        """How many of `weights` (best first) top-p keeps: up to the first whose running sum
        reaches threshold (all of them if rounding keeps the sum below it)."""
        i = bisect_left(list(accumulate(weights)), threshold)
        return min(i + 1, len(weights))

    def _candidates_short(self, ids, logits, seen_ids):
        p = self.params
        ids = list(ids)
        values = list(_as_sequence(logits))
        if len(ids) != len(values):
            raise InputError(f"{len(ids)} candidate ids but {len(values)} logits")
        if not ids:
            raise InputError("no candidates to sample from")
        _check_logits(values)
        ids, values = _best_first(ids, self.penalized_candidates(ids, values, seen_ids))
        if p.temperature == 0:
            return ids[0], None
        k = p.top_k
        if k and k < len(ids):
            kth = values[k - 1]
            while k < len(ids) and values[k] == kth:
                k += 1
            ids, values = ids[:k], values[:k]
        return self._nucleus(ids, values)

    def _weights(self, values, top: float) -> list:
        """exp((v - top) / T): softmax numerators, in float64."""
        t = self.params.temperature
        exp = math.exp
        return [exp((v - top) / t) for v in values]

    def _nucleus(self, ids, values):
        """Temperature and top-p on candidates sorted best first (ties: lower id first) -> (ids, weights)."""
        weights = self._weights(values, values[0])
        if self.params.top_p < 1.0:
            count = self._nucleus_size(weights, self.params.top_p * math.fsum(weights))
            ids, weights = ids[:count], weights[:count]
        return ids, weights


class StopStringMatcher:
    """Cuts a stream of text pieces before the first stop string.

    push(piece) -> (text to emit now, hit). A suffix that could begin a stop string is held back
    until it is decided. When a stop string completes, possibly across pieces, push returns the
    text before it and hit=True; the stop string and anything after it are dropped, and later
    pushes return ("", True). If several stop strings occur, the one that ends first wins (the
    generation would have stopped there), and of those ending at the same place the longest.
    The result does not depend on how the text was cut into pieces. flush(text) returns what is
    held back plus `text`, with the same stop handling; no stops: everything passes through.
    """

    def __init__(self, stops=()):
        if isinstance(stops, str):
            stops = [stops]
        self.stops = tuple(s for s in (stops or ()) if s)
        self._held = ""
        self.hit = False
        self.stop_string = None  # the stop string that ended the text, once hit

    def push(self, piece: str) -> tuple[str, bool]:
        if self.hit:
            return "", True
        if not self.stops:
            return piece, False
        text = self._held + piece
        first_end, cut = None, None
        for s in self.stops:
            at = text.find(s)
            if at >= 0:
                end = at + len(s)
                if first_end is None or end < first_end or (end == first_end and at < cut):
                    first_end, cut, self.stop_string = end, at, s
        if cut is not None:
            self.hit = True
            self._held = ""
            return text[:cut], True
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of a stop string."""
        longest = min(len(text), max(len(s) for s in self.stops) - 1)
        for length in range(longest, 0, -1):
            tail = text[-length:]
            if any(s.startswith(tail) for s in self.stops):
                return length
        return 0

    def flush(self, text: str = "") -> str:
        emit, hit = self.push(text)
        if hit:
            return emit
        rest, self._held = self._held, ""
        return emit + rest
