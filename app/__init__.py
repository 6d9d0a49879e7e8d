"""PyWebGPT: language models on WebGPU, driven by Python (shipped into Pyodide as `pywebgpt`).

    from pywebgpt import load_model
    model = await load_model("weights/shakespeare-char/")
    async for piece in model.generate("ROMEO:", max_new_tokens=100):
        ...

See app/api.py (the Python API) and README.md. This file imports nothing that needs Pyodide, so
the CPython tools and tests can import the standard-library modules of the package (tokenizer,
sampling, config, safetensors, contract, model, ...); the API itself is imported on first use.
"""

__all__ = ["load_model", "Model", "TextStream", "GenerationBusy", "LoadError"]


async def load_model(ref: str = "", **options):
    """`model = await load_model(ref, on_progress=None, ...)`: see app/api.py's load_model."""
    from .api import load_model as _load_model  # noqa: PLC0415 - needs Pyodide (js, WebGPU)

    return await _load_model(ref, **options)


def __getattr__(name: str):
    if name in ("Model", "TextStream", "get_gpu", "Engine", "default_engine"):
        from . import api  # noqa: PLC0415 - needs Pyodide (js, WebGPU)

        return getattr(api, name)
    if name in ("GenerationBusy", "LoadError"):
        from . import errors  # noqa: PLC0415 - kept lazy like the rest of the API

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
