"""The generation loop: prefill, then decode steps, streaming text as it comes.

    async for event in Generation(loaded, prompt_ids, params).run():
        event.token, event.text, event.top   # one new token, its complete text, top-5 alternatives

Ends on max_new_tokens ("length"), the end-of-text token ("eos": config.json's eos_token_id, else
the tokenizer's <|endoftext|>; the token is in `tokens`, not in the text), a stop string ("stop"), or a
call to stop() ("cancelled"), which takes effect within one decode step and between prefill
chunks. Sampling is Python (app/sampling.py); the GPU returns the top candidates of each step, and
Python reads the step's whole logits (kept on the GPU) only when the candidates cannot prove its
choice (see `candidates_needed`). Each step also chooses the next token on the GPU, as the sampler
will from the number it will draw (repetition penalty, top-k, top-p, or in id order over the
vocabulary), and the next step is queued before Python reads this one (chained decoding, below);
Python's choice decides, and a queued step fed another token is redone.

Context policy (n_ctx = the model's context): max_new_tokens is capped at n_ctx - 1, and a prompt
that would not leave room for max_new_tokens keeps only its last tokens (the start is dropped, and
the result says how many tokens were dropped). Nothing is ever computed past n_ctx.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .contract import CHAIN_DEPTH_MAX, DEFAULT_CHAIN_DEPTH, DEFAULT_STEPS_PER_SUBMIT, KMAX
from .errors import InputError
from .runner import GpuChoice, StepResult
from .sampling import Sampler, SamplingParams, StopStringMatcher
from .tokenizer import StreamingDetokenizer

SHOW_ALTERNATIVES = 5


@dataclass
class TokenEvent:
    token: int
    text: str                 # text completed by this token (may be "" mid-character)
    top: list                 # [(id, probability), ...] best first, at temperature 1


@dataclass
class GenerationResult:
    prompt_ids: list
    tokens: list = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""
    dropped_prompt_tokens: int = 0
    notices: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    logits: list = field(default_factory=list)  # array('f') per new token, when asked for
    reused_tokens: int = 0    # prompt tokens whose keys and values the KV cache already held
    prefilled_tokens: int = 0  # prompt tokens run through the model
    # context_policy 'slide': each time the context filled, {token: how many new tokens there were,
    # kept_first, kept_last}: the model then saw ids[:kept_first] + ids[-kept_last:] of all ids so far
    slides: list = field(default_factory=list)


def slide_window(ids: list, n_ctx: int, keep_first: int) -> tuple:
    """(kept_first, kept_last) when `ids` no longer fit a context of n_ctx: the first tokens stay
    (an instruction, a system prompt) and half of the room after them is freed, so that a long
    generation recomputes the window every (n_ctx - keep_first) / 2 tokens, not every token."""
    keep_first = min(keep_first, n_ctx // 2)
    kept_last = max(1, (n_ctx - keep_first) // 2)
    return keep_first, min(kept_last, len(ids) - keep_first)


def candidates_needed(params: SamplingParams) -> tuple[int, bool]:
    """(k candidates to fetch, whether a step may need all its logits) for these settings.

    Greedy without a repetition penalty takes the best candidate. Otherwise Sampler.sample_step
    decides from the candidates when they prove the choice, and the step's logits, kept on the GPU,
    are read when they do not: top-k fetches one candidate more than it keeps (so that the k-th
    value's ties show), top-p alone KMAX (a nucleus that fits in them is decided by Python; a larger
    one, like sampling in id order, by where the GPU's draw fell); a top-k of KMAX or more reads
    every step's logits.
    """
    k = SHOW_ALTERNATIVES
    if params.temperature == 0:
        return (k, False) if params.repetition_penalty == 1.0 else (max(k, 8), True)
    if params.top_k and params.top_k < KMAX:
        return max(k, params.top_k + 1), True
    if params.top_p < 1.0 and not params.top_k:
        return KMAX, True
    return k, True


def alternatives(step: StepResult, sampler: Sampler, seen=()) -> list:
    """Top candidates with their probabilities at the sampling temperature (1 when greedy), after
    the repetition penalty and before top-k / top-p filtering: softmax(logits / T), from the GPU's
    log-sum-exp over the whole vocabulary."""
    T = step.temperature
    log_z = step.log_normalizer()
    values = sampler.penalized_candidates(step.ids, step.logits, seen)
    out = []
    for token, logit in list(zip(step.ids, values))[:SHOW_ALTERNATIVES]:
        out.append((token, math.exp(logit / T - log_z)))
    return out


def _median_rate_ms(intervals: list, burst: int) -> float | None:
    """Median ms per token over runs of `burst` consecutive intervals between tokens: steps
    submitted together arrive together (one long interval, then short ones), so the median of
    single intervals would not be the rate tokens come at; each run spans one submit's worth."""
    if not intervals:
        return None
    burst = max(1, min(burst, len(intervals)))
    runs = sorted(sum(intervals[i:i + burst]) / burst for i in range(0, len(intervals) - burst + 1, burst))
    return runs[len(runs) // 2] * 1000


def queue_submits(room: int, to_the_end: bool, per_submit: int) -> list:
    """The sizes of the submits that top a queue of chained decode steps up now, `room` steps
    fitting: whole submits of `per_submit`, and the rest too when `to_the_end` (the room is that of
    the run's last steps, not of the queue's depth)."""
    sizes = [per_submit] * (room // per_submit)
    if to_the_end and room % per_submit:
        sizes.append(room % per_submit)
    return sizes


class Generation:
    def __init__(self, loaded, prompt_ids: list, params: SamplingParams, keep_logits: bool = False,
                 chain: bool = True, reuse_cache: bool = False, skip_special_tokens: bool = False,
                 context_policy: str = "truncate", keep_first: int = 0, chain_depth: int | None = None,
                 steps_per_submit: int | None = None):
        """chain=False runs every decode step after Python has read the previous one, even when the
        GPU could choose the next token (the same tokens, slower; app/bench.py compares the two).
        reuse_cache: keep the KV cache of the longest prefix this prompt shares with what the cache
        holds (the conversation so far, in a chat) and prefill only the rest. context_policy
        'truncate' caps max_new_tokens at the context and drops the prompt's oldest tokens to make
        room; 'slide' keeps going when the context fills: the first `keep_first` tokens stay, the
        oldest of the rest go, and the window is recomputed (prefilled again at its new positions).
        chain_depth: decode steps queued ahead of the one Python reads (1 to CHAIN_DEPTH_MAX; None:
        this module's DEFAULT_CHAIN_DEPTH, read when the generation is made). steps_per_submit:
        queued steps go to the GPU in one submit of this many (1 to chain_depth; None:
        DEFAULT_STEPS_PER_SUBMIT, at most chain_depth), the queue topped up when that many fit."""
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.params = params
        self.keep_logits = keep_logits
        self.chain = chain
        chain_depth = DEFAULT_CHAIN_DEPTH if chain_depth is None else chain_depth
        if not (isinstance(chain_depth, int) and 1 <= chain_depth <= CHAIN_DEPTH_MAX):
            raise InputError(f"chain_depth must be an integer from 1 to {CHAIN_DEPTH_MAX}, got {chain_depth!r}")
        self.chain_depth = chain_depth
        if steps_per_submit is None:
            steps_per_submit = min(DEFAULT_STEPS_PER_SUBMIT, chain_depth)
        if not (isinstance(steps_per_submit, int) and 1 <= steps_per_submit <= chain_depth):
            raise InputError(f"steps_per_submit must be an integer from 1 to chain_depth ({chain_depth}), "
                             f"got {steps_per_submit!r}")
        self.steps_per_submit = steps_per_submit
        self.reuse_cache = reuse_cache
        self.skip_special_tokens = skip_special_tokens
        self.cancelled = False
        # The GPU penalizes the tokens of its seen mask: written from Python's tokens when a run
        # starts or slides and whenever Python takes another token than the GPU chose (each step
        # adds its own choice).
        self.penalized = params.repetition_penalty != 1.0
        self.logits_read = 0
        n_ctx = self.model.n_ctx
        max_new = params.max_new_tokens
        self.result = GenerationResult(prompt_ids=list(prompt_ids))
        if not prompt_ids:
            raise InputError("the prompt is empty: give at least one token")
        self.slide = context_policy == "slide"
        self.keep_first = keep_first
        if self.slide:
            self.max_new = max_new
            self.prompt = list(prompt_ids)
            if len(prompt_ids) >= n_ctx:
                first, last = slide_window(self.prompt, n_ctx, keep_first)
                self.prompt = self.prompt[:first] + self.prompt[len(self.prompt) - last:]
                self.result.dropped_prompt_tokens = len(prompt_ids) - len(self.prompt)
                self.result.notices.append(
                    f"the prompt has {len(prompt_ids)} tokens, more than the context of {n_ctx}: its first {first} "
                    f"and last {last} were kept")
            return
        if max_new > n_ctx - 1:
            self.result.notices.append(f"max_new_tokens lowered from {max_new} to {n_ctx - 1}, the context minus one")
            max_new = n_ctx - 1
        self.max_new = max_new
        room = n_ctx - max_new
        if len(prompt_ids) > room:
            dropped = len(prompt_ids) - room
            self.result.dropped_prompt_tokens = dropped
            self.result.notices.append(
                f"the prompt has {len(prompt_ids)} tokens; with max_new_tokens={max_new} only the last {room} fit "
                f"the context of {n_ctx}, so the first {dropped} were dropped")
            prompt_ids = prompt_ids[dropped:]
        self.prompt = list(prompt_ids)

    @property
    def eos_token_ids(self) -> set:
        return self.eos_token_ids_of(self.loaded)

    @staticmethod
    def eos_token_ids_of(loaded) -> set:
        """The tokens that end a generation, as transformers' generate() stops: every id of
        generation_config.json's eos_token_id, else config.json's (one or a list), else the
        tokenizer's end-of-text token (GPT-2's <|endoftext|>). Empty: no end-of-text token."""
        generation = getattr(loaded, "generation", None)
        if generation is not None and generation.eos_token_ids:
            return set(generation.eos_token_ids)
        cfg = getattr(loaded, "config", None)
        ids = getattr(cfg, "eos_token_ids", None) or [getattr(cfg, "eos_token_id", None)]
        ids = {i for i in ids if i is not None}
        eos = getattr(loaded.tokenizer, "eos_token_id", None)
        return ids or ({eos} if eos is not None else set())

    def stop(self):
        self.cancelled = True

    async def run(self):
        """Async generator of TokenEvent; the GenerationResult is in `self.result` afterwards."""
        params, model, result = self.params, self.model, self.result
        k, keep = candidates_needed(params)
        keep = keep or self.keep_logits
        sampler = Sampler(params)
        detok = StreamingDetokenizer(self.tokenizer, self.skip_special_tokens)
        stops = StopStringMatcher(params.stop or [])
        eos = self.eos_token_ids
        temperature = float(params.temperature)
        seen = list(self.prompt)
        # Each step also chooses the next token on the GPU as the sampler will (given the number it
        # will draw), so the next decode step can be queued, fed on the GPU, before Python has read
        # this one (model.submit_decode): the round trip to Python hides behind the GPU's work.
        # `ahead` holds the queued steps (up to chain_depth), each fed the choice of the one before
        # it; Python's own choice is checked against the first.
        chain = self.chain

        def gpu_choice(ahead_of_next: int) -> GpuChoice:
            draw = sampler.upcoming_draw(ahead_of_next)
            return GpuChoice(params.top_k, params.top_p, draw, params.repetition_penalty)

        ahead: list = []
        chain_misses = 0  # queued steps redone: the GPU's choice differed from Python's
        # After a miss nothing is queued until the GPU's choice is Python's again: where the GPU only
        # guesses (a top-p nucleus larger than its candidates) queued steps would mostly be redone.
        gpu_agrees = True
        t0 = time.perf_counter()
        if self.cancelled:  # stopped before it started: no GPU work at all
            step = None
        else:
            await model.drain()
            reused = model.keep_prefix(self.prompt) if self.reuse_cache else model.reset()
            result.reused_tokens, result.prefilled_tokens = reused, len(self.prompt) - reused
            model.cached_ids = []  # known again only if this generation ends normally (below)
            if self.penalized:
                model.write_seen(seen)
            step = await model.prefill(self.prompt[reused:], k=k, temperature=temperature, keep_logits=keep,
                                       should_stop=lambda: self.cancelled, choice=gpu_choice(0))
        t_prefill = time.perf_counter() - t0
        t_step = time.perf_counter()
        decode_times = []  # between consecutive results: the rate tokens arrive at
        text_parts = []
        finish = "length"
        try:
            while step is not None:
                if self.cancelled:  # stopped while the GPU worked on this step: do not use it
                    finish = "cancelled"
                    break
                token = await self._choose(sampler, step, seen)
                if not result.tokens:
                    result.timings["ttft_ms"] = (time.perf_counter() - t0) * 1000
                if self.keep_logits:
                    result.logits.append(await model.step_logits(step))
                top = alternatives(step, sampler, seen)
                result.tokens.append(token)
                seen.append(token)
                if token in eos and params.stop_on_eos:
                    finish = "eos"
                    yield TokenEvent(token, "", top)
                    break
                piece = detok.push(token)
                emit, hit = stops.push(piece)
                if emit:
                    text_parts.append(emit)
                yield TokenEvent(token, emit, top)
                if hit:
                    finish = "stop"
                    break
                if len(result.tokens) >= self.max_new:
                    break
                if self.cancelled:
                    finish = "cancelled"
                    break
                if ahead and token != step.choice:  # not what the queued steps were fed
                    await model.drain()
                    model.rollback(len(ahead))
                    ahead = []
                    chain_misses += 1
                gpu_agrees = token == step.choice
                if self.penalized and token != step.choice:  # the GPU marked its own choice seen
                    model.write_seen(seen)
                if self.slide and not ahead and model.pos >= model.n_ctx:  # full: recompute a window
                    step = await self._slide(seen, k, temperature, keep, gpu_choice(0))
                    if step is None:
                        finish = "cancelled"
                        break
                    t_step = time.perf_counter()
                    continue
                # Queue steps behind the one read next, up to chain_depth, in submits of
                # steps_per_submit (the run's last ones in a shorter one).
                fresh = not ahead  # nothing queued: the step read next is fed `token` itself
                queued = len(ahead) - 1 if ahead else 0
                room_depth = self.chain_depth - queued
                room_end = max(0, min(self.max_new - len(result.tokens) - 1 - queued,
                                      model.n_ctx - model.pos - fresh))
                room = min(room_depth, room_end) if chain and gpu_agrees else 0
                per_submit = self.steps_per_submit
                if fresh:
                    first = min(room, per_submit - 1)
                    ahead = model.submit_decode_steps(token, [gpu_choice(i) for i in range(first + 1)], k=k,
                                                      temperature=temperature, keep_logits=keep)
                    room, queued = room - first, first
                for n in queue_submits(room, room_end <= room_depth, per_submit):
                    ahead += model.submit_decode_steps(None, [gpu_choice(queued + 1 + i) for i in range(n)], k=k,
                                                       temperature=temperature, keep_logits=keep)
                    queued += n
                handle = ahead.pop(0)
                step = await model.collect(handle)
                now = time.perf_counter()
                decode_times.append(now - t_step)
                t_step = now
            else:
                finish = "cancelled"
        finally:
            # A step queued but never taken: forget its position now (nothing awaited here, so this
            # also holds when the consumer drops the generator mid-way); it is read back below, or
            # by the model's next prefill.
            if ahead:
                model.rollback(len(ahead))
        await model.drain()
        # what the KV cache holds now (after a slide, a window: not a prefix of these ids)
        model.cached_ids = [] if result.slides else (self.prompt + result.tokens)[:model.pos]
        if finish != "stop":  # text held back (a partial character, a possible stop string start)
            tail = stops.flush(detok.flush())
            if tail:
                text_parts.append(tail)
                yield TokenEvent(-1, tail, [])
        result.finish_reason = finish
        result.text = "".join(text_parts)
        n_prompt = len(self.prompt)
        result.timings.update({
            "prefill_ms": t_prefill * 1000,
            "prefill_tokens_per_s": n_prompt / t_prefill if t_prefill > 0 else None,
            "decode_ms_per_token": _median_rate_ms(decode_times, self.steps_per_submit if chain else 1),
            "decode_ms_mean": (sum(decode_times) / len(decode_times) * 1000) if decode_times else None,
            "decode_tokens": len(decode_times),
            "chained": chain,
            "chain_misses": chain_misses,
            "logits_read": self.logits_read,  # steps the candidates could not decide
            "total_ms": (time.perf_counter() - t0) * 1000,
        })

    async def _slide(self, seen: list, k: int, temperature: float, keep: bool, choice) -> StepResult | None:
        """The context is full: prefill the window of `seen` (every id so far, the newest not in the
        cache yet) from position 0; its last step gives the next token."""
        model, result = self.model, self.result
        first, last = slide_window(seen, model.n_ctx, self.keep_first)
        if not result.slides:
            result.notices.append(f"the context of {model.n_ctx} tokens filled: the first {first} tokens are kept and "
                                  f"the oldest of the rest dropped, the window recomputed each time it fills")
        result.slides.append({"token": len(result.tokens), "kept_first": first, "kept_last": last})
        await model.drain()
        model.reset()
        if self.penalized:
            model.write_seen(seen)
        window = seen[:first] + seen[len(seen) - last:]
        return await model.prefill(window, k=k, temperature=temperature, keep_logits=keep,
                                   should_stop=lambda: self.cancelled, choice=choice)

    async def _choose(self, sampler, step: StepResult, seen: list) -> int:
        """The sampler's token from the step's candidates when they prove it, else from all its logits."""
        token = sampler.sample_step(step, seen, self.model.cfg.vocab_size)
        if token is None:
            self.logits_read += 1
            token = sampler.sample(await self.model.step_logits(step), seen)
        return token
