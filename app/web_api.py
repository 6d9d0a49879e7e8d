"""The engine's JS API (`pywebgpt` in web/api.js), implemented in Python.

web/api.js creates the object and its `ready` promise before Python starts; `start()` brings up
the GPU and installs the `_py*` hooks that api.js calls. Nothing here touches the DOM, so the
page, a worker and the Node runner (tools/node_runner.mjs) share it.
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

_state: dict = {"gpu": None, "loaded": None, "generation": None, "proxies": [], "load_s": None, "loading": None}

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
    gpu = _state["gpu"]
    opts = json.loads(opts_json or "{}")
    if _state["generation"] is not None:
        raise GenerationBusy("a generation is running: stop it before loading another model")
    if _state.get("loading") is not None:
        return json.dumps({"error": {"message": "a model is already loading: wait for it or call cancelLoad()",
                                     "code": "busy"}})
    base = str(js.globalThis.location.href) if not is_null(getattr(js.globalThis, "location", None)) else ""
    job = LoadJob(on_progress)
    _state["loading"] = job
    t0 = time.perf_counter()
    try:
        loaded = await load_model(
            gpu, ref, base_url=base, context=opts.get("context"), files=files, job=job,
            cache=opts.get("cache", True), hub=opts.get("hub"),
            max_gpu_bytes=opts.get("maxGpuBytes", opts.get("max_gpu_bytes")))
    except LoadError as exc:
        return json.dumps({"error": {"message": str(exc), "code": exc.code}})
    finally:
        _state["loading"] = None
    # Only now, with the new model fully on the GPU, let go of the previous one: a failed load
    # leaves the previous model usable.
    if _state["loaded"] is not None:
        _state["loaded"].model.free()
    _state["loaded"] = loaded
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
    try:
        loaded = _state["loaded"]
        if loaded is None:
            raise RuntimeError("no model is loaded: call load() first")
        if _state["generation"] is not None:
            raise GenerationBusy("a generation is already running on this model; wait for it or call stop()")
        opts = json.loads(opts_json or "{}")
        params = _params_from(opts)
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
    if _state["loaded"] is not None:
        _state["loaded"].model.free()
        _state["loaded"] = None


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


async def start(api) -> None:
    gpu = await GPU.create()
    _state["gpu"] = gpu
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
