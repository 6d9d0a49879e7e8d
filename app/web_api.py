"""The JS API (`pywebgpt` in web/api.js): a thin JSON adapter over the engine (app/engine.py).

web/api.js creates the object and its `ready` promise before Python starts; `start()` brings up
the GPU and installs the `_py*` hooks that api.js calls. Every hook takes and returns JSON text; a
failure comes back as {"error": {name, code, message, ...fields}} (app/errors.py error_dict), which
api.js throws as an Error with those properties. Nothing here touches the DOM, so the page, a
worker and the Node runner (tools/node_runner.mjs) share it.

A lost GPU device (a driver reset, the GPU process crashing, `gpu.device.destroy()` in a test) is
reported once: the load() or generate() that finds it (or is running when it happens) rejects with
code 'device_lost'. The next load() or generate() creates a new device and, for generate(), first
loads the current model again from its reference (from Cache Storage when it was cached), then runs
as asked; its result's notices say so. No page reload.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time

from pyodide.ffi import create_proxy

from . import chat, selftest
from .engine import Engine, default_engine
from .errors import GenerationBusy, LoadError, NoModelError, error_dict
from .gpu import GPU, is_null
from .model_cache import cached_models, clear_cache
from .sampling import generation_options

_proxies: list = []
_scratch: dict = {}  # the console / test hook's own dict, kept between calls


def _engine() -> Engine:
    return default_engine()


def _error_json(exc: BaseException) -> str:
    return json.dumps({"error": error_dict(exc)})


def runtime_info(gpu: GPU) -> dict:
    import pyodide  # noqa: PLC0415 - Pyodide only

    info = gpu.info()
    info["python_version"] = sys.version.split()[0]
    info["pyodide_version"] = str(pyodide.__version__)
    return info


def _model_info_json() -> str:
    model = _engine().model
    return json.dumps(None if model is None else model.info)


async def _load(ref: str, opts_json: str, on_progress=None, files=None) -> str:
    """pywebgpt.load(ref | {files}, opts): the model's info, or an error (api.js throws it as a
    LoadError). opts: context, cache (true | false | 'refresh'), hub (base URL for Hub ids),
    maxGpuBytes, quantize ('q8_0' | 'q4_0': float matrices quantized on the GPU while loading), dtype
    ('F32': float matrices widened to f32 while loading, e.g. when the self-test finds f16 drifting)."""
    engine = _engine()
    opts = json.loads(opts_json or "{}")
    options = {"context": opts.get("context"), "cache": opts.get("cache", True), "hub": opts.get("hub"),
               "max_gpu_bytes": opts.get("maxGpuBytes", opts.get("max_gpu_bytes")), "quantize": opts.get("quantize"),
               "dtype": opts.get("dtype")}
    progress = on_progress if on_progress is not None and not is_null(on_progress) else None
    try:
        with engine.call():
            model = await engine.load(ref, files=None if is_null(files) else files, on_progress=progress, **options)
    except LoadError as exc:
        return _error_json(exc)
    except Exception as exc:  # noqa: BLE001 - a lost device, no new device (WebGPU gone): clean rejections
        error = error_dict(exc)
        if error["code"] == "engine":
            error["code"] = "gpu"
        return json.dumps({"error": error})
    return json.dumps(model.info)


async def _cached_models(opts_json: str = "{}") -> str:
    opts = json.loads(opts_json or "{}")
    return json.dumps(await cached_models(hub=opts.get("hub")))


async def _clear_cache(ref: str = "", opts_json: str = "{}") -> str:
    from .engine import _page_url  # noqa: PLC0415 - one definition of the page's address

    opts = json.loads(opts_json or "{}")
    try:
        return json.dumps(await clear_cache(ref or "", base_url=_page_url(), hub=opts.get("hub")))
    except LoadError as exc:
        return _error_json(exc)


class _Recovery:
    """Stands in for the generation while the device is re-created and the model reloaded."""

    cancelled = False


def _start(make_stream, respond):
    """Validate and register a generation synchronously (so a stop() issued right after the call
    reaches it), then run it as a task whose result JSON api.js awaits. `make_stream(model)` starts
    the model's TextStream (raising on bad input); `respond(model, stream, error)` drives it to the
    end and returns the result dict (for a stream that failed, the error dict)."""
    engine = _engine()
    try:
        if engine.loading is not None:
            raise GenerationBusy("a model is loading: wait for it, then generate")
        if engine.recovering is not None or (engine.model is not None and engine.model.busy):
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        if engine.device_lost and not engine.loss_reported:
            raise engine.device_lost_error()
        if engine.needs_recovery:
            recovery = _Recovery()
            engine.recovering = recovery  # stop() and a second generate() see it at once
            return asyncio.ensure_future(_recover_and_run(make_stream, respond, recovery))
        model = engine.current()
        stream = make_stream(model)
    except Exception as exc:  # noqa: BLE001 - every bad request becomes a clean rejection
        return _error_json(exc)
    return asyncio.ensure_future(_run(model, stream, respond))


async def _run(model, stream, respond) -> str:
    engine = _engine()
    with engine.call():
        try:
            return json.dumps(await respond(model, stream))
        except Exception as exc:  # noqa: BLE001 - GPU errors, a lost device, a failing callback
            if await engine.lost_meanwhile(exc):
                return _error_json(engine.device_lost_error())
            return _error_json(exc)


async def _recover_and_run(make_stream, respond, recovery: _Recovery) -> str:
    """A generation after a device loss: restart the GPU, reload the current model, then run."""
    engine = _engine()
    try:
        record = await engine.recover()
        model = engine.current()
        stream = make_stream(model)
    except LoadError as exc:
        if await engine.lost_meanwhile(exc):
            return _error_json(engine.device_lost_error())
        error = error_dict(exc)
        error["message"] = f"The GPU was restarted, but the model could not be loaded again: {exc}"
        return json.dumps({"error": error})
    except NoModelError as exc:
        return _error_json(exc)
    except Exception as exc:  # noqa: BLE001 - no new device, a bad prompt: clean rejections
        error = error_dict(exc)
        if error["code"] == "engine":
            error["code"] = "gpu"
        return json.dumps({"error": error})
    finally:
        engine.recovering = None
    if recovery.cancelled:
        stream.stop()
    out = json.loads(await _run(model, stream, respond))
    if "error" not in out and record["reason"] is not None:
        where = "from the browser cache" if record["from_cache"] else "from its source"
        notice = (f"the GPU device was lost ({record['reason']}): it was restarted and the model loaded again "
                  f"{where} in {record['seconds']:.1f} s")
        notices = out["pywebgpt"]["notices"] if "pywebgpt" in out else out["notices"]
        notices.insert(0, notice)
        out["recovered"] = record
    return json.dumps(out)


def _generate(prompt: str, opts_json: str, on_token=None):
    """pywebgpt.generate(prompt, opts, onToken): the result JSON (tokens, text, finish_reason,
    timings, ...), or an error."""
    try:
        options = generation_options(json.loads(opts_json or "{}"))
    except Exception as exc:  # noqa: BLE001 - a bad request becomes a clean rejection
        return _error_json(exc)

    async def respond(model, stream) -> dict:
        async for event in stream.token_events():
            if on_token is not None and not is_null(on_token):
                top = [{"id": i, "prob": p, "text": _token_text(model, i)} for i, p in event.top]
                on_token(json.dumps({"token": event.token, "text": event.text, "top": top}))
        r = stream.result
        out = {"prompt_ids": r.prompt_ids, "tokens": r.tokens, "text": r.text, "finish_reason": r.finish_reason,
               "dropped_prompt_tokens": r.dropped_prompt_tokens, "notices": r.notices, "timings": r.timings,
               "slides": r.slides}
        if r.logits:
            out["logits_f32_b64"] = base64.b64encode(b"".join(a.tobytes() for a in r.logits)).decode()
            out["vocab_size"] = model.config.vocab_size
        return out

    return _start(lambda model: model.generate(prompt, **options), respond)


def _chat(request_json: str, on_chunk=None):
    """pywebgpt.chat.completions.create(request): the ChatCompletion JSON (api.js turns the pieces
    sent to on_chunk into the chunks of a stream), or an error."""
    try:
        request = json.loads(request_json or "{}")
        messages, options, _ = chat.parse_request(request)
    except Exception as exc:  # noqa: BLE001 - a bad request becomes a clean rejection
        return _error_json(exc)
    cid, created = chat.completion_id(), int(time.time())

    async def respond(model, stream) -> dict:
        name = str(request.get("model") or model.source)
        first = True
        async for event in stream.token_events():
            if event.text and on_chunk is not None and not is_null(on_chunk):
                delta = {"role": "assistant", "content": event.text} if first else {"content": event.text}
                first = False
                on_chunk(json.dumps(chat.chunk(cid, created, name, delta)))
        return chat.completion(cid, created, name, stream.result, stream.dropped_messages)

    return _start(lambda model: model.chat(messages, **options), respond)


def _token_text(model, token: int) -> str:
    return model.tokenizer.token_bytes(token).decode("utf-8", "replace")


def _stop() -> None:
    _engine().stop()


def _unload() -> None:
    _engine().unload()


def _cancel_load() -> bool:
    return _engine().cancel_load()


async def _eval_python(code: str) -> str:
    """Test and console hook: run Python source in this interpreter, with `engine`, `gpu` and a
    `scratch` dict in scope; the value of the last expression comes back as JSON. It gives nothing
    that the page's own JS could not already do."""
    from pyodide.code import eval_code_async  # noqa: PLC0415 - Pyodide only

    engine = _engine()
    scope = {"engine": engine, "gpu": engine.gpu, "scratch": _scratch, "__name__": "__pywebgpt__"}
    return json.dumps(await eval_code_async(code, globals=scope))


def _expose(api, name: str, fn) -> None:
    proxy = create_proxy(fn)
    _proxies.append(proxy)
    setattr(api, name, proxy)


async def start(api) -> None:
    engine = _engine()
    gpu = await engine.get_gpu()
    engine.on_idle_loss = lambda message: api._deviceLost(message)
    _expose(api, "_py", _eval_python)
    _expose(api, "_pyLoad", _load)
    _expose(api, "_pyGenerate", _generate)
    _expose(api, "_pyChat", _chat)
    _expose(api, "_pyStop", _stop)
    _expose(api, "_pyUnload", _unload)
    _expose(api, "_pyModelInfo", _model_info_json)
    _expose(api, "_pyCancelLoad", _cancel_load)
    _expose(api, "_pyCachedModels", _cached_models)
    _expose(api, "_pyClearCache", _clear_cache)
    _expose(api, "_pySelfTest", selftest.js_self_test)
    api._ok(json.dumps(runtime_info(gpu)))
