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

from pyodide.ffi import create_proxy

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
    maxGpuBytes."""
    engine = _engine()
    opts = json.loads(opts_json or "{}")
    options = {"context": opts.get("context"), "cache": opts.get("cache", True), "hub": opts.get("hub"),
               "max_gpu_bytes": opts.get("maxGpuBytes", opts.get("max_gpu_bytes"))}
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


def _generate(prompt: str, opts_json: str, on_token=None):
    """pywebgpt.generate: validates and registers the generation synchronously (so a stop() issued
    right after generate() reaches it), then runs it as a task whose result JSON api.js awaits."""
    engine = _engine()
    try:
        options = generation_options(json.loads(opts_json or "{}"))
        if engine.loading is not None:
            raise GenerationBusy("a model is loading: wait for it, then generate")
        if engine.recovering is not None or (engine.model is not None and engine.model.busy):
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        if engine.device_lost and not engine.loss_reported:
            raise engine.device_lost_error()
        if engine.needs_recovery:
            recovery = _Recovery()
            engine.recovering = recovery  # stop() and a second generate() see it at once
            return asyncio.ensure_future(_recover_and_generate(prompt, options, on_token, recovery))
        stream = engine.current().generate(prompt, **options)
    except Exception as exc:  # noqa: BLE001 - every bad request becomes a clean rejection
        return _error_json(exc)
    return asyncio.ensure_future(_run(engine.model, stream, on_token))


async def _run(model, stream, on_token) -> str:
    engine = _engine()
    with engine.call():
        try:
            async for event in stream.token_events():
                if on_token is not None and not is_null(on_token):
                    top = [{"id": i, "prob": p, "text": _token_text(model, i)} for i, p in event.top]
                    on_token(json.dumps({"token": event.token, "text": event.text, "top": top}))
        except Exception as exc:  # noqa: BLE001 - GPU errors, a lost device, a failing callback
            if await engine.lost_meanwhile(exc):
                return _error_json(engine.device_lost_error())
            return _error_json(exc)
    r = stream.result
    out = {"prompt_ids": r.prompt_ids, "tokens": r.tokens, "text": r.text, "finish_reason": r.finish_reason,
           "dropped_prompt_tokens": r.dropped_prompt_tokens, "notices": r.notices, "timings": r.timings}
    if r.logits:
        out["logits_f32_b64"] = base64.b64encode(b"".join(a.tobytes() for a in r.logits)).decode()
        out["vocab_size"] = model.config.vocab_size
    return json.dumps(out)


def _token_text(model, token: int) -> str:
    return model.tokenizer.token_bytes(token).decode("utf-8", "replace")


async def _recover_and_generate(prompt: str, options: dict, on_token, recovery: _Recovery) -> str:
    """generate() after a device loss: restart the GPU, reload the current model, then generate."""
    engine = _engine()
    try:
        record = await engine.recover()
        stream = engine.current().generate(prompt, **options)
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
    out = json.loads(await _run(engine.model, stream, on_token))
    if "error" not in out and record["reason"] is not None:
        where = "from the browser cache" if record["from_cache"] else "from its source"
        out["notices"] = [f"the GPU device was lost ({record['reason']}): it was restarted and the model loaded "
                          f"again {where} in {record['seconds']:.1f} s"] + out["notices"]
        out["recovered"] = record
    return json.dumps(out)


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
    _expose(api, "_pyStop", _stop)
    _expose(api, "_pyUnload", _unload)
    _expose(api, "_pyModelInfo", _model_info_json)
    _expose(api, "_pyCancelLoad", _cancel_load)
    _expose(api, "_pyCachedModels", _cached_models)
    _expose(api, "_pyClearCache", _clear_cache)
    api._ok(json.dumps(runtime_info(gpu)))
