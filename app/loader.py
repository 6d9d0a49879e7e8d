"""Load a GPT-2-family model folder (Hugging Face layout) onto the GPU.

A folder is reached through a `Source`: files served over HTTP(S) (the site's own weights/, a
folder mounted by tools/generate.py, a base URL or the Hugging Face Hub), or files the user picked.
Order of work: config.json, tokenizer files, each safetensors header; everything is checked
against the config before a single GPU buffer is allocated; then the tensor bytes go to the GPU
straight from the fetched JS buffers (never copied through the wasm heap).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import js
from pyodide.ffi import to_js

from .config import GPT2Config, match_tensors
from .model import GPT2
from .safetensors import ModelFormatError, parse_header, parse_header_length
from .tokenizer import load_tokenizer_from_texts

HUB = "https://huggingface.co"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "char_vocab.json")


class LoadError(ValueError):
    """A model that could not be loaded, with a message naming the file and what to do."""


def resolve_reference(ref: str, base_url: str = "") -> str:
    """Turn a model reference into a base URL ending in '/'.

    'weights/shakespeare-char/' (relative to the page), 'https://host/path/', or a Hub id such
    as 'openai-community/gpt2' (-> https://huggingface.co/openai-community/gpt2/resolve/main/).
    """
    ref = ref.strip()
    if not ref:
        raise LoadError("no model given")
    if ref.startswith(("http://", "https://")):
        url = ref
    elif ref.startswith(("./", "/", "../")) or ref.startswith("weights/") or ref.endswith("/"):
        url = ref
    elif ref.count("/") == 1 and all(part and not part.startswith(".") for part in ref.split("/")):
        url = f"{HUB}/{ref}/resolve/main/"
    else:
        url = ref
    if base_url and not url.startswith(("http://", "https://")):
        url = str(js.URL.new(url, base_url).href)
    return url if url.endswith("/") else url + "/"


class UrlSource:
    """Files under a base URL, fetched with the page's fetch()."""

    def __init__(self, base: str):
        self.base = base

    def url(self, name: str) -> str:
        return self.base + name

    async def _fetch(self, name: str, headers: dict | None = None, optional: bool = False):
        url = self.url(name)
        try:
            init = to_js({"headers": headers}, dict_converter=js.Object.fromEntries) if headers else None
            response = await (js.fetch(url, init) if init is not None else js.fetch(url))
        except Exception as exc:
            raise LoadError(f"{name}: could not fetch {url} ({exc}). Check the address, your connection, "
                            f"and that the server allows cross-origin requests (CORS).") from exc
        if response.status == 404 and optional:
            return None
        if not response.ok:
            raise LoadError(f"{name}: HTTP {response.status} {response.statusText} for {url}")
        return response

    async def text(self, name: str, optional: bool = False) -> str | None:
        response = await self._fetch(name, optional=optional)
        return None if response is None else str(await response.text())

    async def bytes(self, name: str):
        """The whole file as a JS Uint8Array (stays in JS memory)."""
        response = await self._fetch(name)
        buffer = await response.arrayBuffer()
        return js.Uint8Array.new(buffer)


@dataclass
class Tensor:
    dtype: str
    shape: tuple
    data: object  # JS Uint8Array view of the fetched file


@dataclass
class LoadedModel:
    model: GPT2
    tokenizer: object
    config: GPT2Config
    source: str
    notices: list
    weight_bytes: int


async def load_model(gpu, ref: str, base_url: str = "", context: int | None = None) -> LoadedModel:
    base = resolve_reference(ref, base_url)
    source = UrlSource(base)
    try:
        cfg = GPT2Config.from_json(await source.text("config.json"), "config.json")
        texts = {}
        for name in TOKENIZER_FILES:
            text = await source.text(name, optional=True)
            if text is not None:
                texts[name] = text
        tokenizer = load_tokenizer_from_texts(texts)
        data = await source.bytes("model.safetensors")
        size = int(data.length)
        head = data.subarray(0, min(size, 256)).to_bytes()
        header_len = parse_header_length(head, size, "model.safetensors")
        header = parse_header(data.subarray(8, 8 + header_len).to_bytes(), size, "model.safetensors")
        mapping, notices = match_tensors(cfg, header.tensors, "model.safetensors")
    except (ModelFormatError, ValueError) as exc:
        if isinstance(exc, LoadError):
            raise
        raise LoadError(str(exc)) from exc
    tensors = {
        name: Tensor(info.dtype, tuple(info.shape), data.subarray(info.data_offset, info.data_offset + info.nbytes))
        for name, info in mapping.items()
    }
    vocab = getattr(tokenizer, "vocab_size", None)
    if vocab is not None and vocab > cfg.vocab_size:
        raise LoadError(f"the tokenizer has {vocab} tokens but config.json's vocab_size is {cfg.vocab_size}")
    model = GPT2(gpu, cfg, tensors, context=context)
    return LoadedModel(model, tokenizer, cfg, base, list(notices) + model.notices, size)
