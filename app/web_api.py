"""The engine's JS API (`pywebgpt` in web/api.js), implemented in Python.

web/api.js creates the object and its `ready` promise before Python starts; `start()` brings up
the GPU and installs the `_py*` hooks that api.js calls. Nothing here touches the DOM, so the
page, a worker and the Node runner (tools/node_runner.mjs) share it.

A lost GPU device (a driver reset, the GPU process crashing, `gpu.device.destroy()` in a test) is
reported once: the load() or generate() that finds it (or is running when it happens) rejects with
code 'device_lost' and DEVICE_LOST's message. The next load() or generate() creates a new device
(GPU.create()) and, for generate(), first loads the current model again from its reference (from
Cache Storage when it was cached), then runs as asked; its result's notices say so. No page reload.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time

import js
from pyodide.ffi import create_proxy

from .generate import Generation, GenerationBusy
from .gpu import GPU, is_null
from .loader import LoadError, LoadJob, cached_models, clear_cache, load_model
from .sampling import SamplingParams

_state: dict = {"gpu": None, "loaded": None, "generation": None, "proxies": [], "load_s": None, "loading": None,
                # device loss: how to load the current model again, whether the loss was reported
                # to a caller yet, and what each recovery did
                "model_ref": None, "loss_reported": False, "recoveries": []}

DEVICE_LOST = ("The GPU device was lost ({reason}). Your prompt and output are kept; the next action restarts "
               "the GPU and reloads the model.")

SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop")


def _pyodide_version() -> str:
    import pyodide  # noqa: PLC0415

    return str(pyodide.__version__)


def runtime_info(gpu: GPU) -> dict:
    info = gpu.info()
    info["python_version"] = sys.version.split()[0]
    info["pyodide_version"] = _pyodide_version()
    return info


def model_info() -> dict | None:
    loaded = _state["loaded"]
    if loaded is None:
        return None
    cfg, model = loaded.config, loaded.model
    from .config import param_count  # noqa: PLC0415

    return {
        "source": loaded.source,
        "parameters": param_count(cfg),
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
        "vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "context": model.n_ctx,
        "dtype": model.weight_dtype, "gpu_bytes": model.gpu_bytes(), "file_bytes": loaded.weight_bytes,
        "tokenizer": type(loaded.tokenizer).__name__, "notices": loaded.notices,
        "dispatches_per_decode_step": model.dispatches_per_decode_step,
        "load_s": _state["load_s"],
    }


async def _load(ref: str, opts_json: str, on_progress=None, files=None) -> str:
    """pywebgpt.load(ref | {files}, opts): JSON model info (with a 'load' section of statistics), or
    {"error": {"message", "code"}} for a model that cannot be loaded (api.js throws it as LoadError).
    opts: context, cache (true | false | 'refresh'), hub (base URL for Hub ids), maxGpuBytes."""
    opts = json.loads(opts_json or "{}")
    if _state["generation"] is not None:
        return json.dumps({"error": {"message": "a generation is running: stop it before loading another model",
                                     "code": "busy"}})
    if _state.get("loading") is not None:
        return json.dumps({"error": {"message": "a model is already loading: wait for it or call cancelLoad()",
                                     "code": "busy"}})
    if _device_lost() and not _state["loss_reported"]:
        return _device_lost_json()
    job = LoadJob(on_progress)
    _state["loading"] = job
    t0 = time.perf_counter()
    kwargs = {"context": opts.get("context"), "cache": opts.get("cache", True), "hub": opts.get("hub"),
              "max_gpu_bytes": opts.get("maxGpuBytes", opts.get("max_gpu_bytes"))}
    try:
        if _device_lost():
            await _restart_gpu()
        loaded = await load_model(_state["gpu"], ref, base_url=_base_url(), files=files, job=job, **kwargs)
    except LoadError as exc:
        if await _lost_meanwhile():
            return _device_lost_json()
        return json.dumps({"error": {"message": str(exc), "code": exc.code}})
    except Exception as exc:  # noqa: BLE001 - no new device (WebGPU gone): a clean rejection
        return json.dumps({"error": {"message": str(exc) or type(exc).__name__, "code": "gpu"}})
    finally:
        _state["loading"] = None
    # Only now, with the new model fully on the GPU, let go of the previous one: a failed load
    # leaves the previous model usable.
    if _state["loaded"] is not None:
        _state["loaded"].model.free()
    _state["loaded"] = loaded
    _state["model_ref"] = {"ref": ref, "files": files, "kwargs": kwargs}
    _state["load_s"] = time.perf_counter() - t0
    info = model_info()
    info["load"] = loaded.stats
    return json.dumps(info)


def _cancel_load() -> bool:
    """pywebgpt.cancelLoad(): abort the load in progress (it frees what it allocated). True if one was."""
    job = _state.get("loading")
    if job is None:
        return False
    job.cancel()
    return True


async def _cached_models(opts_json: str = "{}") -> str:
    opts = json.loads(opts_json or "{}")
    return json.dumps(await cached_models(hub=opts.get("hub")))


async def _clear_cache(ref: str = "", opts_json: str = "{}") -> str:
    opts = json.loads(opts_json or "{}")
    base = str(js.globalThis.location.href) if not is_null(getattr(js.globalThis, "location", None)) else ""
    try:
        return json.dumps(await clear_cache(ref or "", base_url=base, hub=opts.get("hub")))
    except LoadError as exc:
        return json.dumps({"error": {"message": str(exc), "code": exc.code}})


def _params_from(opts: dict) -> SamplingParams:
    unknown = sorted(set(opts) - set(SAMPLING_KEYS) - {"prompt_ids", "return_logits", "stop_on_eos"})
    if unknown:
        raise ValueError(f"unknown generation option(s): {', '.join(unknown)}")
    kwargs = {k: opts[k] for k in SAMPLING_KEYS if k in opts and opts[k] is not None}
    if "stop_on_eos" in opts:
        kwargs["stop_on_eos"] = bool(opts["stop_on_eos"])
    return SamplingParams(**kwargs)


def _error_json(exc: BaseException, code: str | None = None) -> str:
    """A failure as {"error": {...}}: api.js throws it as an Error with .name and .code, so callers
    get one clean sentence instead of a Python traceback."""
    message = str(exc) if exc.args else type(exc).__name__
    if code is None:
        code = "busy" if isinstance(exc, GenerationBusy) else "input" if isinstance(exc, ValueError) else "engine"
    return json.dumps({"error": {"name": type(exc).__name__, "message": message, "code": code}})


def _generate(prompt: str, opts_json: str, on_token=None):
    """pywebgpt.generate: validates and registers the generation synchronously (so a stop() issued
    right after generate() reaches it), then runs it as a task whose result JSON api.js awaits."""
    if _state["generation"] is None and _device_lost() and not _state["loss_reported"]:
        return _device_lost_json()
    restart = _device_lost() or (_state["loaded"] is None and _state["model_ref"] is not None)
    try:
        loaded = _state["loaded"]
        if loaded is None and not restart:
            raise RuntimeError("no model is loaded: call load() first")
        if _state["generation"] is not None:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        opts = json.loads(opts_json or "{}")
        params = _params_from(opts)
        if restart:
            if _state.get("loading") is not None:
                raise GenerationBusy("a model is loading: wait for it, then generate")
            pending = _Pending()
            _state["generation"] = pending  # stop() and a second generate() see it at once
            return asyncio.ensure_future(_recover_and_generate(prompt, opts, params, on_token, pending))
        if opts.get("prompt_ids") is not None:
            prompt_ids = [int(i) for i in opts["prompt_ids"]]
        else:
            prompt_ids = loaded.tokenizer.encode(prompt)
        generation = Generation(loaded, prompt_ids, params, keep_logits=bool(opts.get("return_logits")))
    except Exception as exc:  # noqa: BLE001 - every bad request becomes a clean rejection
        return _error_json(exc, "no_model" if _state["loaded"] is None else None)
    _state["generation"] = generation
    return asyncio.ensure_future(_run_generation(loaded, generation, on_token))


async def _run_generation(loaded, generation, on_token) -> str:
    try:
        async for event in generation.run():
            if on_token is not None and not is_null(on_token):
                on_token(json.dumps({"token": event.token, "text": event.text,
                                     "top": [{"id": i, "prob": p, "text": _token_text(loaded, i)} for i, p in event.top]}))
    except Exception as exc:  # noqa: BLE001 - GPU errors, a lost device, a failing callback
        if await _lost_meanwhile():
            return _device_lost_json()
        return _error_json(exc, "engine")
    finally:
        _state["generation"] = None
    r = generation.result
    out = {"prompt_ids": r.prompt_ids, "tokens": r.tokens, "text": r.text, "finish_reason": r.finish_reason,
           "dropped_prompt_tokens": r.dropped_prompt_tokens, "notices": r.notices, "timings": r.timings}
    if r.logits:
        out["logits_f32_b64"] = base64.b64encode(b"".join(a.tobytes() for a in r.logits)).decode()
        out["vocab_size"] = loaded.config.vocab_size
    return json.dumps(out)


def _token_text(loaded, token: int) -> str:
    try:
        return loaded.tokenizer.token_bytes(token).decode("utf-8", "replace")
    except Exception:
        return ""


def _stop() -> None:
    generation = _state["generation"]
    if generation is not None:
        generation.stop()


def _unload() -> None:
    if _state["generation"] is not None:
        _state["generation"].stop()
    _state["model_ref"] = None
    if _state["loaded"] is not None:
        _state["loaded"].model.free()
        _state["loaded"] = None


# ------------------------------------------------------------------------------- device loss


def _base_url() -> str:
    return str(js.globalThis.location.href) if not is_null(getattr(js.globalThis, "location", None)) else ""


def _device_lost() -> bool:
    gpu = _state["gpu"]
    return gpu is not None and gpu.lost_reason is not None


async def _lost_meanwhile() -> bool:
    """After a failure: was it the device going away? (device.lost may settle a moment after the
    failed call it caused.)"""
    gpu = _state["gpu"]
    return gpu is not None and await gpu.confirm_lost()


def _device_lost_json() -> str:
    _state["loss_reported"] = True
    reason = _state["gpu"].lost_reason or "no reason given"
    return json.dumps({"error": {"name": "DeviceLostError", "message": DEVICE_LOST.format(reason=reason),
                                 "code": "device_lost"}})


class _Pending:
    """Stands in for the generation while the device is re-created and the model reloaded."""

    cancelled = False

    def stop(self) -> None:
        self.cancelled = True


async def _restart_gpu() -> None:
    """A new device in place of the lost one; the model that lived on the lost one is dropped."""
    old = _state["gpu"]
    _state["gpu"] = await GPU.create()
    _watch_loss(_state["gpu"])
    _state["loss_reported"] = False
    if _state["loaded"] is not None:
        _state["loaded"].model.free()  # buffers of the lost device: destroy() is allowed there
        _state["loaded"] = None
    if old is not None:
        old.destroy()


async def _recover_and_generate(prompt: str, opts: dict, params, on_token, pending: _Pending) -> str:
    """generate() after a device loss: restart the GPU, reload the current model, then generate."""
    job = LoadJob(None)
    _state["loading"] = job  # a load() meanwhile is refused as busy; cancelLoad() aborts the reload
    reason = _state["gpu"].lost_reason if _device_lost() else None
    t0 = time.perf_counter()
    try:
        if _device_lost():
            await _restart_gpu()
        if _state["loaded"] is None:
            ref = _state["model_ref"]
            if ref is None:
                raise RuntimeError("no model is loaded: call load() first")
            _state["loaded"] = await load_model(_state["gpu"], ref["ref"], base_url=_base_url(), files=ref["files"],
                                                job=job, **ref["kwargs"])
            _state["load_s"] = time.perf_counter() - t0
        loaded = _state["loaded"]
        if opts.get("prompt_ids") is not None:
            prompt_ids = [int(i) for i in opts["prompt_ids"]]
        else:
            prompt_ids = loaded.tokenizer.encode(prompt)
        generation = Generation(loaded, prompt_ids, params, keep_logits=bool(opts.get("return_logits")))
    except LoadError as exc:
        _state["generation"] = None
        if await _lost_meanwhile():
            return _device_lost_json()
        return json.dumps({"error": {"name": "LoadError", "code": exc.code, "message":
                                     f"The GPU was restarted, but the model could not be loaded again: {exc}"}})
    except Exception as exc:  # noqa: BLE001 - no new device, no model, a bad prompt: clean rejections
        _state["generation"] = None
        code = "no_model" if _state["loaded"] is None else None
        return _error_json(exc, "gpu" if type(exc).__name__ in ("GPUError", "WebGPUUnavailable") else code)
    finally:
        _state["loading"] = None
    record = {"reason": reason, "source": loaded.source, "from_cache": bool(loaded.stats.get("from_cache")),
              "seconds": round(time.perf_counter() - t0, 3)}
    if reason is not None:
        _state["recoveries"].append(record)
    if pending.cancelled:
        generation.stop()
    _state["generation"] = generation
    out = json.loads(await _run_generation(loaded, generation, on_token))
    if "error" not in out and reason is not None:
        where = "from the browser cache" if record["from_cache"] else "from its source"
        out["notices"] = [f"the GPU device was lost ({reason}): it was restarted and the model loaded again "
                          f"{where} in {record['seconds']:.1f} s"] + out["notices"]
        out["recovered"] = record
    return json.dumps(out)


def _model_info_json() -> str:
    return json.dumps(model_info())


async def _eval_python(code: str) -> str:
    """Test and console hook: run Python source in this interpreter; the value of the last
    expression comes back as JSON. It gives nothing that the page's own JS could not already do."""
    from pyodide.code import eval_code_async  # noqa: PLC0415

    value = await eval_code_async(code, globals={"gpu": _state["gpu"], "state": _state, "__name__": "__pywebgpt__"})
    return json.dumps(value)


def _expose(api, name: str, fn) -> None:
    proxy = create_proxy(fn)
    _state["proxies"].append(proxy)
    setattr(api, name, proxy)


def _watch_loss(gpu) -> None:
    """Tell the page (pywebgpt.onDeviceLost listeners) when this device is lost while nothing runs;
    a load or a generation that is running reports the loss itself, and the old device that a
    restart destroys on purpose is no longer the current one."""
    def on_lost(reason: str) -> None:
        api = _state.get("api")
        if api is None or _state["gpu"] is not gpu:
            return
        if _state["generation"] is not None or _state.get("loading") is not None:
            return
        api._deviceLost(DEVICE_LOST.format(reason=reason or "no reason given"))

    gpu.on_lost = on_lost


async def start(api) -> None:
    gpu = await GPU.create()
    _state["gpu"] = gpu
    _state["api"] = api
    _watch_loss(gpu)
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
