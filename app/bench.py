"""Engine benchmark, run inside the page or the Node runner on a loaded model (tools/bench.py).

Measures what issue 10 asks for with the same code paths users run: prefill tokens/s at several
prompt lengths, decode ms/token (median, p90) at several contexts, one step at a time and chained
as a greedy generation runs them, dispatches / FFI calls / bytes read back per decode step, GPU
memory, and the effective bandwidth of the weight reads of a decode step against a
copyBufferToBuffer measured on the same device in the same run; with the loaded model, whole
generations with the page's default sampling settings, chained and one step at a time.
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import struct
import time

import js

from .contract import KMAX
from .gpu import COPY_DST, COPY_SRC, STORAGE, _js_obj, is_null


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


QUERY_RESOLVE = 0x0200  # GPUBufferUsage.QUERY_RESOLVE


async def chained_steps(model, token: int, steps: int, k: int = 5, pass_descriptor=lambda i: None) -> list:
    """`steps` decode steps chained as a greedy generation runs them (app/generate.py): each is
    queued, fed on the GPU, before the previous one is read, so the round trip to Python overlaps
    the GPU's work. Returns the seconds between consecutive results (the first from the start);
    `pass_descriptor(i)`: step i's compute-pass descriptor (timestamps)."""
    handle = model.submit_decode(token, k=k, pass_descriptor=pass_descriptor(0))
    times, t_prev = [], time.perf_counter()
    for i in range(1, steps + 1):
        ahead = model.submit_decode(None, k=k, pass_descriptor=pass_descriptor(i)) if i < steps else None
        await model.collect(handle)
        now = time.perf_counter()
        times.append(now - t_prev)
        t_prev, handle = now, ahead
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


async def sampled_generation_ms(model, new_tokens: int = 64, prompt_length: int = 16) -> dict:
    """Median ms between tokens of a whole generation (app/generate.py, Python's sampler included)
    with the page's default settings (temperature 0.8, top-k 40), chained and one step at a time;
    both give the same tokens (checked here: a difference is an error, not a figure)."""
    n = max(1, min(new_tokens, model.context - prompt_length - 1))
    ids = _ids(prompt_length, model.config.vocab_size)
    params = dict(prompt_ids=ids, max_new_tokens=n, temperature=0.8, top_k=40, seed=1, stop_on_eos=False)
    out, tokens = {}, {}
    for name, chain in (("one_step", False), ("chained", True), ("one_step", False), ("chained", True)):
        result = await model.complete(chain=chain, **params)
        ms = result.timings["decode_ms_per_token"]
        out[name] = round(min(ms, out.get(name, ms)), 3)  # best of two runs
        tokens.setdefault(name, result.tokens)
    if tokens["chained"] != tokens["one_step"]:
        raise RuntimeError("chained and one-step sampled generations gave different tokens")
    out["tokens"] = n
    return out


async def run(engine_model, prompt_lengths=(16, 128, 512), contexts=(16, 128, 512), decode_steps: int = 20,
              copy_probe: bool = True, generate_tokens: int = 64) -> dict:
    """Every figure for one loaded model (app/engine.py Model)."""
    gpu, model = engine_model.gpu, engine_model.gpu_model
    cfg = model.cfg
    V, n_ctx = cfg.vocab_size, model.n_ctx
    out = {"n_ctx": n_ctx, "dtype": model.weight_dtype, "gpu_bytes": model.gpu_bytes(),
           "dispatches_per_decode_step": model.dispatches_per_decode_step,
           "dispatch_limit": 6 * cfg.n_layer + 4, "prefill": {}, "decode": {}, "decode_chained": {}}
    out["compile_s"] = round(await model.warm_up(), 3)  # no-op cost if already compiled
    await spin_up(model)

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
    out["readback_bytes_per_decode_step"] = model.last_readback_bytes
    out["gpu_timestamps"] = await gpu_decode_times(gpu, model, contexts[0], decode_steps + 3)
    out["gpu_timestamps_k64"] = await gpu_decode_times(gpu, model, contexts[0], decode_steps + 3, k=KMAX)
    if generate_tokens > 0:
        out["generate_sampled_ms_per_token"] = await sampled_generation_ms(engine_model, generate_tokens)
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
        out["fraction_of_copy_bandwidth"] = round(out["weight_gbs_at_first_context"] / copy, 3)
        out["fraction_of_copy_bandwidth_chained"] = round(out["weight_gbs_chained_at_first_context"] / copy, 3)
    model.reset()
    return out


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
