"""A model graph (app/model.py) resident on the GPU: its buffers, weights, pipelines and KV cache,
and the prefill / decode steps that run it.

Buffers come from the graph's BufferPlan, pipelines from its Dispatch values (built once, bound by
name), and each run replays a prepared dispatch list in one JS call (web/replay.js). A decode step
writes one small Step buffer, replays the list and reads back the top candidates (a few hundred
bytes); the whole vocabulary's logits only when asked to (kept on the GPU, read by step_logits).
"""

from __future__ import annotations

import math
import time
from array import array
from dataclasses import dataclass

from .buffer_plan import LOAD_CHUNK_BYTES, BufferPlan, source_rows
from .contract import (
    CHAIN_DEPTH_MAX,
    CHAIN_ID,
    KMAX,
    buffer_size,
    pack_step,
    seen_mask,
    topk_output_bytes,
    unpack_topk,
)
from .errors import ModelError
from .gpu import COPY_DST, COPY_SRC, GPU, MAP_READ, STORAGE
from .kernels import kernel
from .weights import (
    BLOCK_FORMATS,
    GROUPED_FORMATS,
    QUANTIZE_FORMATS,
    QUANTIZE_SOURCES,
    REGROUP_SOURCE,
    TRANSPOSE_SOURCES,
    as_memoryview,
    dtype_bytes,
    load_unit,
    matrix_bytes,
    quantize_workgroups,
    row_bytes,
    staging_chunk,
    transpose_workgroups,
    widen_to_f32,
)

BUFFER_USAGE = {"storage": STORAGE | COPY_DST, "storage_readable": STORAGE | COPY_DST | COPY_SRC,
                "readback": MAP_READ | COPY_DST}


@dataclass(frozen=True)
class GpuChoice:
    """How a step chooses, on the GPU, the token a chained step after it is fed (topk.wgsl
    choose_token): top-k and top-p over its candidates at the step's temperature (<= 0: the best
    candidate), or in id order over the vocabulary when neither filters; `draw`, the uniform number
    in [0, 1) the CPython sampler will draw for the same choice; the repetition `penalty` on the
    tokens of the model's seen mask (GPUModel.write_seen), which also orders the candidates."""

    top_k: int = 0
    top_p: float = 1.0
    draw: float = 0.0
    penalty: float = 1.0


GREEDY = GpuChoice()


@dataclass
class StepResult:
    """What one prefill or decode step returns: the top-k candidates, best first."""

    ids: list            # candidate token ids
    logits: list         # their logits
    max_logit: float     # M: log-sum-exp over the whole vocabulary is M / T + log(S)
    sum_exp: float       # S = sum(exp((l - M) / T))
    temperature: float   # T used for max_logit / sum_exp (1 when sampling greedily)
    choice: int = -1     # the token the GPU chose (GpuChoice): what a chained step after it was fed
    # drawn in id order or from a nucleus beyond the candidates: the weights before the chosen token
    # and its own, then before the nucleus's last token and its own, in S's units (else zeros)
    choice_weights: tuple = (0.0, 0.0, 0.0, 0.0)
    full_logits: array | None = None  # all logits (array('f')), once read (GPUModel.step_logits)
    kept: tuple | None = None  # (slot, step number) of its logits kept on the GPU, when asked for

    def log_normalizer(self) -> float:
        return self.max_logit / self.temperature + math.log(self.sum_exp)


class GPUModel:
    """A model graph on the GPU, with its KV cache. `tensors` maps the graph's tensor names to
    objects with .dtype, .shape and .data (bytes-like, or a JS Uint8Array that goes to the GPU
    without a copy through wasm). On failure every buffer made so far is freed.

    stream=True: every buffer is made now, `tensors` only says what will come (.dtype, .shape,
    .row_order; no bytes); `take` uploads the tensors as they arrive and `finish_upload` ends the
    load (app/loader.py streams a file this way)."""

    def __init__(self, gpu: GPU, graph, tensors: dict, stream: bool = False):
        self.gpu, self.graph = gpu, graph
        self.cfg = graph.cfg
        self.n_ctx, self.chunk = graph.n_ctx, graph.chunk
        self.weight_dtype = graph.dtype
        self.notices = list(graph.notices)
        self.plan = BufferPlan.of(graph, tensors)
        self.pos = 0  # tokens currently in the KV cache
        self.cached_ids: list = []  # their ids, where known (app/generate.py keeps it): chats reuse them
        self.last_readback_bytes = 0
        self._submitted = 0  # steps submitted so far: which one each kept-logits slot holds
        self._slot_step: list = [None] * (CHAIN_DEPTH_MAX + 1)
        self.allocated: dict = {}  # label -> GPU buffer, in plan order
        self._inflight: list = []  # submitted steps not read back yet (submit_decode)
        self._next_staging = 0
        self._load_pipelines: dict = {}  # quantize- and transpose-on-load pipelines, by kernel
        self._load_buffers = None  # (staging, chunk range): the load's own buffers, while it needs them
        self.load_dispatches = 0  # quantize / transpose dispatches run by the load (one per chunk)
        self._stream = None  # the weights still to come, while a load streams them (StreamedUpload)
        try:
            for spec in self.plan.buffers:
                self.allocated[spec.label] = gpu.buffer(spec.nbytes, BUFFER_USAGE[spec.usage], spec.label)
            if stream:
                self._stream = StreamedUpload(self, tensors)
                return
            tensors = {**tensors, **graph.computed_tensors()}
            for w in graph.weights:
                self._upload(w, tensors)
            self._ready()
        except BaseException:
            self.free()
            raise

    def _ready(self) -> None:
        """Every weight is written: free the load's buffers, build the pipelines."""
        for buf in self._load_buffers or ():  # freed once the queued load dispatches are done
            self.gpu.free(buf)
        self._load_buffers = None
        self._load_pipelines.clear()
        self.gpu.check()
        self._build()

    # ------------------------------------------------------------------------ streamed weights
    def take(self, tensors: dict) -> set:
        """Upload what the arriving `tensors` (name -> tensor with its bytes) complete, on a model made
        with stream=True; returns the names of every tensor whose bytes it still keeps (a weight
        whose parts cannot be written apart waits for all of them). Failures leave the model to be
        freed by the caller."""
        return self._stream.add(tensors)

    def finish_upload(self) -> None:
        """After the last tensor: check that every weight was written, then build the pipelines."""
        missing = self._stream.missing()
        if missing:
            raise ModelError(f"{missing}: its tensors never arrived (the file ended early?)")
        self._stream = None
        self._ready()

    # ------------------------------------------------------------------------ weights
    def _parts(self, w, tensors: dict) -> list:
        """(offset in the buffer, tensor, first byte, bytes, bytes per row, row order) of each source
        of weight `w`, in the buffer's order (offsets as the file's layout counts them: a grouped
        format's part starts at block offset // block bytes). A transposed weight's one part is its
        whole [cols, rows] source, by source rows."""
        parts, offset = [], 0
        for name in w.sources:
            t = tensors[name]
            if w.transposed:
                self._check_transposed(w, t)
                src_row = row_bytes(w.rows, t.dtype)
                parts.append((0, t, 0, w.cols * src_row, src_row, None))
                continue
            cols = t.shape[-1] if t.shape else 1
            rows = source_rows(w, t)
            src_row = row_bytes(cols, t.dtype)
            parts.append((offset, t, w.row0 * src_row, rows * src_row, src_row, getattr(t, "row_order", None)))
            offset += matrix_bytes(rows, cols, w.dtype)
        return parts

    @staticmethod
    def _gpu_bytes(part, dtype: str):
        """A part's rows as the GPU keeps them: in Hugging Face's row order, widened to `dtype`."""
        _, t, start, n, src_row, order = part
        if isinstance(t.data, (bytes, bytearray, memoryview)):
            raw = as_memoryview(t.data)
        elif order is None:  # only the slice crosses into wasm
            raw, start = as_memoryview(t.data.subarray(start, start + n).to_bytes()), 0
        else:
            raw = as_memoryview(t.data.to_bytes())
        if order is not None:
            first = start // src_row
            raw = b"".join(raw[r * src_row:(r + 1) * src_row] for r in order[first:first + n // src_row])
        else:
            raw = raw[start:start + n]
        return raw if t.dtype == dtype else widen_to_f32(raw, t.dtype)

    @staticmethod
    def _direct(part, dtype: str) -> bool:
        """Can the part go from the file's JS bytes to the GPU as they are (writeBuffer takes whole
        4-byte words from a 4-byte offset)?"""
        at, t, _, n, _, order = part
        return (t.dtype == dtype and order is None and at % 4 == 0 and n % 4 == 0
                and not isinstance(t.data, (bytes, bytearray, memoryview)))

    def _quantized(self, w, parts) -> bool:
        """Is weight `w` written by shaders/quantize.wgsl: quantized from floats, or regrouped (a grouped
        format's blocks go to the GPU in its own layout, app/weights.py GROUPED_FORMATS)?"""
        return w.dtype in GROUPED_FORMATS or (
            w.dtype in QUANTIZE_FORMATS and any(t.dtype in QUANTIZE_SOURCES for _, t, *_ in parts))

    def _upload(self, w, tensors: dict) -> None:
        """Rows [row0, row0 + rows) of each source tensor, one after the other, widened to f32 where
        the GPU keeps another dtype than the file. A tensor with a `row_order` (a GGUF's Q and K,
        whose rows llama.cpp permuted) is put back in Hugging Face's row order on the way."""
        buf = self.allocated[w.label]
        parts = self._parts(w, tensors)
        if w.transposed:
            self._transpose(w, buf, parts[0])
            return
        if self._quantized(w, parts):
            self._quantize(w, buf, parts)
            return
        # slices of the file's own bytes go straight from JS memory; a permuted tensor, a widened
        # one, or block rows that start or end mid-word (34-byte Q8_0 blocks) are assembled here and
        # written once.
        if all(self._direct(part, w.dtype) for part in parts):
            for at, t, start, n, _, _ in parts:
                self.gpu.write_js(buf, at, t.data, start, n)  # JS Uint8Array: never via wasm
            return
        out = bytearray()
        for part in parts:
            out += self._gpu_bytes(part, w.dtype)
        out += bytes(-len(out) % 4)
        self.gpu.write(buf, out, 0)

    def _upload_part(self, w, part) -> None:
        """One source of weight `w` on its own (StreamedUpload: its offset and length are whole words)."""
        buf = self.allocated[w.label]
        if w.transposed:
            self._transpose(w, buf, part)
        elif self._quantized(w, [part]):
            self._quantize(w, buf, [part])
        elif self._direct(part, w.dtype):
            at, t, start, n, _, _ = part
            self.gpu.write_js(buf, at, t.data, start, n)
        else:
            out = self._gpu_bytes(part, w.dtype)
            self.gpu.write(buf, bytes(out) + bytes(-len(out) % 4), part[0])

    def _quantize(self, w, buf, parts) -> None:
        """Quantize-on-load: each float source goes to a staging buffer as the file stores it, and
        shaders/quantize.wgsl writes its blocks into the weight buffer, after the previous part's. A
        source already in a grouped format (a GGUF's Q4_0) goes the same way, to be regrouped. A
        source goes through in chunks of whole blocks (app/weights.py staging_chunk), so the staging
        buffer stays small whatever the largest tensor (an f32 token table is a gigabyte)."""
        block_bytes = BLOCK_FORMATS[w.dtype][1]
        for part in parts:
            at, t, start, n, _, order = part
            regroup = t.dtype == w.dtype and w.dtype in GROUPED_FORMATS
            src_block = load_unit(w.dtype, t.dtype, False, w.rows)  # a block, regrouped or of values to quantize
            if src_block is None or (not regroup and order is not None):
                raise ModelError(f"{w.label}: cannot quantize a {t.dtype} tensor to {w.dtype} on load")
            raw = None  # the source's bytes in wasm memory, when they are there (else a JS Uint8Array's slice)
            if order is not None:  # permuted rows (regrouped only): assembled here
                raw = as_memoryview(self._gpu_bytes(part, w.dtype))
            elif isinstance(t.data, (bytes, bytearray, memoryview)):
                raw = as_memoryview(t.data)[start:start + n]
            blocks = n // src_block
            per, staged = staging_chunk(src_block, blocks)
            staging = self._staging(staged)
            for b0 in range(0, blocks, per):
                count = min(per, blocks - b0)
                lo, size = b0 * src_block, count * src_block
                self._stage_chunk(staging, t, raw, start + lo, lo, size)
                self._quantize_dispatch(w, buf, count, at // block_bytes + b0,
                                        REGROUP_SOURCE if regroup else QUANTIZE_SOURCES[t.dtype], staging)

    def _quantize_dispatch(self, w, buf, blocks: int, block0: int, src: int, staging) -> None:
        k = kernel("quantize.wgsl", "quantize_" + w.dtype.lower(), w.dtype, SRC=src)
        self._load_dispatch(k, staging, buf, f"quantize {w.label}", quantize_workgroups(blocks, block0),
                            (block0, blocks))

    def _stage_chunk(self, staging, t, raw, at: int, lo: int, size: int) -> None:
        """Bytes [at, at + size) of tensor t's data into the staging buffer: from `raw` (its bytes in
        wasm memory, indexed from `lo`) when there, else straight from JS memory, padded through wasm
        only when they do not end on a word (an odd count of 18-byte blocks or of odd-length 16-bit
        rows: a source's last chunk)."""
        if raw is not None:
            self.gpu.write(staging, bytes(raw[lo:lo + size]) + bytes(-size % 4), 0)
        elif size % 4:
            self.gpu.write(staging, bytes(t.data.subarray(at, at + size).to_bytes()) + bytes(-size % 4), 0)
        else:
            self.gpu.write_js(staging, 0, t.data, at, size)  # JS Uint8Array: never via wasm

    def _load_dispatch(self, k, staging, buf, label: str, groups: tuple, chunk: tuple) -> None:
        """Run a load kernel reading `src` (the staging buffer) into `dst` (a weight buffer), the
        chunk's range (two words: quantize.wgsl's first block and count, transpose.wgsl's rows) written
        to its `chunk` buffer first (queue order keeps the previous dispatch on its own); a pipeline
        is made once per kernel, not per chunk, and kept until the load ends (_ready)."""
        pipeline = self._load_pipelines.get(k)
        if pipeline is None:
            pipeline = self._load_pipelines[k] = self.gpu.pipeline(self.gpu.shader_module(k.source(), k.shader),
                                                                   k.entry, k.label)
        chunk_range = self._load_buffers[1]
        self.gpu.write(chunk_range, array("I", [*chunk, 0, 0]).tobytes(), 0)
        binding = k.bindings()
        group = self.gpu.bind_group(pipeline, {binding["src"].index: staging, binding["dst"].index: buf,
                                               binding["chunk"].index: chunk_range}, label)
        self.gpu.run(pipeline, group, *groups)
        self.load_dispatches += 1

    @staticmethod
    def _check_transposed(w, t) -> None:
        """Refuse what transpose-on-load cannot write: anything but one whole [cols, rows] source of
        a float dtype, kept as itself or widened to F32, in the file's row order."""
        if len(w.sources) != 1 or w.row0:
            raise ModelError(f"{w.label}: a transposed weight must be one whole tensor")
        if tuple(t.shape) != (w.cols, w.rows):
            raise ModelError(f"{w.label}: its tensor is {list(t.shape)}, not the [{w.cols}, {w.rows}] it is "
                             f"transposed from")
        if t.dtype not in TRANSPOSE_SOURCES or w.dtype not in (t.dtype, "F32"):
            raise ModelError(f"{w.label}: cannot transpose a {t.dtype} tensor to {w.dtype} on load")
        if getattr(t, "row_order", None) is not None:
            raise ModelError(f"{w.label}: a transposed tensor cannot have its rows reordered")

    def _transpose(self, w, buf, part) -> None:
        """Transpose-on-load: the [K, N] source (HF Conv1D) goes to the staging buffer as the file
        stores it, in chunks of an even count of whole source rows (so 16-bit rows pack whole words
        and the chunks start on words), and shaders/transpose.wgsl writes each chunk's values into
        the [N, K] weight buffer, where they are columns. Chunks bounded as _quantize's."""
        _, t, start, n, src_row, _ = part
        raw = as_memoryview(t.data)[start:start + n] if isinstance(t.data, (bytes, bytearray, memoryview)) else None
        rows = n // src_row
        per, staged = staging_chunk(src_row, rows)
        staging = self._staging(staged)
        for k0 in range(0, rows, per):
            k1 = min(rows, k0 + per)
            lo, size = k0 * src_row, (k1 - k0) * src_row
            self._stage_chunk(staging, t, raw, start + lo, lo, size)
            entry = "transpose_f32" if w.dtype == "F32" else "transpose_16"
            k = kernel("transpose.wgsl", entry, w.dtype, K=w.cols, N=w.rows, SRC=TRANSPOSE_SOURCES[t.dtype])
            self._load_dispatch(k, staging, buf, f"transpose {w.label}", transpose_workgroups(w.rows, k0, k1, w.dtype),
                                (k0, k1))

    def _staging(self, nbytes: int):
        """The staging buffer for quantize-, regroup- and transpose-on-load, made once at the size the
        buffer plan gives it (the largest chunk: BufferPlan.load_staging), with the chunk range's
        buffer; queue order makes the next write wait for the dispatch that read the previous chunk."""
        if buffer_size(nbytes) > self.plan.load_staging:
            raise ModelError(f"a load chunk of {nbytes:,} bytes is over the planned staging buffer of "
                             f"{self.plan.load_staging:,} (app/buffer_plan.py load_staging_bytes)")
        if self._load_buffers is None:
            staging = self.gpu.storage(self.plan.load_staging, "load staging (quantize, transpose)")
            self._load_buffers = (staging, self.gpu.storage(LOAD_CHUNK_BYTES, "load chunk range"))
        return self._load_buffers[0]

    # ------------------------------------------------------------------------ pipelines
    def _build(self) -> None:
        gpu, graph = self.gpu, self.graph
        ro = "unused read binding"
        pipelines, groups = {}, {}

        def prepared(d):
            k = d.kernel
            if k not in pipelines:
                pipelines[k] = gpu.pipeline(gpu.shader_module(k.source(), k.shader), k.entry, k.label)
            key = (k, d.bind)
            if key not in groups:
                bound = dict(d.bind)
                entries, writable_dummies = {}, 0
                for name, b in sorted(k.bindings().items(), key=lambda item: item[1].index):
                    if name in bound:
                        entries[b.index] = self.allocated[bound[name]]
                    elif b.writable:
                        entries[b.index] = self.allocated[f"unused write binding {writable_dummies}"]
                        writable_dummies += 1
                    else:
                        entries[b.index] = self.allocated[ro]
                groups[key] = gpu.bind_group(pipelines[k], entries, f"{d.name} {k.label}")
            return pipelines[k], groups[key]

        self.prefill_names = [d.name for d in graph.prefill + graph.tail]
        self.decode_names = [d.name for d in graph.decode + graph.tail]
        self.prefill_plan = gpu.plan([prepared(d) for d in graph.prefill + graph.tail])
        self.decode_plan = gpu.plan([prepared(d) for d in graph.decode + graph.tail])
        self._tail_counts = [c for d in graph.tail for c in d.counts()]
        self._decode_counts = [c for d in graph.decode for c in d.counts()] + self._tail_counts
        self._decode_counts_js = None
        self.dispatches_per_decode_step = graph.dispatches_per_decode_step
        self.stagings = [self.allocated[f"topk readback {i}"] for i in range(CHAIN_DEPTH_MAX + 1)]
        gpu.check()

    def prefill_counts(self, rows: int, last: bool = True) -> list:
        """Workgroup counts of a prefill run of `rows` rows (the head and top-k only on the last)."""
        counts = [c for d in self.graph.prefill for c in d.counts(rows)]
        return counts + (self._tail_counts if last else [0] * len(self._tail_counts))

    def decode_counts(self) -> list:
        return list(self._decode_counts)

    # ------------------------------------------------------------------------ running
    def reset(self) -> int:
        """Forget the sequence: the next prefill starts at position 0."""
        self.pos = 0
        self.cached_ids = []
        return 0

    def keep_prefix(self, ids) -> int:
        """Keep the cache's positions for the longest prefix `ids` shares with what it holds, but
        at least the last id of `ids` to run (its logits are the next token's); returns how many."""
        held = self.cached_ids[:self.pos]
        n = 0
        while n < min(len(held), len(ids) - 1) and held[n] == ids[n]:
            n += 1
        self.pos = n
        return n

    def write_step(self, ids, pos0: int, k: int, temperature: float, choice: GpuChoice = GREEDY) -> None:
        self.gpu.write(self.allocated["step"], self._packed_step(ids, pos0, k, temperature, choice))

    @staticmethod
    def _packed_step(ids, pos0: int, k: int, temperature: float, choice: GpuChoice) -> bytes:
        return pack_step(ids, pos0, k, temperature, choice.top_k, choice.top_p, choice.draw, penalty=choice.penalty)

    def write_seen(self, ids) -> None:
        """The tokens the repetition penalty applies to from the next step on (each step then adds
        the token it chooses itself: see topk.wgsl)."""
        self._check_ids(ids)
        self.gpu.write(self.allocated["seen tokens"], seen_mask(ids, self.cfg.vocab_size))

    async def warm_up(self) -> float:
        """Run one prefill row and one decode step, then forget them; returns the seconds taken.

        Browsers compile pipelines lazily, on their first dispatch: on SwiftShader that takes tens
        of seconds for a GPT-2. Paying it here, while the load progress says "compiling", keeps it
        out of the first generation's time to first token and checks every kernel once."""
        t0 = time.perf_counter()
        self.reset()
        await self.prefill([0], k=1)
        await self.decode_step(0, k=1)
        self.reset()
        return time.perf_counter() - t0

    def _check_ids(self, ids):
        V = self.cfg.vocab_size
        for i in ids:
            if not (isinstance(i, int) and 0 <= i < V):
                raise ModelError(f"token id {i!r} is outside the vocabulary (0..{V - 1})")

    async def prefill(self, ids, k: int = 1, temperature: float = 0.0, keep_logits: bool = False,
                      should_stop=None, choice: GpuChoice = GREEDY) -> StepResult | None:
        """Run the prompt `ids` (appended after what the cache holds) and return the candidates
        for the next token (keep_logits: see submit_decode). Returns None if `should_stop()` turned
        true between chunks."""
        await self.drain()
        ids = list(ids)
        if not ids:
            raise ModelError("prefill needs at least one token")
        self._check_ids(ids)
        if self.pos + len(ids) > self.n_ctx:
            raise ModelError(f"{self.pos + len(ids)} tokens do not fit the context of {self.n_ctx}")
        for start in range(0, len(ids), self.chunk):
            piece = ids[start:start + self.chunk]
            last = start + self.chunk >= len(ids)
            self.write_step(piece, self.pos, k, temperature, choice)
            encoder = self.gpu.device.createCommandEncoder()
            self.gpu.encode(self.prefill_plan, self.prefill_counts(len(piece), last), encoder)
            self.pos += len(piece)
            if last:
                handle = self._record_readback(encoder, k, temperature, keep_logits)
                self.gpu.submit(encoder)
                return await self.collect(handle)
            self.gpu.submit(encoder)
            await self.gpu.queue.onSubmittedWorkDone()  # lets Stop and the page in between chunks
            self.gpu.check()
            if should_stop is not None and should_stop():
                return None
        return None

    async def decode_step(self, token: int, k: int = 1, temperature: float = 0.0,
                          keep_logits: bool = False, choice: GpuChoice = GREEDY) -> StepResult:
        """Append one token at position `pos` and return the candidates for the next one."""
        await self.drain()  # a step left in flight by an abandoned chained generation
        return await self.collect(self.submit_decode(token, k, temperature, keep_logits, choice))

    def submit_decode(self, token: int | None, k: int = 1, temperature: float = 0.0, keep_logits: bool = False,
                      choice: GpuChoice = GREEDY, pass_descriptor=None):
        """Submit one decode step without waiting for it; `collect` reads its result.

        token None chains decoding on the GPU: the step's input is the token the step submitted
        just before it chose (its `choice`, StepResult.choice), which the embedding reads from the
        top-k output, so the next step can be queued before Python has seen the previous one's
        result (its round trip hidden behind the GPU's work). Whoever chains must check, once the
        previous result is read, that the token it takes is that choice (generate.py does), and
        `rollback` a step it does not keep. keep_logits: the step's logits stay on the GPU beside its
        read-back, for `step_logits` once it is collected. `pass_descriptor`: see GPU.encode
        (app/bench.py's timestamps)."""
        return self.submit_decode_steps(token, [choice], k, temperature, keep_logits, [pass_descriptor])[0]

    def submit_decode_steps(self, token: int | None, choices: list, k: int = 1, temperature: float = 0.0,
                            keep_logits: bool = False, pass_descriptors: list | None = None) -> list:
        """Submit len(choices) decode steps in one command buffer, each chained on the one before
        it (as submit_decode with token None), the first fed `token` (None: chained too); returns
        their handles, for `collect` in order. One submit for them all: the host's cost of a submit
        and of a command buffer is paid once for the lot. The first step's Step is written to the
        queue as a lone step's is; each later one is written to its read-back slot's "step queued"
        buffer and copied into the Step by the command buffer itself, between the steps' passes."""
        n = len(choices)
        if n < 1:
            raise ModelError("submit at least one decode step")
        if token is not None:
            self._check_ids([token])
        elif not self._inflight:
            raise ModelError("a chained decode step needs a step submitted before it")
        if self.pos + n > self.n_ctx:
            raise ModelError(f"the context of {self.n_ctx} tokens is full")
        if len(self._inflight) + n > len(self.stagings):
            raise ModelError("read the oldest step back (collect) before submitting another")
        if self._decode_counts_js is None:
            from pyodide.ffi import to_js  # noqa: PLC0415 - only in Pyodide

            self._decode_counts_js = to_js(self._decode_counts)
        encoder = self.gpu.device.createCommandEncoder()
        handles = []
        for i, choice in enumerate(choices):
            ids = [CHAIN_ID if token is None or i else token]
            if i == 0:
                self.write_step(ids, self.pos, k, temperature, choice)
            else:
                queued = self.allocated[f"step queued {self._next_staging}"]
                packed = self._packed_step(ids, self.pos, k, temperature, choice)
                self.gpu.write(queued, packed)
                encoder.copyBufferToBuffer(queued, 0, self.allocated["step"], 0, len(packed))
            descriptor = pass_descriptors[i] if pass_descriptors else None
            self.gpu.encode(self.decode_plan, self._decode_counts_js, encoder, descriptor)
            handles.append(self._record_readback(encoder, k, temperature, keep_logits))
            self.pos += 1
        self.gpu.submit(encoder)
        return handles

    def _record_readback(self, encoder, k: int, temperature: float, keep_logits: bool):
        """Copy the top-k output to the next read-back buffer at the end of `encoder` (and the
        logits to the same slot's kept buffer, if asked) and return the handle `collect` takes;
        the caller submits `encoder`."""
        if len(self._inflight) >= len(self.stagings):
            raise ModelError("read the oldest step back (collect) before submitting another")
        k = max(1, min(int(k), KMAX))
        slot = self._next_staging
        self._next_staging = (slot + 1) % len(self.stagings)
        staging = self.stagings[slot]
        encoder.copyBufferToBuffer(self.allocated["topk out"], 0, staging, 0, topk_output_bytes(k))
        self._submitted += 1
        self._slot_step[slot] = self._submitted
        if keep_logits:
            encoder.copyBufferToBuffer(self.allocated["logits"], 0, self.allocated[f"logits kept {slot}"], 0,
                                       self.cfg.vocab_size * 4)
        handle = (staging, k, temperature, (slot, self._submitted) if keep_logits else None)
        self._inflight.append(handle)
        return handle

    async def collect(self, handle) -> StepResult:
        """Wait for a submitted step (the oldest in flight) and return its candidates."""
        if not self._inflight or self._inflight[0] is not handle:
            raise ModelError("decode steps are read back in the order they were submitted")
        self._inflight.pop(0)
        staging, k, temperature, kept = handle
        nbytes = topk_output_bytes(k)
        self.last_readback_bytes = nbytes
        await self.gpu.map_read(staging)
        raw = staging.getMappedRange(0, nbytes).to_bytes()
        staging.unmap()
        self.gpu.check()
        choice, ids, logits, max_logit, sum_exp, choice_weights = unpack_topk(raw, k)
        return StepResult(ids=ids, logits=logits, max_logit=max_logit, sum_exp=sum_exp,
                          temperature=temperature if temperature > 0 else 1.0, choice=choice,
                          choice_weights=choice_weights, kept=kept)

    async def step_logits(self, step: StepResult) -> array:
        """Every logit of a collected step submitted with keep_logits (array('f')), read from the
        GPU once, while no step submitted after it has taken its slot (CHAIN_DEPTH_MAX + 1 of them:
        read it before submitting that many more)."""
        if step.full_logits is not None:
            return step.full_logits
        if step.kept is None:
            raise ModelError("this step's logits were not kept: submit it with keep_logits=True")
        slot, number = step.kept
        if self._slot_step[slot] != number:
            raise ModelError("this step's logits were overwritten by later steps: read them sooner")
        V = self.cfg.vocab_size
        readback = self.allocated["logits readback"]
        encoder = self.gpu.device.createCommandEncoder()
        encoder.copyBufferToBuffer(self.allocated[f"logits kept {slot}"], 0, readback, 0, V * 4)
        self.gpu.submit(encoder)
        await self.gpu.map_read(readback)
        step.full_logits = array("f", readback.getMappedRange(0, V * 4).to_bytes())
        readback.unmap()
        self.gpu.check()
        self.last_readback_bytes += V * 4
        return step.full_logits

    @property
    def in_flight(self) -> int:
        """Steps submitted and not read back yet."""
        return len(self._inflight)

    def rollback(self, steps: int = 1):
        """Forget the last `steps` positions (a chained step that was not kept): the next step
        overwrites their KV-cache entries."""
        self.pos = max(0, self.pos - steps)

    async def drain(self):
        """Read back and drop every decode step still in flight (after a Stop, a stop string...)."""
        while self._inflight:
            try:
                await self.collect(self._inflight[0])
            except Exception:  # noqa: BLE001 - a lost device: nothing left to read
                self._inflight.clear()

    # ------------------------------------------------------------------------ housekeeping
    def gpu_bytes(self) -> int:
        return sum(int(b.size) for b in self.allocated.values())

    def free(self):
        """Every buffer this model holds, the load's own buffers too (a load cancelled or failed
        before _ready still holds them)."""
        held = list(self.allocated.values()) + list(self._load_buffers or ())
        self._load_buffers = None
        for buf in held:
            try:
                self.gpu.free(buf)
            except Exception:  # noqa: BLE001 - free the rest regardless (a lost device may refuse)
                pass
        self.allocated = {}


class StreamedUpload:
    """The weights of a GPUModel still to be written while a load streams its tensors in file order
    (app/loader.py): each source of a weight is written as soon as its tensor arrives, at its own
    offset, so nothing but the arriving tensors is held. A weight whose parts cannot be written
    apart (a part that starts or ends mid-word: 34-byte Q8_0 block rows, an odd-length F16 part) keeps
    the tensors that came until its last one arrives, then is written whole."""

    def __init__(self, model: GPUModel, infos: dict):
        self.model = model
        self.waiting: dict = {}  # tensor name -> [(weight, part index, or None: the weight as a whole)]
        self.parts: dict = {}    # weight label -> its parts as `infos` describe them
        self.left: set = set()   # (weight label, part index or None) not written yet
        self.held: dict = {}     # weight label -> {tensor name: tensor} of a weight written whole
        computed = model.graph.computed_tensors()
        infos = {**infos, **computed}
        for w in model.graph.weights:
            missing = [name for name in w.sources if name not in infos]
            if missing:
                raise ModelError(f"{w.label}: no tensor {missing[0]!r} among the model's tensors")
            parts = self.parts[w.label] = model._parts(w, infos)
            if w.transposed or model._quantized(w, parts) or self._apart(parts, w.dtype):
                keys = list(range(len(parts)))
            else:
                keys = [None]
            for key in keys:
                self.left.add((w.label, key))
                names = w.sources if key is None else [w.sources[key]]
                for name in names:
                    self.waiting.setdefault(name, []).append((w, key))
        self.add(computed)

    @staticmethod
    def _apart(parts, dtype: str) -> bool:
        """Can each part be written alone? Every part starts on a word, and every one but the last
        ends on one (the last is padded to a word, which then overwrites nothing)."""
        for i, (at, t, _, n, _, _) in enumerate(parts):
            out = n if t.dtype == dtype else n // dtype_bytes(t.dtype) * 4
            if at % 4 or (i < len(parts) - 1 and out % 4):
                return False
        return True

    def add(self, tensors: dict) -> set:
        """Write what `tensors` complete; -> the names of the tensors still kept (see GPUModel.take)."""
        model = self.model
        for name, t in tensors.items():
            for w, key in self.waiting.get(name, ()):
                if key is None:
                    held = self.held.setdefault(w.label, {})
                    held[name] = t
                    if all(source in held for source in w.sources):
                        model._upload(w, held)
                        del self.held[w.label]
                        self.left.discard((w.label, None))
                    continue
                at, _, start, n, src_row, order = self.parts[w.label][key]
                model._upload_part(w, (at, t, start, n, src_row, order))
                self.left.discard((w.label, key))
        return {name for held in self.held.values() for name in held}

    def missing(self) -> str | None:
        """The label of a weight not fully written yet, or None."""
        return min((label for label, _ in self.left), default=None)
