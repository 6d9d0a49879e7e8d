"""Load a model folder (Hugging Face layout) or one GGUF file onto the GPU: `load_model(gpu, ref,
...)`, or `pywebgpt.load(...)` in the page. Where the files come from: app/sources.py.

A folder holds config.json, the weights (model.safetensors, or model.safetensors.index.json with its
shards) in F32, F16 or BF16, and a tokenizer: vocab.json + merges.txt, tokenizer.json or
char_vocab.json. A GGUF file holds all three (app/gguf_load.py): steps 1-3 below read its header
instead, and its matrices stay in their block formats. Options: `quantize` (Q8_0 / Q4_0 made on
the GPU from a folder's float matrices), `dtype` 'F32' (float matrices widened).

Order of work, so that a bad model fails early and nothing is allocated for it:
  1. config.json: parsed and checked (app/config.py); the model's buffer plan (app/buffer_plan.py)
     at its smallest (f16 matrices) against the device limits and the memory budget.
  2. the tokenizer files; their vocabulary must fit the config's vocab_size.
  3. each safetensors header (a Range request for the first 64 KiB, more only if the header is
     longer; a server without Range support is read up to the header and the request cancelled):
     names, dtypes and shapes against the config, offsets against the file size, then the buffer
     plan for the stored dtypes: every buffer against maxBufferSize / maxStorageBufferBindingSize,
     every pipeline's workgroup memory, the total against the budget.
  4. the GPU model (app/runner.py): every buffer of the same plan allocated, still empty.
  5. the files, each streamed by web/fetch.js chunk by chunk (a download, a cached copy, a picked
     file); each tensor (or a few small neighbours together) is handed over as soon as its bytes
     are in and goes to the GPU at once (`gpu.write_js`, never through the wasm heap, or through
     the runner's conversions), then is let go: JS holds a few tensors, never a whole file. A
     download is written to Cache Storage as it streams. Anything that fails frees what it
     allocated, and leaves no partial file in the cache.

Progress and cancel: app/load_job.py. Cache Storage: app/sources.py (reading and writing) and
app/model_cache.py (listing and deleting).

Every failure is a LoadError (app/errors.py) whose message names the file, key or limit at fault;
`.code` is one of 'input', 'http', 'network', 'format', 'too_large', 'memory', 'gpu', 'cancelled',
'busy'.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace

from .buffer_plan import BufferPlan
from .config import config_from_json, match_tensors
from .config_llama import LlamaConfig
from .errors import GPUError, LoadCancelled, LoadError, ModelError, ModelFormatError
from .generation_config import GenerationConfig
from .gguf_load import GGUF_PROBE, describe, read_rope_freqs, weight_formats
from .gguf_load import read_header as read_gguf_header
from .gpu import is_null
from .load_job import LoadJob
from .model import model_graph as build_graph
from .runner import GPUModel
from .safetensors import is_lfs_pointer, lfs_pointer_error, parse_header, parse_header_length
from .shapes import KernelShapes
from .sources import (
    CONFIG,
    INDEX,
    WEIGHTS,
    FileSource,
    UrlSource,
    _fetch_js,
    _html_error,
    _mb,
    looks_like_html,
    make_source,
)
from .tokenizer import load_tokenizer_from_texts
from .weights import QUANTIZE_FORMATS, matrix_dtype

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "char_vocab.json")
TOKENIZER_EXTRAS = ("tokenizer_config.json", "chat_template.jinja")  # beside a tokenizer.json
GENERATION_CONFIG = "generation_config.json"
GPT2_VOCAB_SIZE = 50257
HEAD_PROBE = 64 * 1024          # bytes asked for first: the whole header of any GPT-2 checkpoint
MAX_LAYERS = 1024               # a config beyond this is corrupt, not a model
DEFAULT_GPU_BUDGET_GIB = 8      # WebGPU does not report GPU memory; see gpu_budget()


# ------------------------------------------------------------------------------------ GPU memory


def gpu_budget(max_gpu_bytes=None) -> tuple:
    """(bytes this load may use on the GPU, why). WebGPU does not tell how much memory the GPU has:
    the default is navigator.deviceMemory (the RAM, which Chrome caps at 8 GiB), at least 4 GiB, or
    8 GiB where unknown; `max_gpu_bytes` overrides it."""
    if max_gpu_bytes:
        return int(max_gpu_bytes), "the maxGpuBytes option"
    try:
        gib = _fetch_js().deviceMemoryGiB()
    except LoadError:
        gib = None
    if gib is None or is_null(gib):
        return DEFAULT_GPU_BUDGET_GIB << 30, f"PyWebGPT's default of {DEFAULT_GPU_BUDGET_GIB} GiB"
    gib = max(4.0, float(gib))
    return int(gib * (1 << 30)), f"navigator.deviceMemory ({gib:g} GiB)"


def model_graph(cfg, shapes: KernelShapes, limits: dict, dtype: str, context=None, separate_head=False,
                where: str = CONFIG):
    """The model's graph (app/model.py) for this device; LoadError for a config it cannot run."""
    if cfg.n_layer > MAX_LAYERS:
        raise LoadError(f"{where}: 'n_layer' is {cfg.n_layer:,}; no model this engine runs has more than "
                        f"{MAX_LAYERS} layers (a corrupt config?)", "too_large")
    try:
        return build_graph(cfg, shapes, limits, matrix_dtype=dtype, separate_head=separate_head, context=context)
    except ModelFormatError as exc:
        raise LoadError(str(exc), "format") from None
    except ModelError as exc:
        raise LoadError(f"{where}: {exc}", "format") from None


def quantize_format(quantize) -> str | None:
    """'q8_0' / 'Q4_0' / None -> the block format name, or LoadError('input')."""
    if quantize in (None, "", False, "none"):
        return None
    name = str(quantize).upper()
    if name not in QUANTIZE_FORMATS:
        raise LoadError(f"quantize must be one of {', '.join(f.lower() for f in QUANTIZE_FORMATS)} (or none), got "
                        f"{str(quantize)[:40]!r}", "input")
    return name


def widen_option(dtype, quantize) -> bool:
    """The dtype load option: None (as stored) or 'F32' (widened); LoadError('input') otherwise."""
    if dtype in (None, ""):
        return False
    if str(dtype).upper() not in ("F32", "FLOAT32"):
        raise LoadError(f"dtype must be 'F32' (float matrices widened to f32) or left out, got {str(dtype)[:40]!r}",
                        "input")
    if quantize:
        raise LoadError("dtype 'F32' and quantize exclude each other: choose one", "input")
    return True


def check_quantizable(cfg, quantize: str) -> None:
    """Quantize-on-load needs the Llama family (GPT-2's Conv1D matrices are transposed on load,
    shaders/transpose.wgsl, which writes floats) and rows of whole 32-weight blocks."""
    if not isinstance(cfg, LlamaConfig):
        raise LoadError(f"quantize {quantize.lower()!r} works for Llama-family models (llama, mistral, qwen2, "
                        f"qwen3); this is {cfg.model_type}", "input")
    for key, value in (("hidden_size", cfg.hidden_size), ("intermediate_size", cfg.intermediate_size),
                       ("num_attention_heads * head_dim", cfg.q_size)):
        if value % 32:
            raise LoadError(f"{CONFIG}: {key} is {value}, not a multiple of 32: {quantize} blocks of 32 weights do "
                            f"not fit its rows", "input")


def check_device(graph, budget: tuple, where: str, tensors: dict | None = None) -> BufferPlan:
    """The graph's buffer plan (with the load's staging buffer, given the file's `tensors`); LoadError
    (code 'too_large') naming the limit when it does not fit."""
    plan = BufferPlan.of(graph, tensors)
    plan.check_limits(graph.limits, where)
    limit, why = budget
    if plan.peak > limit:
        kinds = plan.by_kind()
        staging = f", and {_mb(plan.load_staging)} of staging while it loads" if plan.load_staging else ""
        raise LoadError(
            f"{where}: the model needs about {_mb(plan.peak)} of GPU memory (weights {_mb(kinds['weights'])} in "
            f"{graph.dtype}, KV cache {_mb(kinds['kv_cache'])} for {graph.n_ctx} tokens, activations "
            f"{_mb(kinds['activations'])}{staging}), over the {_mb(limit)} allowed by {why}. Use a smaller model or "
            f"F16 weights (tools/convert.py --dtype float16), a shorter context ({{context: N}}), or raise the "
            f"limit with {{maxGpuBytes: N}}", "too_large")
    return plan


# ------------------------------------------------------------------------------------ the model


@dataclass
class Tensor:
    dtype: str
    shape: tuple
    data: object = None  # JS Uint8Array of its bytes (None: what is known before they come)


@dataclass(frozen=True)
class Placed:
    """Where one of the graph's tensors lies in a file: bytes [start, start + nbytes) of `file`;
    `tensor` says what it is (no bytes yet: its data is filled in when they arrive)."""

    file: str
    start: int
    nbytes: int
    tensor: object  # Tensor or GGUFTensor


GROUP_BYTES = 256 << 10  # small neighbouring tensors are handed over together, up to this many bytes
GROUP_GAP = 4096         # ... when at most this many bytes (alignment padding) lie between them


def tensor_groups(placed: dict) -> list:
    """[(start, end, [tensor names])] of one file's tensors in file order: each tensor alone,
    except that small neighbours share a group of at most GROUP_BYTES (fewer calls between JS and
    Python) and overlapping tensors always share one."""
    groups: list = []
    for name, where in sorted(placed.items(), key=lambda item: (item[1].start, item[0])):
        start, end = where.start, where.start + where.nbytes
        if groups:
            g_start, g_end, names = groups[-1]
            overlaps = start < g_end
            fits = start <= g_end + GROUP_GAP and max(end, g_end) - g_start <= GROUP_BYTES
            if overlaps or fits:
                groups[-1] = (g_start, max(end, g_end), names + [name])
                continue
        groups.append((start, end, [name]))
    return groups


@dataclass
class LoadedModel:
    model: GPUModel
    tokenizer: object
    config: object  # GPT2Config or LlamaConfig
    source: str
    notices: list
    weight_bytes: int
    stats: dict = field(default_factory=dict)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def _format_error(exc: Exception) -> LoadError:
    if isinstance(exc, LoadError):
        return exc
    return LoadError(str(exc), "format")


async def _read_tokenizer(source, cfg, job: LoadJob):
    job.emit("tokenizer")
    texts: dict = {}
    if isinstance(source, FileSource):
        for name in TOKENIZER_FILES + TOKENIZER_EXTRAS:
            text = await source.text(name, optional=True)
            if text is not None:
                texts[name] = text
    else:
        # Ask for the likely files first, so a usual folder costs no 404: a character vocabulary is
        # small, GPT-2's BPE has 50257 tokens, modern models ship tokenizer.json.
        if isinstance(cfg, LlamaConfig):
            order = ["tokenizer.json", "bpe", "char_vocab.json"]
        elif cfg.vocab_size < GPT2_VOCAB_SIZE:
            order = ["char_vocab.json", "bpe", "tokenizer.json"]
        else:
            order = ["bpe", "tokenizer.json", "char_vocab.json"]
        for what in order:
            if what == "bpe":
                vocab = await source.text("vocab.json", optional=True)
                if vocab is not None:
                    texts["vocab.json"] = vocab
                    merges = await source.text("merges.txt", optional=True)
                    if merges is not None:
                        texts["merges.txt"] = merges
                    break
            else:
                text = await source.text(what, optional=True)
                if text is not None:
                    texts[what] = text
                    break
            job.check()
        if "tokenizer.json" in texts:  # its special tokens and chat template
            for name in TOKENIZER_EXTRAS:
                text = await source.text(name, optional=True)
                if text is not None:
                    texts[name] = text
    if not texts:
        raise LoadError(f"no tokenizer in {source.label}: expected vocab.json + merges.txt, tokenizer.json or "
                        f"char_vocab.json", "format")
    for name, text in texts.items():
        if is_lfs_pointer(text[:64].encode("utf-8", "replace")):
            raise LoadError(str(lfs_pointer_error(text.encode("utf-8", "replace"), name)), "format")
    try:
        tokenizer = load_tokenizer_from_texts(texts)
    except (ValueError, KeyError, TypeError) as exc:
        message = str(exc)
        if not any(name in message for name in texts):
            message = f"{', '.join(texts)}: {message}"
        raise LoadError(message, "format") from exc
    vocab = getattr(tokenizer, "vocab_size", None)
    if vocab is not None and vocab > cfg.vocab_size:
        raise LoadError(f"{', '.join(texts)}: the tokenizer has {vocab:,} tokens but {CONFIG}'s vocab_size is "
                        f"{cfg.vocab_size:,}: the tokenizer belongs to another model", "format")
    return tokenizer


async def _read_header(source, name: str, probe):
    """Parse one safetensors header from its probe (fetching the rest of a long header)."""
    head, size = probe.head, probe.size
    if looks_like_html(head):
        raise _html_error(name, getattr(source, "url", lambda n: n)(name))
    if size == 0 or (size is None and not head):
        raise LoadError(f"{name}: the file is empty", "format")
    try:
        header_len = parse_header_length(head, size, name)
    except ModelFormatError as exc:
        raise _format_error(exc) from None
    if 8 + header_len > len(head):
        head = head + await source.read_range(name, len(head), 8 + header_len - 1)
        if len(head) < 8 + header_len:
            raise LoadError(f"{name}: header length {header_len:,} bytes is larger than the file "
                            f"({len(head):,} bytes): the file is truncated or not a safetensors file", "format")
    probe.head = head  # the whole header, for a second look once the size is known (recheck)
    try:
        return parse_header(head[8:8 + header_len], size, name)
    except ModelFormatError as exc:
        raise _format_error(exc) from None


async def _read_layout(source, job: LoadJob) -> tuple:
    """-> (list of (file name, probe, header), tensors by stored name)."""
    job.emit("headers", WEIGHTS)
    probe = await source.probe(WEIGHTS, HEAD_PROBE, optional=True)
    files = []
    if probe is not None:
        files.append((WEIGHTS, probe))
    else:
        index_text = await source.text(INDEX, optional=True)
        if index_text is None:
            raise LoadError(
                f"no weights in {source.label}: neither {WEIGHTS} nor {INDEX} is there (PyTorch "
                f"pytorch_model.bin or ckpt.pt files must be converted: python tools/convert.py SRC OUT_DIR)",
                "format")
        shards = _parse_index(index_text)
        for shard in shards:
            job.check()
            job.emit("headers", shard)
            p = await source.probe(shard, HEAD_PROBE, optional=True)
            if p is None:
                raise LoadError(f"{shard}: not found in {source.label}, but {INDEX} lists it", "format")
            files.append((shard, p))
        weight_map = json.loads(index_text)["weight_map"]
    headers, tensors, where = [], {}, {}
    for name, p in files:
        job.check()
        header = await _read_header(source, name, p)
        headers.append((name, p, header))
        for key, info in header.tensors.items():
            if key in tensors:
                raise LoadError(f"{name}: tensor {key!r} is also in {where[key]}", "format")
            tensors[key] = info
            where[key] = name
    if probe is None:
        for key, shard in weight_map.items():
            if where.get(key) != shard:
                found = f"it is in {where[key]}" if key in where else "no shard has it"
                raise LoadError(f"{INDEX}: 'weight_map' puts tensor {key!r} in {shard}, but {found}", "format")
    return headers, tensors


@dataclass
class Layout:
    """What steps 1-3 found, whatever the files: the model, its graph for this device, the files to
    download and how their bytes become tensors."""

    cfg: object
    tokenizer: object
    generation: GenerationConfig
    graph: object
    notices: list
    files: list                 # (file name, probe), in download order
    placed: dict                # graph tensor name -> Placed
    recheck: object             # (file name, size) -> None: offsets against a size known only now
    ends: dict                  # file name -> one past its last tensor byte (every tensor, used or not):
                                # its size where the server did not say


async def _read_folder(source, job: LoadJob, shapes, limits: dict, budget: tuple, context,
                       quantize: str | None = None, widen: bool = False) -> Layout:
    """A Hugging Face folder: config.json, the tokenizer files, safetensors headers. `quantize`: the
    block format the matrices get on the GPU (app/weights.py QUANTIZE_FORMATS), or None."""
    # 1. config.json
    job.emit("config", CONFIG)
    text = await source.text(CONFIG)
    if text is None:
        raise LoadError(f"{CONFIG}: not found in {source.label}", "input")
    try:
        cfg = config_from_json(text, CONFIG)
    except ModelFormatError as exc:
        raise _format_error(exc) from None
    if quantize:
        check_quantizable(cfg, quantize)
    smallest = quantize or "F16"
    check_device(model_graph(cfg, shapes, limits, smallest, context), budget, CONFIG)  # the smallest it could be
    job.check()

    # 2. tokenizer
    tokenizer = await _read_tokenizer(source, cfg, job)
    job.check()
    generation = GenerationConfig()
    # Modern models' stop tokens and sampling defaults (GPT-2's say nothing config.json does not).
    text = await source.text(GENERATION_CONFIG, optional=True) if isinstance(cfg, LlamaConfig) else None
    if text is not None:
        try:
            generation = GenerationConfig.from_json(text, cfg.vocab_size)
        except ModelFormatError as exc:
            raise _format_error(exc) from None
    job.check()

    # 3. headers, checked against the config and the device
    headers, stored = await _read_layout(source, job)
    try:
        mapping, notices = match_tensors(cfg, stored, WEIGHTS if len(headers) == 1 else INDEX)
    except ModelFormatError as exc:
        raise _format_error(exc) from None
    notices = list(notices)
    try:
        weight_dtype, mixed = matrix_dtype(info.dtype for info in mapping.values() if len(info.shape) == 2)
    except ModelError as exc:
        raise LoadError(f"{headers[0][0]}: {exc}", "format") from None
    if mixed:
        notices.append(mixed)
    if weight_dtype == "BF16" or "BF16" in {info.dtype for info in mapping.values()}:
        notices.append("BF16 weights: the matrices stay BF16 on the GPU and are widened to f32 inside the "
                       "kernels (exact); biases and LayerNorm parameters are converted to F32 (exact)")
    if widen and weight_dtype != "F32":
        notices.append(f"{weight_dtype} matrices widened to F32 while loading (the dtype option)")
        weight_dtype = "F32"
    if quantize:
        notices.append(f"{weight_dtype} matrices quantized to {quantize} on the GPU while loading (as llama.cpp "
                       f"quantizes); norms and biases stay F32")
        weight_dtype = quantize
    graph = model_graph(cfg, shapes, limits, weight_dtype, context, "lm_head.weight" in mapping, headers[0][0])

    def recheck(name, size):
        probe, header = next((p, h) for n, p, h in headers if n == name)
        try:
            parse_header(probe.head[8:8 + header.header_len], size, name)
        except ModelFormatError as exc:
            raise _format_error(exc) from None

    placed = {name: Placed(t.filename, t.data_offset, t.nbytes, Tensor(t.dtype, tuple(t.shape)))
              for name, t in ((name, stored[info.name]) for name, info in mapping.items())}
    ends = {n: max((t.data_offset + t.nbytes for t in h.tensors.values()), default=8 + h.header_len)
            for n, _, h in headers}
    return Layout(cfg, tokenizer, generation, graph, notices, [(n, p) for n, p, _ in headers], placed, recheck,
                  ends)


async def _read_gguf(source, job: LoadJob, shapes, limits: dict, budget: tuple, context) -> Layout:
    """One GGUF file (app/gguf_load.py): its header holds the config and the tokenizer."""
    name = source.gguf_name
    job.emit("headers", name)
    probe = await source.probe(name, GGUF_PROBE)
    if looks_like_html(probe.head):
        raise _html_error(name, getattr(source, "url", lambda n: n)(name))
    header = await read_gguf_header(source, name, probe)
    job.check()
    job.emit("tokenizer")
    model = describe(header, name, await read_rope_freqs(source, name, header))
    job.check()
    cfg, stored = model.config, model.stored_formats()
    # the graph once to learn which tensors each GPU buffer holds, then with their formats
    plain = model_graph(cfg, shapes, limits, "F16", context, "lm_head.weight" in stored, name)
    dtype, formats = weight_formats(plain.weights, stored)
    try:
        graph = build_graph(cfg, shapes, limits, matrix_dtype=dtype, separate_head="lm_head.weight" in stored,
                            context=context, formats=formats)
    except ModelError as exc:
        raise LoadError(f"{name}: {exc}", "format") from None

    def recheck(_name, size):
        end = max((info.data_offset + info.nbytes for info, _ in model.mapping.values()), default=0)
        if end > size:
            raise LoadError(f"{name}: the file is {size:,} bytes, but its tensors go on to byte {end:,} "
                            f"(a truncated download?)", "format")

    placed = {hf: Placed(name, start, nbytes, tensor) for hf, (start, nbytes, tensor) in model.placed().items()}
    end = max((info.data_offset + info.nbytes for info in header.tensors.values()), default=probe.size or 0)
    return Layout(cfg, model.tokenizer, model.generation, graph, list(model.notices), [(name, probe)], placed,
                  recheck, {name: end})


def _parse_index(text: str) -> list:
    try:
        index = json.loads(text)
    except ValueError as exc:
        raise LoadError(f"{INDEX}: not valid JSON ({str(exc).splitlines()[0][:120]})", "format") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise LoadError(f"{INDEX}: needs a non-empty 'weight_map' object (tensor name -> shard file)", "format")
    shards = []
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not re.fullmatch(r"[\w][\w.-]*\.safetensors", shard):
            raise LoadError(f"{INDEX}: 'weight_map' entry {key!r} names {shard!r:.80}, not a .safetensors file "
                            f"in the same folder", "format")
        if shard not in shards:
            shards.append(shard)
    return shards


async def load_model(gpu, ref: str = "", base_url: str = "", context: int | None = None, *, files=None,
                     job: LoadJob | None = None, on_progress=None, cache=True, hub: str | None = None,
                     max_gpu_bytes: int | None = None, shapes: KernelShapes | None = None,
                     quantize: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Check, download and put a model on the GPU; see the module docstring. Raises LoadError.
    `shapes`: the kernel shapes (default: the adapter's, app/shapes.py); `quantize` ('q8_0' or
    'q4_0'): a Llama-family model's float matrices become those blocks on the GPU while loading;
    `dtype` 'F32': float matrices are widened to f32 (more memory, f32 storage)."""
    quantize = quantize_format(quantize)
    widen = widen_option(dtype, quantize)
    job = job or LoadJob(on_progress)
    shapes = shapes or KernelShapes.for_adapter(gpu.is_cpu, cpu_threads=gpu.cpu_threads)
    F = _fetch_js()
    F.resetStats()
    stats = job.stats
    wasm = _wasm_heap_bytes()
    stats["wasm_heap_before"] = wasm
    source = make_source(ref, files, base_url, job, cache, hub)
    await source.start()
    budget = gpu_budget(max_gpu_bytes)
    limits = dict(gpu.limits)
    try:
        if source.gguf_name:
            layout = await _read_gguf(source, job, shapes, limits, budget, context)
            if quantize or widen:
                option = f"quantize {quantize.lower()!r}" if quantize else "dtype 'F32'"
                layout.notices.append(f"{option} ignored: a GGUF file's weights are used as it stores them")
        else:
            layout = await _read_folder(source, job, shapes, limits, budget, context, quantize, widen)
        cfg, tokenizer, generation, graph, notices = (layout.cfg, layout.tokenizer, layout.generation, layout.graph,
                                                      layout.notices)
        tensors = {n: p.tensor for n, p in layout.placed.items()}
        stats["gpu_bytes_estimate"] = check_device(graph, budget, layout.files[0][0], tensors).total
        job.check()

        # 4. the GPU buffers; 5. the bytes, streamed into them file by file
        model = _build_model(gpu, graph, tensors)
        try:
            total_bytes = await _stream_files(source, layout, model, job, F)
            job.emit("upload", None, total_bytes, total_bytes)
            _finish_model(model)
            if job.cancelled:
                raise LoadCancelled()
            job.emit("compile", None, total_bytes, total_bytes)
            try:
                stats["compile_s"] = round(await model.warm_up(), 3)
            except Exception as exc:
                raise LoadError(f"the GPU could not run the model: {exc}", "gpu") from exc
            if job.cancelled:
                raise LoadCancelled()
            await source.finish()
        except BaseException:
            model.free()
            raise
    finally:
        F.released(int(F.stats().allocated))  # whatever a failed stream still counted as held
    stats.update({
        "file_bytes": total_bytes,
        "from_cache": bool(source.from_cache) and all(name in source.from_cache for name, _ in layout.files),
        "peak_js_bytes": int(F.stats().peak),
        "wasm_heap_after": _wasm_heap_bytes(),
        "seconds": round(time.perf_counter() - job.t0, 3),
        "gpu_bytes": model.gpu_bytes(),
    })
    if stats["from_cache"]:
        notices.append("loaded from the browser cache without a download; pywebgpt.clearCache() or "
                       "{cache: 'refresh'} fetches it again")
    notices = notices + source.notices + list(model.notices)
    job.emit("done", None, total_bytes, total_bytes, stats["from_cache"])
    label = source.base if isinstance(source, UrlSource) else source.label
    if source.gguf_name and isinstance(source, UrlSource):
        label += source.gguf_name
    return LoadedModel(model, tokenizer, cfg, label, notices, total_bytes, stats, generation)


def _gpu_failure(exc: BaseException) -> LoadError:
    if isinstance(exc, LoadError):
        return exc
    message = str(exc) or type(exc).__name__
    code = "gpu" if isinstance(exc, GPUError) else "format"
    return LoadError(f"the GPU could not take the model: {message}", code)


def _build_model(gpu, graph, tensors) -> GPUModel:
    """The graph's buffers on the GPU, waiting for the streamed weights (GPUModel frees what it made
    when it fails half-way)."""
    try:
        return GPUModel(gpu, graph, tensors, stream=True)
    except Exception as exc:
        raise _gpu_failure(exc) from exc


def _finish_model(model: GPUModel) -> None:
    try:
        model.finish_upload()
    except Exception as exc:
        raise _gpu_failure(exc) from exc


class _Handover:
    """The Python end of one streamed file: web/fetch.js calls it with each group of tensors
    (tensor_groups) as its bytes complete; the tensors go to the GPU model at once. A group whose
    bytes the model keeps (a weight waiting for its other parts) is counted as held in fetch.js's
    stats until the model lets it go. A failure is kept here (fetch.js only hears 'stop')."""

    def __init__(self, layout: Layout, model: GPUModel, F):
        self.layout, self.model, self.F = layout, model, F
        self.kept: list = []      # (bytes, tensor names) of groups the model still keeps
        self.failure = None
        self.groups: list = []

    def file(self, name: str) -> list:
        """Start file `name`: -> its groups as fetch.js takes them, [start0, end0, start1, ...]."""
        self.groups = tensor_groups({n: p for n, p in self.layout.placed.items() if p.file == name})
        return [x for start, end, _ in self.groups for x in (start, end)]

    def __call__(self, index, data) -> int:
        try:
            start, _, names = self.groups[int(index)]
            arrived = {}
            for n in names:
                where = self.layout.placed[n]
                first = where.start - start
                arrived[n] = replace(where.tensor, data=data.subarray(first, first + where.nbytes))
            still = self.model.take(arrived)
            for entry in [k for k in self.kept if not still & set(k[1])]:
                self.kept.remove(entry)
                self.F.released(entry[0])
            if still & set(names):
                self.kept.append((int(data.length), names))
                return 1
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by the loader once fetch.js has stopped
            self.failure = exc
            return -1

    def check(self) -> None:
        if self.failure is not None:
            raise _gpu_failure(self.failure) from self.failure


async def _stream_files(source, layout: Layout, model: GPUModel, job: LoadJob, F) -> int:
    """Every weights file streamed into the model's buffers; -> the bytes read."""
    job.file_count = len(layout.files)
    job.overall_total = sum(p.size or 0 for _, p in layout.files)
    job.overall_t0 = time.perf_counter()
    handover = _Handover(layout, model, F)
    total_bytes = 0
    for i, (name, probe) in enumerate(layout.files):
        job.file_index = i
        job.check()
        size = await source.stream(name, probe.size, handover.file(name), handover, layout.ends[name],
                                   layout.recheck)
        total_bytes += size
        job.overall_done += size
        source.seen[name] = size
    job.check()
    return total_bytes


def _wasm_heap_bytes() -> int | None:
    try:
        import pyodide_js  # noqa: PLC0415

        return int(pyodide_js._module.HEAPU8.length)
    except Exception:  # noqa: BLE001 - not essential
        return None


