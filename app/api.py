"""The Python API, for your own PyScript page (or any Pyodide with WebGPU):

    from pywebgpt import load_model

    model = await load_model("weights/shakespeare-char/")       # folder, URL or Hub id
    async for piece in model.generate("ROMEO:", max_new_tokens=100, temperature=0.8, top_k=40):
        output.textContent += piece                               # text as it comes
    result = await model.complete("JULIET:", max_new_tokens=50, temperature=0)   # all at once
    result.text, result.tokens, result.finish_reason, result.timings
    model.stop()        # ends the running generation within one decode step
    model.unload()      # frees the GPU memory

The engine itself (app/engine.py): the same objects the page's JS API drives, the same options,
finish reasons ("length", "eos", "stop", "cancelled") and context policy. One generation at a time
per model: starting a second while one runs raises GenerationBusy. Every model shares the page's
GPU device. Leaving an `async for` early (`break`) ends that generation: the stream is closed when
it is no longer referenced, or at once with `stream.stop()` / `model.stop()`.
"""

from __future__ import annotations

from .engine import Engine, Model, TextStream, default_engine
from .errors import GenerationBusy, LoadError
from .generate import GenerationResult
from .gpu import GPU

__all__ = ["load_model", "Model", "TextStream", "GenerationBusy", "GenerationResult", "LoadError", "get_gpu",
           "Engine", "default_engine"]


async def get_gpu() -> GPU:
    """The page's GPU device (the JS API's, when it runs)."""
    return await default_engine().get_gpu()


async def load_model(ref: str = "", *, on_progress=None, context: int | None = None, cache=True,
                     hub: str | None = None, max_gpu_bytes: int | None = None, files=None) -> Model:
    """Check, download and put a model on the GPU; returns a Model.

    ref: a folder of the site ('weights/shakespeare-char/', relative to the page), a URL of a
    folder (the server must allow CORS), or a Hugging Face Hub id ('openai-community/gpt2').
    on_progress(dict): {phase, file, loaded, total, bytes_per_s, eta_s, overall_loaded,
    overall_total, ...}, phase one of config, tokenizer, headers, download, cache, upload, done.
    context: a shorter context than the model's n_positions (less GPU memory). cache: True,
    False or 'refresh' (Cache Storage). hub: another Hub base URL. files: picked files
    ([{path, file}] of JS File objects) instead of ref. Raises LoadError (.code says the kind).
    """
    return await default_engine().load_model(ref, on_progress=on_progress, context=context, cache=cache, hub=hub,
                                             max_gpu_bytes=max_gpu_bytes, files=files)
