"""Engine benchmark, run inside the page or the Node runner (tools/bench.py).

Measures, with the same code paths users run: prefill tokens/s at several prompt lengths, decode
ms/token (median, p90) at several contexts, one step at a time and chained as a greedy generation
runs them, dispatches / FFI calls / bytes read back per decode step, GPU memory, and, with a loaded
model, whole generations with the page's default sampling settings.

Every figure is also set against what the adapter can do, measured in the same run (app/roofline.py):
the read bandwidth of a streaming kernel, the same stream cut into one dispatch per window of a
matrix's size, the f32 FMA rate and the cost of an empty dispatch in a chain. A decode step is
reported as the bytes it must read (its weights, one row of the token table, the KV cache up to the
context) per unit of time, as a fraction of that read roofline, and beside its stream floor (each of
its dispatches at the windowed stream's time for its bytes: the most a step of this many dispatches
can reach); a prefill as TFLOP/s against the FMA rate. `kernel_times` times each dispatch of a
decode step on the GPU (timestamp queries, one compute pass per dispatch) with the bytes it reads.

`synthetic` benchmarks a model shape without its file: the graph of a named config (a Llama-1B,
SmolLM2-135M, GPT-2 117M / XL) with random weights made on the GPU in the chosen format (float, or
valid Q8_0 / Q4_0 / Q4_1 blocks), so a 2.5 GB model costs nothing to carry to a lent GPU.
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import math
import struct
import time
import zlib

import js

from .buffer_plan import BufferPlan
from .config import param_count
from .contract import CHAIN_DEPTH_MAX, DEFAULT_CHAIN_DEPTH, KMAX, decode_dispatch_limit
from .generate import queue_submits
from .gpu import COPY_DST, COPY_SRC, QUERY_RESOLVE, STORAGE, _js_obj, is_null
from .roofline import queue_fill, roofline, stream_us
from .runner import GREEDY, GPUModel
from .synthetic import synthetic_graph
from .weights import row_bytes


def _ids(n: int, vocab: int) -> list:
    return [(i * 7919 + 13) % vocab for i in range(n)]


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if s else None


def _p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s)))] if s else None


async def copy_bandwidth_gbs(gpu, nbytes: int = 256 << 20, repeats: int = 10) -> float:
    """copyBufferToBuffer GB/s, read + write counted (as ../shared/gpu/probe.mjs does)."""
    nbytes = min(nbytes, gpu.limits.get("maxBufferSize", nbytes)) // 16 * 16
    src = gpu.buffer(nbytes, STORAGE | COPY_SRC, "bench copy src")
    dst = gpu.buffer(nbytes, STORAGE | COPY_DST, "bench copy dst")
    try:
        best = None
        for _ in range(3):
            encoder = gpu.device.createCommandEncoder()
            for _ in range(repeats):
                encoder.copyBufferToBuffer(src, 0, dst, 0, nbytes)
            t0 = time.perf_counter()
            gpu.submit(encoder)
            await gpu.queue.onSubmittedWorkDone()
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        return 2 * repeats * nbytes / best / 1e9
    finally:
        gpu.free(src)
        gpu.free(dst)


QUERY_SET_MAX = 4096  # WebGPU's most queries in one set
# steps per submit timed at the deepest queue (two submits' worth of steps queued at least)
STEPS_PER_SUBMIT_TIMED = [n for n in (1, 2, 4) if 2 * n <= CHAIN_DEPTH_MAX]


async def chained_steps(model, token: int, steps: int, k: int = 5, pass_descriptor=lambda i: None,
                        depth: int = DEFAULT_CHAIN_DEPTH, per_submit: int = 1) -> list:
    """`steps` decode steps chained as a greedy generation runs them (app/generate.py): `depth`
    steps are queued, fed on the GPU, ahead of the one Python reads, so the round trip to Python
    overlaps the GPU's work, in submits of `per_submit` steps. Returns the seconds between
    consecutive results (the first from the start); `pass_descriptor(i)`: step i's compute-pass
    descriptor (timestamps)."""
    submitted = 0

    def submit(feed, n):
        nonlocal submitted
        handles = model.submit_decode_steps(feed, [GREEDY] * n, k=k,
                                            pass_descriptors=[pass_descriptor(submitted + i) for i in range(n)])
        submitted += n
        return handles

    queued = submit(token, min(steps, per_submit))
    times, t_prev = [], time.perf_counter()
    for _ in range(steps):
        room_depth, room_end = depth + 1 - len(queued), steps - submitted
        for n in queue_submits(min(room_depth, room_end), room_end <= room_depth, per_submit):
            queued += submit(None, n)
        await model.collect(queued.pop(0))
        now = time.perf_counter()
        times.append(now - t_prev)
        t_prev = now
    return times


async def gpu_decode_times(gpu, model, ctx: int, steps: int = 20, k: int = 5) -> dict | None:
    """Decode steps timed on the GPU itself (adapters with "timestamp-query"): a timestamp at the
    start and at the end of each step's compute pass, steps chained as a greedy generation runs
    them. `pass_ms`: the pass, median; `start_to_start_ms`: between the starts of consecutive steps,
    median: equal to pass_ms when the GPU is the bottleneck, larger by what the host adds when the
    host is. `k`: candidates per step (5 as a generation reads; up to 64 with top-k sampling).
    None without the feature (or when the adapter writes no timestamps)."""
    if "timestamp-query" not in gpu.features:
        return None
    n = 2 * steps
    query_set = gpu.device.createQuerySet(_js_obj({"type": "timestamp", "count": n}))
    resolved = gpu.buffer(n * 8, QUERY_RESOLVE | COPY_SRC, "bench timestamps")
    try:
        ctx = max(1, min(ctx, model.n_ctx - steps - 2))
        model.reset()
        await model.prefill(_ids(ctx, model.cfg.vocab_size), k=k)

        def timestamps(i):
            return _js_obj({"timestampWrites": _js_obj({"querySet": query_set, "beginningOfPassWriteIndex": 2 * i,
                                                        "endOfPassWriteIndex": 2 * i + 1})})

        await chained_steps(model, 1, steps, k, timestamps)
        encoder = gpu.device.createCommandEncoder()
        encoder.resolveQuerySet(query_set, 0, n, resolved, 0)
        gpu.submit(encoder)
        ns = struct.unpack(f"<{n}Q", await gpu.read(resolved, n * 8))
    finally:
        query_set.destroy()
        gpu.free(resolved)
        model.reset()
    starts, ends = ns[0::2][3:], ns[1::2][3:]  # the first steps start the chain
    if not any(starts):
        return None
    return {"context": ctx, "k": k, "pass_ms": round(_median([e - s for s, e in zip(starts, ends)]) / 1e6, 4),
            "start_to_start_ms": round(_median([b - a for a, b in zip(starts, starts[1:])]) / 1e6, 4)}


async def spin_up(model, seconds: float = 1.0, max_steps: int = 500) -> int:
    """Untimed decode steps for about `seconds`: a real GPU idles at low clocks and ramps up under
    load (H200: the first context measured right after loading ran 2x slower than the next), so the
    figures below are the steady state of a generation, not the ramp. Returns the steps run."""
    model.reset()
    await model.prefill([1], k=1)
    t0, steps, token = time.perf_counter(), 0, 1
    while time.perf_counter() - t0 < seconds and steps < max_steps:
        if model.pos >= model.n_ctx - 1:
            model.reset()
            await model.prefill([1], k=1)
        token = (await model.decode_step(token, k=1)).ids[0]
        steps += 1
    model.reset()
    return steps


# Sampling settings timed beside the page's default (temperature 0.8, top-k 40): each chains; the
# candidates decide top-k and top-p steps, and sampling in id order reads every step's logits.
SAMPLING_SETTINGS = {
    "top_k_penalty": dict(temperature=0.8, top_k=40, repetition_penalty=1.2),
    "top_p": dict(temperature=0.8, top_p=0.9),
    "in_id_order_penalty": dict(temperature=1.0, repetition_penalty=1.2),
}


async def sampled_generation_ms(model, new_tokens: int = 64, prompt_length: int = 16) -> dict:
    """Median ms between tokens of a whole generation (app/generate.py, Python's sampler included)
    with the page's default settings (temperature 0.8, top-k 40), chained and one step at a time
    (best of two), and once each with every SAMPLING_SETTINGS entry (with the steps whose logits
    were read and the chained steps redone); chained and one step give the same tokens (checked
    here: a difference is an error, not a figure)."""
    n = max(1, min(new_tokens, model.context - prompt_length - 1))
    ids = _ids(prompt_length, model.config.vocab_size)
    base = dict(prompt_ids=ids, max_new_tokens=n, seed=1, stop_on_eos=False)

    async def timed(settings: dict, runs: tuple) -> dict:
        out, tokens = {}, {}
        for name, chain in runs:
            result = await model.complete(chain=chain, **base, **settings)
            ms = result.timings["decode_ms_per_token"]
            out[name] = round(min(ms, out.get(name, ms)), 3)
            tokens.setdefault(name, result.tokens)
            if chain:
                out["logits_read"] = result.timings["logits_read"]
                out["chain_misses"] = result.timings["chain_misses"]
        if tokens["chained"] != tokens["one_step"]:
            raise RuntimeError(f"chained and one-step sampled generations gave different tokens ({settings})")
        return out

    twice = (("one_step", False), ("chained", True), ("one_step", False), ("chained", True))
    out = await timed(dict(temperature=0.8, top_k=40), twice)
    out["settings"] = {name: await timed(settings, twice[:2]) for name, settings in SAMPLING_SETTINGS.items()}
    out["tokens"] = n
    return out


async def run(engine_model, prompt_lengths=(16, 128, 512), contexts=(16, 128, 512), decode_steps: int = 20,
              copy_probe: bool = True, generate_tokens: int = 64, kernel_times: bool = True) -> dict:
    """Every figure for one loaded model (app/engine.py Model)."""
    out = await measure(engine_model.gpu, engine_model.gpu_model, prompt_lengths, contexts, decode_steps,
                        copy_probe=copy_probe, per_kernel=kernel_times)
    if generate_tokens > 0:
        out["generate_sampled_ms_per_token"] = await sampled_generation_ms(engine_model, generate_tokens)
    return out


async def measure(gpu, model, prompt_lengths=(16, 128, 512), contexts=(16, 128, 512), decode_steps: int = 20,
                  copy_probe: bool = True, per_kernel: bool = True) -> dict:
    """Every figure of a GPU model (app/runner.py GPUModel) that needs no tokenizer, with the
    adapter's roofline measured in the same run."""
    cfg = model.cfg
    V, n_ctx = cfg.vocab_size, model.n_ctx
    out = {"n_ctx": n_ctx, "dtype": model.weight_dtype,
           "weight_formats": sorted({model.weight_dtype, *getattr(model.graph, "formats", {}).values()}),
           "gpu_bytes": model.gpu_bytes(), "weight_gpu_bytes": model.plan.by_kind().get("weights"),
           "dispatches_per_decode_step": model.dispatches_per_decode_step,
           "dispatch_limit": decode_dispatch_limit(cfg.n_layer, model.graph.shapes.fused_norms),
           "prefill": {}, "decode": {}, "decode_chained": {}}
    out["compile_s"] = round(await model.warm_up(), 3)  # no-op cost if already compiled
    await spin_up(model)
    out["roofline"] = await roofline(gpu)

    for n in prompt_lengths:
        n = min(n, n_ctx - 1)
        times = []
        for _ in range(3):
            model.reset()
            t0 = time.perf_counter()
            await model.prefill(_ids(n, V), k=5)
            times.append(time.perf_counter() - t0)
        best = min(times)
        out["prefill"][str(n)] = {"ms": round(best * 1000, 2), "tokens_per_s": round(n / best, 1)}

    counter = None
    instrument = getattr(js.globalThis, "pywebgptCountCalls", None)
    for ctx in contexts:
        ctx = min(ctx, n_ctx - decode_steps - 6)
        model.reset()
        await model.prefill(_ids(ctx, V), k=5)
        token = 1
        for _ in range(3):  # untimed: the first steps after a prefill pay for the switch of plans
            token = (await model.decode_step(token, k=5)).ids[0]
        if ctx == contexts[0] and not is_null(instrument):
            counter = instrument()
        times = []
        for _ in range(decode_steps):
            t0 = time.perf_counter()
            step = await model.decode_step(token, k=5)
            times.append(time.perf_counter() - t0)
            token = step.ids[0]
        if counter is not None and ctx == contexts[0]:
            calls = counter.stop()
            out["ffi_calls_per_decode_step"] = round(int(calls) / decode_steps, 2)
            counter = None
        out["decode"][str(ctx)] = {"ms_median": round(_median(times) * 1000, 3),
                                   "ms_p90": round(_p90(times) * 1000, 3)}
        # Chained greedy steps, timed between consecutive results: the first 3 start the chain,
        # the last is read with no step queued behind it.
        model.reset()
        await model.prefill(_ids(ctx, V), k=5)
        chained = (await chained_steps(model, token, decode_steps + 4))[3:3 + decode_steps]
        out["decode_chained"][str(ctx)] = {"ms_median": round(_median(chained) * 1000, 3),
                                           "ms_p90": round(_p90(chained) * 1000, 3)}
        if ctx == contexts[0]:  # the same with more steps queued ahead of the one read
            for depth in range(1, CHAIN_DEPTH_MAX + 1):
                model.reset()
                await model.prefill(_ids(ctx, V), k=5)
                chained = (await chained_steps(model, token, decode_steps + 4, depth=depth))[3:3 + decode_steps]
                out.setdefault("decode_chained_by_depth", {})[str(depth)] = round(_median(chained) * 1000, 3)
            # the deepest queue, one step per submit and several: results come in bursts of a
            # submit's steps, so the figure is the mean time per token over whole submits (the
            # window from the end of one burst to the end of another), not a median gap
            for per_submit in STEPS_PER_SUBMIT_TIMED:
                warm, timed = (math.ceil(n / per_submit) * per_submit for n in (6, decode_steps))
                model.reset()
                await model.prefill(_ids(ctx, V), k=5)
                chained = await chained_steps(model, token, warm + timed, depth=CHAIN_DEPTH_MAX,
                                              per_submit=per_submit)
                out.setdefault("decode_chained_by_steps_per_submit", {})[str(per_submit)] = round(
                    sum(chained[warm:]) / timed * 1000, 3)
    out["readback_bytes_per_decode_step"] = model.last_readback_bytes
    out["gpu_timestamps"] = await gpu_decode_times(gpu, model, contexts[0], decode_steps + 3)
    out["gpu_timestamps_k64"] = await gpu_decode_times(gpu, model, contexts[0], decode_steps + 3, k=KMAX)
    if per_kernel:
        # at the context of gpu_timestamps, whose pass_ms the sum of the dispatches is set against
        out["kernel_times"] = await kernel_times(model, min(contexts[0], n_ctx - decode_steps - 6),
                                                 reps=3 if gpu.is_cpu else 10,
                                                 roof=out["roofline"])
    stamps = out["gpu_timestamps"]
    if stamps and out["roofline"].get("read_by_size"):
        # the step's floor in this design: every dispatch at the stream's speed for its size
        stamps["stream_floor_ms"] = round(decode_stream_floor_ms(model, stamps["context"], out["roofline"]), 4)
        stamps["fraction_of_stream_floor"] = round(stamps["stream_floor_ms"] / stamps["pass_ms"], 4)
    wbytes = model.graph.decode_weight_bytes()
    out["weight_bytes_per_decode_step"] = wbytes
    first_ctx = str(min(contexts[0], n_ctx - decode_steps - 6))
    first = out["decode"][first_ctx]["ms_median"]
    out["weight_gbs_at_first_context"] = round(wbytes / (first / 1000) / 1e9, 2)
    out["weight_gbs_chained_at_first_context"] = round(
        wbytes / (out["decode_chained"][first_ctx]["ms_median"] / 1000) / 1e9, 2)
    if copy_probe:
        copy = await copy_bandwidth_gbs(gpu)
        out["copy_gbs"] = round(copy, 1)
        out["roofline"]["copy_gbs"] = out["copy_gbs"]
        out["fraction_of_copy_bandwidth"] = round(out["weight_gbs_at_first_context"] / copy, 3)
        out["fraction_of_copy_bandwidth_chained"] = round(out["weight_gbs_chained_at_first_context"] / copy, 3)
    against_roofline(out, model.graph)
    model.reset()
    return out


# ------------------------------------------------------------------------------ random weights

def weight_spread(w) -> tuple:
    """(spread, centre) of a synthetic weight: norms near 1, biases near 0, matrices about 1/sqrt(width),
    so activations stay finite through every layer (their values do not change the timings)."""
    if w.rows == 1:
        return (0.02, 0.0) if w.label.endswith("bias") else (0.1, 1.0)
    return (1.0 / math.sqrt(min(w.rows, w.cols)), 0.0)


class RandomGPUModel(GPUModel):
    """A GPUModel whose weights are made on the GPU (random, in each weight's format) instead of
    uploaded; computed tensors (the rotary table) are uploaded as usual. Filling is queued work:
    nothing crosses from the host but a few bytes per weight."""

    def _upload(self, w, tensors: dict) -> None:
        if any(name in tensors for name in w.sources):
            super()._upload(w, tensors)
            return
        if getattr(self, "_fill_params", None) is None:
            self._fill_params = self.gpu.buffer(16, STORAGE | COPY_DST, "fill parameters")
        spread, centre = weight_spread(w)
        queue_fill(self.gpu, self.allocated[w.label], w.dtype, zlib.crc32(w.label.encode()), spread, centre,
                   self._fill_params, f"fill {w.label}")

    def free(self):
        params = getattr(self, "_fill_params", None)
        if params is not None:
            self.gpu.free(params)
            self._fill_params = None
        super().free()


async def synthetic(engine, name: str, fmt: str = "f16", prompt_lengths=(16, 128, 512), contexts=(16, 128, 512),
                    decode_steps: int = 20, profile_kernels: bool = False, per_kernel: bool = True) -> dict:
    """Every figure of `measure` for a SYNTHETIC model shape with random weights in `fmt`, made on
    the engine's device (beside any loaded model) and freed afterwards."""
    gpu = await engine.get_gpu()
    context = -(-(max(max(prompt_lengths), max(contexts)) + decode_steps + 8) // 64) * 64
    cfg, graph = synthetic_graph(name, fmt, engine.shapes, gpu.limits, context)
    plan = BufferPlan.of(graph)
    plan.check_limits(graph.limits, f"synthetic {name}")
    t0 = time.perf_counter()
    model = RandomGPUModel(gpu, graph, {})
    try:
        await gpu.queue.onSubmittedWorkDone()
        out = {"model": name, "synthetic": True, "parameters": param_count(cfg), "family": cfg.model_type,
               "make_s": round(time.perf_counter() - t0, 3)}
        out.update(await measure(gpu, model, prompt_lengths, contexts, decode_steps, per_kernel=per_kernel))
        if profile_kernels:
            out["profile"] = [await profile(model, "decode", contexts[min(1, len(contexts) - 1)]),
                              await profile(model, "prefill", max(prompt_lengths), reps=5)]
    finally:
        model.free()
    return out


# ------------------------------------------------------------------------------ bytes and FLOPs

def kv_bytes_read(graph, ctx: int) -> int:
    """KV-cache bytes a decode step at position `ctx` reads: K and V of positions 0..ctx, every
    layer (f32)."""
    k = graph.k
    return graph.cfg.n_layer * 2 * k.KVH * (ctx + 1) * k.HD * 4


def decode_bytes_read(graph, ctx: int) -> int:
    """Bytes a decode step must read at least: its weights (one row of the token table) and the
    KV cache; activations (a few KB a dispatch) left out."""
    return graph.decode_weight_bytes() + kv_bytes_read(graph, ctx)


def _tables(graph) -> set:
    return {w.label for w in list(graph.table) + list(graph.head_table)}


def prefill_flops(graph, n: int) -> int:
    """FLOPs of a prefill of `n` tokens from position 0: every projection for every row (2 per
    multiply-add), causal attention (q.k and p.v over the positions up to each row), the head for
    the last row only."""
    tables = _tables(graph)
    matrices = sum(w.rows * w.cols for w in graph.weights
                   if w.rows > 1 and w.label not in tables and w.label not in ("wpe.weight", "rope.cos_sin"))
    head = sum(w.rows * w.cols for w in graph.head_table)
    k = graph.k
    attention = graph.cfg.n_layer * k.NH * k.HD * 2 * (n * (n + 1) // 2)
    return 2 * (n * matrices + head + attention)


def dispatch_bytes(graph, d, ctx: int) -> int:
    """Bytes dispatch `d` of a decode step at position `ctx` reads: the weights it binds (one row
    of a token table or of the rotary table) and, for the attention, the KV cache."""
    weights = {w.label: w for w in graph.weights}
    n = 0
    for name, label in d.bind:
        if label in weights:
            w = weights[label]
            n += row_bytes(w.cols, w.dtype) if d.name == "embedding" or name == "rope_table" else w.nbytes
        elif d.name == "attention" and label.startswith("kv_cache"):
            n += 2 * graph.k.KVH * (ctx + 1) * graph.k.HD * 4
    return n


def against_roofline(out: dict, graph) -> None:
    """Decode figures as bytes read per second and fractions of the read roofline, prefill figures
    as TFLOP/s and fractions of the FMA rate (added to `out` in place)."""
    roof = out.get("roofline") or {}
    read, fma = roof.get("read_gbs"), roof.get("fma_tflops")
    if not read:
        return
    dec = {}
    for ctx, one in out["decode"].items():
        nbytes = decode_bytes_read(graph, int(ctx))
        entry = {"bytes": nbytes, "roofline_ms": round(nbytes / read / 1e6, 4)}
        for key, figures in (("one_step", one), ("chained", out["decode_chained"].get(ctx))):
            if figures:
                gbs = nbytes / (figures["ms_median"] / 1000) / 1e9
                entry[key] = {"ms": figures["ms_median"], "gbs": round(gbs, 3), "fraction": round(gbs / read, 4)}
        dec[ctx] = entry
    out["decode_vs_roofline"] = dec
    stamps = out.get("gpu_timestamps")
    if stamps and stamps.get("pass_ms"):
        nbytes = decode_bytes_read(graph, stamps["context"])
        gbs = nbytes / (stamps["pass_ms"] / 1000) / 1e9
        stamps["gbs"] = round(gbs, 3)
        stamps["fraction_of_read_roofline"] = round(gbs / read, 4)
    times = out.get("kernel_times")
    if times:
        for e in times["kernels"].values():
            e["fraction_of_read_roofline"] = (round(e["bytes"] / (e["ms"] / 1000) / 1e9 / read, 4) if e["ms"] > 0
                                              else None)
        gbs = times["bytes"] / (times["sum_ms"] / 1000) / 1e9 if times["sum_ms"] else 0
        times["fraction_of_read_roofline"] = round(gbs / read, 4)
    if fma:
        for n, v in out["prefill"].items():
            flops = prefill_flops(graph, int(n))
            tflops = flops / (v["ms"] / 1000) / 1e12
            # significant digits, not decimals: a tiny model's prefill is a few GFLOP/s
            v.update({"gflop": float(f"{flops / 1e9:.4g}"), "tflops": float(f"{tflops:.4g}"),
                      "fraction_of_fma": float(f"{tflops / fma:.4g}")})


def _live_decode(model) -> list:
    """Indices of the dispatches a decode step runs (graph.decode + graph.tail with workgroups)."""
    counts = model.decode_counts()
    return [i for i in range(len(model.graph.decode) + len(model.graph.tail)) if all(counts[3 * i:3 * i + 3])]


def dispatch_floor_us(roof: dict, graph, d, ctx: int) -> float:
    """The least dispatch `d` of a decode step at position `ctx` could take in a chain: its bytes
    (dispatch_bytes) in the time the windowed read stream takes for that many, not under an empty
    dispatch's cost (app/roofline.py stream_us; `roof`: the roofline)."""
    return stream_us(roof["read_by_size"], dispatch_bytes(graph, d, ctx), min(roof["dispatch_us"].values()))


def decode_stream_floor_ms(model, ctx: int, roof: dict) -> float:
    """The least a decode step at position `ctx` made of these dispatches could take in one chain."""
    steps = model.graph.decode + model.graph.tail
    return sum(dispatch_floor_us(roof, model.graph, steps[i], ctx) for i in _live_decode(model)) / 1000


async def kernel_times(model, ctx: int, reps: int = 10, roof: dict | None = None) -> dict | None:
    """Each dispatch of a decode step at context `ctx` timed on the GPU: every dispatch in its own
    compute pass with timestamps at its start and end, `reps` runs (after one untimed), the median
    per dispatch; summed by kernel name with the bytes it reads (dispatch_bytes) as GB/s. The sum
    leaves out what a whole step adds between dispatches (gpu_timestamps' pass_ms less this sum).
    With `roof` (app/roofline.py roofline), each kernel's `stream_floor_ms`: its dispatches' bytes
    at the windowed read stream's time (a chain in one pass, where these are timed a pass each).
    None without "timestamp-query"."""
    gpu, graph = model.gpu, model.graph
    if "timestamp-query" not in gpu.features:
        return None
    steps = graph.decode + graph.tail
    counts = model.decode_counts()
    live = _live_decode(model)[:QUERY_SET_MAX // 2]
    n = 2 * len(live)
    query_set = gpu.device.createQuerySet(_js_obj({"type": "timestamp", "count": n}))
    resolved = gpu.buffer(n * 8, QUERY_RESOLVE | COPY_SRC, "kernel timestamps")
    ctx = max(1, min(ctx, model.n_ctx - 2))
    per = [[] for _ in live]
    try:
        model.reset()
        await model.prefill(_ids(ctx, model.cfg.vocab_size), k=1)
        model.write_step([1], model.pos, 5, 0.0)  # every run re-runs the step at this position
        descriptors = [_js_obj({"timestampWrites": _js_obj({"querySet": query_set, "beginningOfPassWriteIndex": 2 * j,
                                                            "endOfPassWriteIndex": 2 * j + 1})})
                       for j in range(len(live))]
        for rep in range(reps + 1):
            encoder = gpu.device.createCommandEncoder()
            for j, i in enumerate(live):
                pipe, group = model.decode_plan.steps[i]
                cpass = encoder.beginComputePass(descriptors[j])
                cpass.setPipeline(pipe)
                cpass.setBindGroup(0, group)
                cpass.dispatchWorkgroups(*counts[3 * i:3 * i + 3])
                cpass.end()
            encoder.resolveQuerySet(query_set, 0, n, resolved, 0)
            gpu.submit(encoder)
            ns = struct.unpack(f"<{n}Q", await gpu.read(resolved, n * 8))
            if rep:
                for j in range(len(live)):
                    per[j].append(max(0, ns[2 * j + 1] - ns[2 * j]))
        gpu.check()
    finally:
        query_set.destroy()
        gpu.free(resolved)
        model.reset()
    if not any(any(p) for p in per):
        return None
    kernels: dict = {}
    for j, i in enumerate(live):
        d = steps[i]
        entry = kernels.setdefault(model.decode_names[i], {"dispatches": 0, "ms": 0.0, "bytes": 0})
        entry["dispatches"] += 1
        entry["ms"] += _median(per[j]) / 1e6
        entry["bytes"] += dispatch_bytes(graph, d, ctx)
        if roof and roof.get("read_by_size"):
            entry["stream_floor_ms"] = entry.get("stream_floor_ms", 0.0) + dispatch_floor_us(roof, graph, d, ctx) / 1000
    total = sum(e["ms"] for e in kernels.values())
    for e in kernels.values():
        e["gbs"] = round(e["bytes"] / (e["ms"] / 1000) / 1e9, 3) if e["ms"] > 0 else None
        e["share"] = round(e["ms"] / total, 4) if total else None
        e["ms"] = round(e["ms"], 4)
        if "stream_floor_ms" in e:
            e["stream_floor_ms"] = round(e["stream_floor_ms"], 4)
    return {"context": ctx, "reps": reps, "dispatches": len(live), "sum_ms": round(total, 4),
            "bytes": sum(e["bytes"] for e in kernels.values()), "kernels": kernels}


async def _time_plan(model, plan, counts, reps: int) -> float:
    """Median seconds to submit `plan` with workgroup `counts` and wait for the GPU to finish it."""
    from pyodide.ffi import to_js  # noqa: PLC0415 - only in Pyodide

    gpu = model.gpu
    counts_js = to_js(list(counts))
    times = []
    for _ in range(reps):
        encoder = gpu.device.createCommandEncoder()
        gpu.encode(plan, counts_js, encoder)
        t0 = time.perf_counter()
        gpu.submit(encoder)
        await gpu.queue.onSubmittedWorkDone()
        times.append(time.perf_counter() - t0)
    gpu.check()
    return _median(times)


async def profile(model, kind: str = "decode", length: int = 128, reps: int = 20, k: int = 1) -> dict:
    """Where a decode step (at context `length`) or a prefill run (of `length` rows) spends its time.

    The run is timed whole, then once per kernel with every dispatch of that kernel left out (its
    workgroup counts set to 0): the difference is the kernel's share, its work plus the barrier in
    front of it, summed over the layers. `empty_ms` is a submit + wait with no dispatch at all.
    Leaving kernels out feeds the rest stale data, which changes no kernel's amount of work.
    `k`: candidates the top-k kernels find."""
    V = model.cfg.vocab_size
    model.reset()
    if kind == "decode":
        ctx = max(1, min(length, model.n_ctx - 1))
        await model.prefill(_ids(ctx, V), k=1)
        model.write_step([1], model.pos, k, 0.0)  # the step re-runs at this position every time
        plan, counts, names = model.decode_plan, model.decode_counts(), model.decode_names
    else:
        rows = max(1, min(length, model.chunk))
        model.write_step(_ids(rows, V), 0, k, 0.0)
        plan, counts, names = model.prefill_plan, model.prefill_counts(rows), model.prefill_names
    await _time_plan(model, plan, counts, 2)  # warm
    whole = await _time_plan(model, plan, counts, reps)
    empty = await _time_plan(model, plan, [0] * len(counts), reps)
    out = {"kind": kind, "length": length, "whole_ms": round(whole * 1000, 3), "empty_ms": round(empty * 1000, 3),
           "kernels": {}}
    for name in dict.fromkeys(names):
        masked = list(counts)
        n = 0
        for i, step_name in enumerate(names):
            if step_name == name and all(counts[3 * i:3 * i + 3]):
                masked[3 * i:3 * i + 3] = [0, 0, 0]
                n += 1
        if n:
            without = await _time_plan(model, plan, masked, reps)
            out["kernels"][name] = {"dispatches": n, "ms": round((whole - without) * 1000, 3)}
    model.reset()
    return out
