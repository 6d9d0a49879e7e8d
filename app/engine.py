"""The engine: one GPU device, the models on it, and what runs on them. Every front-end drives it:
the Python API (app/api.py: `load_model`, `Model`) is this module, and the JS API
(`window.pywebgpt`, app/web_api.py) is a thin JSON adapter over an `Engine`.

    engine = default_engine()
    model = await engine.load_model("weights/shakespeare-char/")   # also: pywebgpt.load_model(...)
    async for piece in model.generate("ROMEO:", max_new_tokens=100):
        ...
    model.stop(); model.unload()

A `Model` runs one generation at a time: generate() claims it at once (a second generate() while
the first has not finished raises GenerationBusy), stop() ends the running one within one decode
step, and unload() frees the GPU memory (when the step in flight returns). The `Engine` owns the
device: it re-creates a lost device, and for the JS API it keeps the current model, the load in
progress and how to load the model again after a device loss.

Nothing here touches the DOM: the page, a worker and the Node runner share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref

from .chat import fit_conversation, model_chat_template
from .errors import DeviceLostError, GenerationBusy, InputError, LoadError, NoModelError, PyWebGPTError
from .generate import Generation, GenerationResult
from .gpu import GPU, is_null
from .load_job import LoadJob
from .loader import load_model as load_onto_gpu
from .sampling import SAMPLING_KEYS, SamplingParams, check_context_policy
from .shapes import KernelShapes

DEVICE_LOST = ("The GPU device was lost ({reason}). Your prompt and output are kept; the next action restarts "
               "the GPU and reloads the model.")


def _page_url() -> str:
    """The page's address, which model references and web/wheels/ resolve against. The engine worker
    (web/engine-worker.js) sets `pywebgptPageUrl`: its own location is its script's, not the page's."""
    import js  # noqa: PLC0415 - Pyodide only

    page = getattr(js.globalThis, "pywebgptPageUrl", None)
    if page is not None and not is_null(page):
        return str(page)
    location = getattr(js.globalThis, "location", None)
    return "" if is_null(location) else str(location.href)


class Engine:
    """One GPU device (made on first use, re-made after a loss), and for the JS API the current
    model, the load in progress and the recovery after a device loss."""

    def __init__(self, shape_overrides: dict | None = None):
        self.gpu: GPU | None = None
        self.shape_overrides = dict(shape_overrides or {})
        self.model: Model | None = None      # the JS API's current model
        self.model_ref: dict | None = None   # how to load it again after a device loss
        self.loading: LoadJob | None = None  # the load in progress
        self.recovering = None               # a generation waiting for a device restart and reload
        self.loss_reported = False           # the current device's loss was told to a caller
        self.recoveries: list = []           # what each recovery did
        self.on_idle_loss = None             # callback(message): a loss while nothing runs
        self.calls = 0                       # front-end calls running: each reports a loss itself
        self._gpu_task: asyncio.Future | None = None

    # ------------------------------------------------------------------------ the device
    async def get_gpu(self) -> GPU:
        """The device, made on first use; a lost device is replaced (its models are gone)."""
        if self.gpu is not None and self.gpu.lost_reason is None:
            return self.gpu
        if self._gpu_task is None or self._gpu_task.done():
            self._gpu_task = asyncio.ensure_future(self._new_gpu())
        return await asyncio.shield(self._gpu_task)

    async def _new_gpu(self) -> GPU:
        old = self.gpu
        gpu = await GPU.create()
        self.gpu = gpu
        self.loss_reported = False
        gpu.on_lost = lambda reason: self._on_lost(gpu, reason)
        if self.model is not None and self.model.gpu is old:
            self.model.unload()  # its buffers were on the lost device (destroy() is allowed there)
            self.model = None
        if old is not None:
            old.destroy()
        return gpu

    @property
    def shapes(self) -> KernelShapes:
        return KernelShapes.for_adapter(self.gpu.is_cpu, self.shape_overrides, self.gpu.cpu_threads)

    @property
    def device_lost(self) -> bool:
        return self.gpu is not None and self.gpu.lost_reason is not None

    async def lost_meanwhile(self, exc: BaseException) -> bool:
        """After a failure: was it the device going away? device.lost may settle a while after the
        failed call it caused, so a failure that may come from the GPU waits for it; one that names
        another cause (a 404, a bad file, a bad option) does not."""
        if self.gpu is None:
            return False
        if isinstance(exc, PyWebGPTError) and exc.code not in ("gpu", "device_lost", "engine"):
            return self.gpu.lost_reason is not None
        return await self.gpu.confirm_lost()

    def device_lost_error(self) -> DeviceLostError:
        self.loss_reported = True
        reason = (self.gpu.lost_reason if self.gpu is not None else None) or "no reason given"
        return DeviceLostError(DEVICE_LOST.format(reason=reason), reason)

    def _on_lost(self, gpu: GPU, reason: str) -> None:
        # A loss while a load or a generation runs is reported by that call; the old device that
        # a restart destroys on purpose is no longer the current one.
        if gpu is not self.gpu or self.busy or self.calls or self.on_idle_loss is None:
            return
        self.on_idle_loss(DEVICE_LOST.format(reason=reason or "no reason given"))

    @contextlib.contextmanager
    def call(self):
        """A front-end call (a JS API load or generation) that reports a device loss itself, until
        it returns: the loss is not announced as idle meanwhile."""
        self.calls += 1
        try:
            yield
        finally:
            self.calls -= 1

    # ------------------------------------------------------------------------ models
    @property
    def busy(self) -> bool:
        return (self.loading is not None or self.recovering is not None
                or (self.model is not None and self.model.busy))

    async def load_model(self, ref: str = "", *, on_progress=None, context: int | None = None, cache=True,
                         hub: str | None = None, max_gpu_bytes: int | None = None, files=None,
                         job: LoadJob | None = None, quantize: str | None = None,
                         dtype: str | None = None) -> "Model":
        """Check, download and put a model on the GPU; returns a Model (it does not replace the
        current one: see `load`). Raises LoadError (.code says the kind)."""
        gpu = await self.get_gpu()
        if job is None:
            callback = None
            if on_progress is not None:
                def callback(text):
                    on_progress(json.loads(text))
            job = LoadJob(callback)
        t0 = time.perf_counter()
        loaded = await load_onto_gpu(gpu, ref, base_url=_page_url(), context=context, files=files, job=job,
                                     cache=cache, hub=hub, max_gpu_bytes=max_gpu_bytes, shapes=self.shapes,
                                     quantize=quantize, dtype=dtype)
        model = Model(loaded, gpu, time.perf_counter() - t0)
        await model.prepare_chat()
        return model

    async def load(self, ref: str = "", *, files=None, on_progress=None, **options) -> "Model":
        """Load a model as the current one. The previous model is freed only once the new one is on
        the GPU: a failed load leaves it usable."""
        if self.model is not None and self.model.busy or self.recovering is not None:
            raise LoadError("a generation is running: stop it before loading another model", "busy")
        if self.loading is not None:
            raise LoadError("a model is already loading: wait for it or call cancelLoad()", "busy")
        if self.device_lost and not self.loss_reported:
            raise self.device_lost_error()
        job = LoadJob(on_progress)
        self.loading = job
        try:
            model = await self.load_model(ref, files=files, job=job, **options)
        except LoadError as exc:
            if await self.lost_meanwhile(exc):
                raise self.device_lost_error() from None
            raise
        finally:
            self.loading = None
        if self.model is not None:
            self.model.unload()
        self.model = model
        self.model_ref = {"ref": ref, "files": files, "options": options}
        return model

    async def reload(self, shape_overrides: dict | None = None) -> "Model":
        """Load the current model again, with other kernel shapes (benchmarks: tools/bench.py
        --tuning) when given."""
        if self.model_ref is None:
            raise NoModelError("no model is loaded: call load() first")
        if shape_overrides is not None:
            KernelShapes.for_adapter(False, shape_overrides)  # refuse unknown names before unloading
            self.shape_overrides = dict(shape_overrides)
        ref = self.model_ref
        return await self.load(ref["ref"], files=ref["files"], **ref["options"])

    def cancel_load(self) -> bool:
        """Abort the load in progress (it frees what it allocated). True if there was one."""
        if self.loading is None:
            return False
        self.loading.cancel()
        return True

    def current(self) -> "Model":
        if self.model is None:
            raise NoModelError("no model is loaded: call load() first")
        return self.model

    def stop(self) -> None:
        if self.recovering is not None:
            self.recovering.cancelled = True
        if self.model is not None:
            self.model.stop()

    def unload(self) -> None:
        """Stop and free the current model; a device-loss recovery will not bring it back."""
        self.stop()
        self.model_ref = None
        if self.model is not None:
            self.model.unload()
            self.model = None

    @property
    def needs_recovery(self) -> bool:
        """The next generate() must first restart the device and/or reload the current model."""
        return self.device_lost or (self.model is None and self.model_ref is not None)

    async def recover(self) -> dict:
        """Restart a lost device and load the current model again (from Cache Storage when it was
        cached); returns what it did. A load() meanwhile is refused as busy; cancelLoad() aborts."""
        job = LoadJob(None)
        self.loading = job
        reason = self.gpu.lost_reason if self.device_lost else None
        t0 = time.perf_counter()
        try:
            await self.get_gpu()
            if self.model is None:
                if self.model_ref is None:
                    raise NoModelError("no model is loaded: call load() first")
                ref = self.model_ref
                self.model = await self.load_model(ref["ref"], files=ref["files"], job=job, **ref["options"])
        finally:
            self.loading = None
        record = {"reason": reason, "source": self.model.source,
                  "from_cache": bool(self.model.load_stats.get("from_cache")),
                  "seconds": round(time.perf_counter() - t0, 3)}
        if reason is not None:
            self.recoveries.append(record)
        return record


class Model:
    """A model on the GPU. Attributes: config, tokenizer, context (the tokens it can hold), source,
    notices; `info` is the dict the JS API's info().model gives."""

    def __init__(self, loaded, gpu: GPU, load_s: float | None = None):
        self._loaded = loaded
        self.gpu = gpu
        self.config = loaded.config
        self.tokenizer = loaded.tokenizer
        self.source = loaded.source
        self.notices = list(loaded.notices)
        self.load_s = load_s
        self.load_stats = dict(loaded.stats)
        self.last_result: GenerationResult | None = None
        self.chat_template = None                   # app/chat_template.py ChatTemplate, or None
        self._running_ref = None                    # weakref to the stream that owns the model now
        self._unloaded = False
        self._freed = False

    @property
    def _running(self) -> "TextStream | None":
        return self._running_ref() if self._running_ref is not None else None

    # ------------------------------------------------------------------------ facts
    @property
    def gpu_model(self):
        """The GPU side (app/runner.py GPUModel): buffers, steps, read-back (benchmarks, tests)."""
        return self._loaded.model

    @property
    def context(self) -> int:
        return self._loaded.model.n_ctx

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def info(self) -> dict:
        from .config import param_count  # noqa: PLC0415 - app.config is light, but info is rare

        cfg, model, generation = self.config, self._loaded.model, self._loaded.generation
        return {
            "source": self.source, "family": cfg.model_type, "parameters": param_count(cfg),
            "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
            "vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "context": model.n_ctx,
            "dtype": model.weight_dtype, "weight_formats": sorted({model.weight_dtype, *model.graph.formats.values()}),
            "gpu_bytes": model.gpu_bytes() if not self._unloaded else 0, "gpu_bytes_by_kind": model.plan.by_kind(),
            "file_bytes": self._loaded.weight_bytes, "tokenizer": type(self.tokenizer).__name__,
            "chat": self.chat_template is not None,
            "eos_token_ids": sorted(Generation.eos_token_ids_of(self._loaded)),
            "generation_defaults": dict(generation.defaults),
            "notices": self.notices, "dispatches_per_decode_step": model.dispatches_per_decode_step,
            "load_s": self.load_s, "load": dict(self.load_stats),
        }

    async def prepare_chat(self) -> None:
        """The model's chat template, compiled, with jinja2 installed from the site's own wheels
        (app/wheels.py) the first time a model has one. A template that cannot be prepared leaves
        the model usable with plain prompts, and the notices say why."""
        if not getattr(self.tokenizer, "chat_template", None):
            return
        from . import wheels  # noqa: PLC0415 - only for models with a chat template
        from .chat_template import compile_template  # noqa: PLC0415 - needs jinja2, installed just above

        try:
            await wheels.ensure_jinja2()
            template = model_chat_template(self.tokenizer)
            compile_template(template.source)
        except PyWebGPTError as exc:
            self.notices.append(f"the chat template could not be prepared, so this model takes plain prompts only: "
                                f"{exc}")
            return
        self.chat_template = template

    def encode(self, text: str) -> list:
        return self.tokenizer.encode(text)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    # ------------------------------------------------------------------------ generation
    def generate(self, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, seed: int | None = None,
                 stop=(), stop_on_eos: bool = True, prompt_ids=None, return_logits: bool = False,
                 chain: bool = True, reuse_cache: bool = False, skip_special_tokens: bool = False,
                 context_policy: str = "truncate", keep_first: int = 0) -> "TextStream":
        """Start a generation: an async iterator of text pieces (`async for piece in ...`).

        temperature 0 = greedy; top_k 0 and top_p 1 = off; repetition_penalty 1 = off; seed None
        = random (the same seed gives the same tokens); stop: strings that end the text (not
        included); prompt_ids: token ids instead of prompt text; chain=False runs every decode step
        after Python has read the previous one (the same tokens, slower: app/bench.py compares
        them); skip_special_tokens leaves special tokens (<|im_start|>, ...) out of the text, as
        transformers' decode(skip_special_tokens=True) does; context_policy 'slide' (with
        keep_first) keeps generating past the context (app/generate.py). Bad options raise InputError (a
        ValueError) here, before anything runs. The stream's `.result` (also `model.last_result`)
        holds tokens, text, finish_reason, dropped_prompt_tokens, notices and timings once it ends.
        """
        self._check_usable()
        if self._running is not None:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        check_context_policy(context_policy, keep_first)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k or 0,
                                top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                                stop=list(stop) if isinstance(stop, (list, tuple)) else stop,
                                stop_on_eos=stop_on_eos)
        if prompt_ids is not None:
            try:
                ids = [int(i) for i in prompt_ids]
            except (TypeError, ValueError):
                raise InputError("prompt_ids must be a list of token ids (integers)") from None
        else:
            if not isinstance(prompt, str):
                raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
            ids = self.tokenizer.encode(prompt)
        generation = Generation(self._loaded, ids, params, keep_logits=bool(return_logits), chain=chain,
                                reuse_cache=reuse_cache, skip_special_tokens=bool(skip_special_tokens),
                                context_policy=context_policy, keep_first=keep_first)
        stream = TextStream(self, generation)
        # weak: a stream dropped unstarted, or left by `break` and no longer referenced, is
        # finalized and releases the model
        self._running_ref = weakref.ref(stream)
        return stream

    def chat(self, messages, **options) -> "TextStream":
        """The assistant's reply to a conversation ([{role, content}, ...]), as a TextStream: the
        model's chat template renders it (with the generation prompt), the oldest turns go when it
        would not leave max_new_tokens of room in the context (`stream.dropped_messages`, and a
        notice), and the KV cache of the conversation so far is kept: only the new tokens are
        prefilled (result.reused_tokens / prefilled_tokens). Options as for generate()."""
        self._check_usable()
        if self.chat_template is None:
            raise InputError("this model has no chat template: give it a plain prompt with generate()")
        if "prompt_ids" in options:
            raise InputError("chat() takes messages, not prompt_ids")
        sampling = {k: v for k, v in options.items() if k in SAMPLING_KEYS}
        params = SamplingParams(**sampling)  # every value checked before the template runs
        ids, dropped = fit_conversation(self.chat_template, self.tokenizer, messages, self.context,
                                        params.max_new_tokens)
        options.setdefault("skip_special_tokens", True)  # a reply's text, as transformers' chat pipelines give it
        stream = self.generate(prompt_ids=ids, reuse_cache=True, **options)
        stream.dropped_messages = dropped
        if dropped:
            stream.result.notices.insert(0, f"the conversation does not fit the context of {self.context} tokens "
                                            f"with room for the reply: its {dropped} oldest messages were left out")
        return stream

    def complete(self, prompt: str = "", *, on_piece=None, **options):
        """`await model.complete(prompt, **options)` -> GenerationResult (text, tokens,
        finish_reason, ...): generate() run to its end. on_piece(text) sees each piece.
        The generation is registered at the call, so a stop() right after it stops it."""
        stream = self.generate(prompt, **options)
        return stream.collect(on_piece)

    def stop(self) -> None:
        """End the running generation (also one made but not started): it finishes with
        finish_reason 'cancelled' within one decode step, or between prefill chunks."""
        if self._running is not None:
            self._running.stop()

    def unload(self) -> None:
        """Stop any generation and free the model's GPU memory; the model cannot be used after."""
        if self._unloaded:
            return
        self._unloaded = True
        running = self._running
        self.stop()
        if running is None or not running._in_step:
            self._free()
        # else: the stream frees the model when its GPU step returns (see TextStream._end)

    def _free(self) -> None:
        if not self._freed:
            self._freed = True
            self._loaded.model.free()

    def _check_usable(self) -> None:
        if self._unloaded:
            raise NoModelError("this model was unloaded: load it again with load_model()")

    def _end(self, stream: "TextStream") -> None:
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
        self.dropped_messages = 0  # chat(): the oldest messages that did not fit the context

    @property
    def finish_reason(self) -> str:
        return self.result.finish_reason

    def stop(self) -> None:
        """End this generation ('cancelled'); a stream not started yet will not run at all."""
        self._generation.stop()
        if not self._in_step and not self._done:
            self._close()  # between pieces (or not started): nothing runs on the GPU, finish now

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
            self._model._check_usable()
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
        # `break` out of `async for` (or a stream never started) drops the last reference:
        # release the model.
        try:
            if not self._done and not self._in_step:
                self._close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __repr__(self) -> str:
        state = self.result.finish_reason or ("running" if self._events is not None else "not started")
        return f"<pywebgpt.TextStream {len(self.tokens)} tokens, {state}>"


_default: Engine | None = None


def default_engine() -> Engine:
    """The page's engine: the JS API's, and the Python API's (one device for both)."""
    global _default
    if _default is None:
        _default = Engine()
    return _default
