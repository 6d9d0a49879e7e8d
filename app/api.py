"""The Python API, for your own PyScript page (or any Pyodide with WebGPU):

    from pywebgpt import load_model

    model = await load_model("weights/shakespeare-char/")       # folder, URL or Hub id
    async for piece in model.generate("ROMEO:", max_new_tokens=100, temperature=0.8, top_k=40):
        output.textContent += piece                               # text as it comes
    result = await model.complete("JULIET:", max_new_tokens=50, temperature=0)   # all at once
    result.text, result.tokens, result.finish_reason, result.timings
    model.stop()        # ends the running generation within one decode step
    model.unload()      # frees the GPU memory

Same engine as the page and the JS API (app/generate.py): same options, same finish reasons
("length", "eos", "stop", "cancelled"), same context policy. One generation at a time per model:
starting a second while one runs raises GenerationBusy. The GPU device is shared with the page's
JS API (app/web_api.py) when that is running, and between models otherwise.

Leaving an `async for` early (`break`) ends that generation: the stream is closed when it is no
longer referenced, or at once with `stream.stop()` / `model.stop()`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import weakref

from .generate import Generation, GenerationBusy, GenerationResult
from .gpu import GPU, is_null
from .loader import LoadError, LoadJob
from .loader import load_model as _load_onto_gpu
from .sampling import SamplingParams

__all__ = ["load_model", "Model", "TextStream", "GenerationBusy", "GenerationResult", "LoadError", "get_gpu"]

_gpu_task: asyncio.Future | None = None


async def get_gpu() -> GPU:
    """The page's GPU: the JS API's device when app/web_api.py has started, else one device made
    on first use and shared by every model loaded through this API."""
    global _gpu_task
    web_api = sys.modules.get(__package__ + ".web_api") if __package__ else None
    shared = getattr(web_api, "_state", {}).get("gpu") if web_api is not None else None
    if shared is not None:
        if shared.lost_reason is not None:  # the device is gone: a new one, as the JS API's next call would
            await web_api._restart_gpu()
            shared = web_api._state["gpu"]
        return shared
    own_lost = (_gpu_task is not None and _gpu_task.done() and _gpu_task.exception() is None
                and _gpu_task.result().lost_reason is not None)
    if _gpu_task is None or own_lost or (_gpu_task.done() and _gpu_task.exception() is not None):
        _gpu_task = asyncio.ensure_future(GPU.create())
    return await asyncio.shield(_gpu_task)


def _page_url() -> str:
    import js  # noqa: PLC0415 - Pyodide only

    location = getattr(js.globalThis, "location", None)
    return "" if is_null(location) else str(location.href)


async def load_model(ref: str = "", *, on_progress=None, context: int | None = None, cache=True,
                     hub: str | None = None, max_gpu_bytes: int | None = None, files=None) -> "Model":
    """Check, download and put a GPT-2-family model on the GPU; returns a Model.

    ref: a folder of the site ('weights/shakespeare-char/', relative to the page), a URL of a
    folder (the server must allow CORS), or a Hugging Face Hub id ('openai-community/gpt2').
    on_progress(dict): {phase, file, loaded, total, bytes_per_s, eta_s, overall_loaded,
    overall_total, ...}, phase one of config, tokenizer, headers, download, cache, upload, done.
    context: a shorter context than the model's n_positions (less GPU memory). cache: True,
    False or 'refresh' (Cache Storage). hub: another Hub base URL. files: picked files
    ([{path, file}] of JS File objects) instead of ref. Raises LoadError (.code says the kind).
    """
    gpu = await get_gpu()
    callback = None
    if on_progress is not None:
        def callback(text):
            on_progress(json.loads(text))
    job = LoadJob(callback)
    t0 = time.perf_counter()
    loaded = await _load_onto_gpu(gpu, ref, base_url=_page_url(), context=context, files=files, job=job,
                                  cache=cache, hub=hub, max_gpu_bytes=max_gpu_bytes)
    return Model(loaded, gpu, time.perf_counter() - t0)


class Model:
    """A model on the GPU. Attributes: config (app/config.GPT2Config), tokenizer, context (the
    tokens it can hold), source, notices; `info` is the dict the JS API's info().model gives."""

    def __init__(self, loaded, gpu: GPU, load_s: float | None = None):
        self._loaded = loaded
        self.gpu = gpu
        self.config = loaded.config
        self.tokenizer = loaded.tokenizer
        self.source = loaded.source
        self.notices = list(loaded.notices)
        self.load_s = load_s
        self.last_result: GenerationResult | None = None
        self._running_ref = None                    # weakref to the stream that owns the model now
        self._waiting = weakref.WeakSet()           # streams made but not started yet
        self._unloaded = False
        self._freed = False

    @property
    def _running(self) -> "TextStream | None":
        return self._running_ref() if self._running_ref is not None else None

    # ------------------------------------------------------------------------ facts
    @property
    def context(self) -> int:
        return self._loaded.model.n_ctx

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def info(self) -> dict:
        from .config import param_count  # noqa: PLC0415

        cfg, model = self.config, self._loaded.model
        return {
            "source": self.source, "parameters": param_count(cfg),
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
            "vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "context": model.n_ctx,
            "dtype": model.weight_dtype, "gpu_bytes": model.gpu_bytes() if not self._unloaded else 0,
            "file_bytes": self._loaded.weight_bytes, "tokenizer": type(self.tokenizer).__name__,
            "notices": self.notices, "load_s": self.load_s, "load": dict(self._loaded.stats),
        }

    def encode(self, text: str) -> list:
        return self.tokenizer.encode(text)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    # ------------------------------------------------------------------------ generation
    def generate(self, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, seed: int | None = None,
                 stop=(), stop_on_eos: bool = True, prompt_ids=None, return_logits: bool = False) -> "TextStream":
        """Start a generation: an async iterator of text pieces (`async for piece in ...`).

        temperature 0 = greedy; top_k 0 and top_p 1 = off; repetition_penalty 1 = off; seed None
        = random (the same seed gives the same tokens); stop: strings that end the text (not
        included); prompt_ids: token ids instead of prompt text. Bad options raise ValueError
        here, before anything runs. The stream's `.result` (also `model.last_result`) holds
        tokens, text, finish_reason, dropped_prompt_tokens, notices and timings once it ends.
        """
        self._check_usable()
        if self._running is not None:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k or 0,
                                top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                                stop=list(stop) if isinstance(stop, (list, tuple)) else stop,
                                stop_on_eos=stop_on_eos)
        if prompt_ids is not None:
            ids = [int(i) for i in prompt_ids]
        else:
            if not isinstance(prompt, str):
                raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
            ids = self.tokenizer.encode(prompt)
        generation = Generation(self._loaded, ids, params, keep_logits=bool(return_logits))
        stream = TextStream(self, generation)
        self._waiting.add(stream)
        return stream

    def complete(self, prompt: str = "", *, on_piece=None, **options):
        """`await model.complete(prompt, **options)` -> GenerationResult (text, tokens,
        finish_reason, ...): generate() run to its end. on_piece(text) sees each piece.
        The generation is registered at the call, so a stop() right after it stops it."""
        stream = self.generate(prompt, **options)
        return stream.collect(on_piece)

    def stop(self) -> None:
        """End the running generation (and any made but not started): it finishes with
        finish_reason 'cancelled' within one decode step, or between prefill chunks."""
        for stream in list(self._waiting):
            stream.stop()
        if self._running is not None:
            self._running.stop()

    def unload(self) -> None:
        """Stop any generation and free the model's GPU memory; the model cannot be used after."""
        if self._unloaded:
            return
        self._unloaded = True
        self.stop()
        if self._running is None or not self._running._in_step:
            self._free()
        # else: the stream frees the model when its GPU step returns (see TextStream._end)

    def _free(self) -> None:
        if not self._freed:
            self._freed = True
            self._loaded.model.free()

    def _check_usable(self) -> None:
        if self._unloaded:
            raise RuntimeError("this model was unloaded: load it again with load_model()")

    def _begin(self, stream: "TextStream") -> None:
        self._check_usable()
        if self._running is not None and self._running is not stream:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        self._waiting.discard(stream)
        # weak: a stream left by `break` and no longer referenced is finalized and frees the model
        self._running_ref = weakref.ref(stream)

    def _end(self, stream: "TextStream") -> None:
        self._waiting.discard(stream)
        if self._running_ref is not None and self._running in (stream, None):
            self._running_ref = None
            if self._unloaded:
                self._free()
        self.last_result = stream.result

    def __repr__(self) -> str:
        cfg = self.config
        state = "unloaded" if self._unloaded else "running" if self._running else "ready"
        return (f"<pywebgpt.Model {self.source!r} {cfg.n_layer}x{cfg.n_embd}, context {self.context}, "
                f"{type(self.tokenizer).__name__}, {state}>")


class TextStream:
    """One generation: an async iterator of text pieces (only non-empty pieces are yielded).

    .result: the GenerationResult (complete once iteration ends); .tokens: ids so far;
    `stream.token_events()` iterates TokenEvents instead (id, text, top-5 alternatives).
    """

    def __init__(self, model: Model, generation: Generation):
        self._model = model
        self._generation = generation
        self.result: GenerationResult = generation.result
        self.tokens: list = []
        self._pieces: list = []
        self._events = None
        self._done = False
        self._in_step = False

    @property
    def finish_reason(self) -> str:
        return self.result.finish_reason

    def stop(self) -> None:
        """End this generation ('cancelled'); a stream not started yet will not run at all."""
        self._generation.stop()
        if self._events is not None and not self._in_step and not self._done:
            self._close()  # suspended between pieces: nothing runs on the GPU, finish now

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        while True:
            event = await self._next_event()
            if event.text:
                return event.text

    async def token_events(self):
        """Async iterator of app.generate.TokenEvent: .token (-1 for a final text flush), .text
        (the text this token completed, possibly ''), .top ([(id, probability)] best first)."""
        while True:
            try:
                yield await self._next_event()
            except StopAsyncIteration:
                return

    async def collect(self, on_piece=None) -> GenerationResult:
        async for piece in self:
            if on_piece is not None:
                on_piece(piece)
        return self.result

    async def _next_event(self):
        if self._done:
            raise StopAsyncIteration
        if self._events is None:
            self._model._begin(self)
            self._events = self._generation.run().__aiter__()
        self._in_step = True
        try:
            event = await self._events.__anext__()
        except StopAsyncIteration:
            self._in_step = False
            self._finish()
            raise
        except BaseException:
            self._in_step = False
            self._generation.stop()
            self._close("error")
            raise
        self._in_step = False
        if event.token >= 0:
            self.tokens.append(event.token)
        if event.text:
            self._pieces.append(event.text)
        if self._model._unloaded:  # unload() came while this step ran: free the model now
            self._close()
        return event

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._model._end(self)

    def _close(self, reason: str = "cancelled") -> None:
        """End without running the generator to its end (stopped between pieces, dropped, or
        failed): the result keeps the tokens and the text given out so far."""
        if self._done:
            return
        if not self.result.finish_reason:
            self.result.finish_reason = reason
            self.result.text = "".join(self._pieces)
        self._events = None  # a decode step it queued is read back by the model's next prefill
        self._finish()

    def __del__(self):
        # `break` out of `async for` drops the last reference: release the model.
        try:
            if not self._done and self._events is not None and not self._in_step:
                self._close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __repr__(self) -> str:
        state = self.result.finish_reason or ("running" if self._events is not None else "not started")
        return f"<pywebgpt.TextStream {len(self.tokens)} tokens, {state}>"
