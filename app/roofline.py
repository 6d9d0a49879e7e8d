"""What the adapter can do at best, measured through the engine's own GPU code (shaders/roofline.wgsl)
in the same run as a model's figures (app/bench.py sets every decode figure against these):

- `roofline`: the read bandwidth of a streaming kernel (vec4<u32> loads) over a buffer far beyond
  the cache, the f32 FMA rate, the cost of a dispatch that does nothing in a chain of them
  (`dispatch_cost`), and the same stream cut into one dispatch per window of a few MB
  (`read_by_size`): a decode step is a chain of dispatches that each read one matrix, so each pays
  launch, ramp-up and drain on top of its bytes, and the stream at a matrix's size is the most a
  GEMV of that size can reach in such a chain (`stream_us`).
- `fill_random`: random weights in any format (synthetic models), from the same shader.

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import struct
import time

from .gpu import COPY_DST, COPY_SRC, QUERY_RESOLVE, STORAGE, _js_obj
from .kernels import kernel
from .synthetic import DISPATCH_GROUPS, FILL_FORMATS

# (loads in flight per invocation, contiguous range per invocation, workgroups) tried for the read
# roofline; the best counts
READ_SHAPES_GPU = ((1, False, 1024), (4, False, 1024), (1, False, 4096), (4, False, 4096), (1, False, 16384),
                   (4, False, 16384))
READ_SHAPES_CPU = ((4, False, 16), (1, True, 4), (1, True, 16), (1, True, 64), (8, True, 4), (8, True, 16))
# Window sizes (MiB) of `read_by_size`: from a small projection's weights (GPT-2 117M's attention
# projection, 1.2 MB in f16) to beyond the largest (GPT-2 XL's MLP, 20 MB)
READ_WINDOW_MIB_GPU = (0.25, 1, 4, 16, 64)
READ_WINDOW_MIB_CPU = (0.25, 1, 4)
READ_WINDOWS_MAX = 512  # distinct windows a chain cycles through (at least 128 MiB of them on a GPU)


def roofline_kernel(gpu, entry: str, **values):
    """(Kernel, pipeline) of a shaders/roofline.wgsl entry point, built as every engine kernel is."""
    consts = {"READ_UNROLL": 1, "READ_CHUNKED": False, "FMA_ITERS": 1, "FILL_FORMAT": 0, **values}
    k = kernel("roofline.wgsl", entry, "F32", **consts)
    return k, gpu.pipeline(gpu.shader_module(k.source(), k.shader), k.entry, k.label)


def bind_named(gpu, k, pipeline, label: str, **buffers):
    """A bind group of kernel `k` with its bindings given by name (a buffer or (buffer, offset, size))."""
    binding = k.bindings()
    return gpu.bind_group(pipeline, {binding[name].index: buf for name, buf in buffers.items()}, label)


async def time_dispatches(gpu, pipeline, group, groups: int, reps: int) -> dict:
    """`reps` dispatches of (groups, 1, 1) in one compute pass, best of three submissions: the
    GPU's own time between the pass's start and end (timestamp queries, where the adapter has
    them) and the host's from submit to done. `group`: a bind group, or a list of them taken in
    turn (dispatch r binds group[r % len])."""
    bind_groups = group if isinstance(group, list) else [group]
    stamps = "timestamp-query" in gpu.features
    query_set = resolved = None
    if stamps:
        query_set = gpu.device.createQuerySet(_js_obj({"type": "timestamp", "count": 2}))
        resolved = gpu.buffer(16, QUERY_RESOLVE | COPY_SRC, "roofline timestamps")
    try:
        best = {"wall_s": None, "gpu_s": None}
        for _ in range(3):
            encoder = gpu.device.createCommandEncoder()
            desc = _js_obj({"timestampWrites": _js_obj({"querySet": query_set, "beginningOfPassWriteIndex": 0,
                                                         "endOfPassWriteIndex": 1})}) if stamps else None
            cpass = encoder.beginComputePass(desc)
            cpass.setPipeline(pipeline)
            for r in range(reps):
                if r == 0 or len(bind_groups) > 1:
                    cpass.setBindGroup(0, bind_groups[r % len(bind_groups)])
                cpass.dispatchWorkgroups(groups)
            cpass.end()
            if stamps:
                encoder.resolveQuerySet(query_set, 0, 2, resolved, 0)
            t0 = time.perf_counter()
            gpu.submit(encoder)
            await gpu.queue.onSubmittedWorkDone()
            wall = time.perf_counter() - t0
            best["wall_s"] = wall if best["wall_s"] is None else min(best["wall_s"], wall)
            if stamps:
                begin, end = struct.unpack("<2Q", await gpu.read(resolved, 16))
                if end > begin:
                    ns = (end - begin) / 1e9
                    best["gpu_s"] = ns if best["gpu_s"] is None else min(best["gpu_s"], ns)
        gpu.check()
        return best
    finally:
        if query_set is not None:
            query_set.destroy()
            gpu.free(resolved)


def best_seconds(t: dict) -> float:
    return t["gpu_s"] if t["gpu_s"] else t["wall_s"]


async def roofline(gpu, read_bytes: int | None = None) -> dict:
    """The adapter's read bandwidth (GB/s), the same by dispatch size, its f32 FMA rate (TFLOP/s)
    and the cost of an empty dispatch, from shaders/roofline.wgsl.

    Read: a buffer of `read_bytes` (1 GiB on a GPU, far beyond its L2; 64 MiB on a CPU adapter)
    streamed by each (loads in flight, workgroups) shape, `reps` passes over it in one compute pass;
    the best shape is the roofline. FMA: 8 independent vec4 chains per invocation. Each figure is
    the GPU's own time (timestamps) where the adapter has them, else submit-to-done."""
    cpu = gpu.is_cpu
    limit = min(int(gpu.limits.get("maxStorageBufferBindingSize", 1 << 27)),
                int(gpu.limits.get("maxBufferSize", 1 << 28)))
    nbytes = min(read_bytes or ((64 << 20) if cpu else (1 << 30)), limit) // 16 * 16
    src = gpu.buffer(nbytes, STORAGE | COPY_DST, "roofline source")
    sink = gpu.buffer(16, STORAGE, "roofline sink")
    out = {"read_bytes": nbytes, "timing": "gpu timestamps" if "timestamp-query" in gpu.features else "host",
           "read_shapes": []}
    try:
        await fill_random(gpu, src, "F32", seed=7, groups=16 if cpu else 4096)
        reps = 2 if cpu else 20
        for unroll, chunked, groups in READ_SHAPES_CPU if cpu else READ_SHAPES_GPU:
            k, pipeline = roofline_kernel(gpu, "read_stream", READ_UNROLL=unroll, READ_CHUNKED=chunked)
            group = bind_named(gpu, k, pipeline, "roofline read", src=src, sink=sink)
            await time_dispatches(gpu, pipeline, group, groups, 1)  # warm
            t = await time_dispatches(gpu, pipeline, group, groups, reps)
            gbs = nbytes * reps / best_seconds(t) / 1e9
            out["read_shapes"].append({"unroll": unroll, "chunked": chunked, "workgroups": groups, "gbs": round(gbs, 3),
                                       "host_gbs": round(nbytes * reps / t["wall_s"] / 1e9, 3)})
        out["read_gbs"] = max(r["gbs"] for r in out["read_shapes"])
        out["read_by_size"] = await read_by_size(gpu, src, sink, nbytes)
        groups, iters, reps = (16, 256, 2) if cpu else (8192, 512, 5)
        k, pipeline = roofline_kernel(gpu, "fma_rate", FMA_ITERS=iters)
        group = bind_named(gpu, k, pipeline, "roofline fma", sink=sink)
        await time_dispatches(gpu, pipeline, group, groups, 1)
        t = await time_dispatches(gpu, pipeline, group, groups, reps)
        flop = 256 * groups * iters * 128 * reps
        out["fma_tflops"] = round(flop / best_seconds(t) / 1e12, 4)
        out["fma_shape"] = {"workgroups": groups, "iterations": iters,
                            "gflop_per_dispatch": round(flop / reps / 1e9, 2)}
        out["dispatch_us"] = await dispatch_cost(gpu, sink, reps=8 if cpu else 200)
    finally:
        gpu.free(src)
        gpu.free(sink)
    return out


def _window_shapes(cpu: bool, size: int) -> list:
    """(loads in flight, contiguous range, workgroups) tried for one window of `size` bytes: on a
    GPU 4 or 8 loads in flight and 4, 16 or 64 16-byte loads per invocation in all (on the H200 a
    64 MiB window read 1.5 TB/s at 4 loads an invocation, where the LM head's GEMV, 25 loads a lane,
    read 160 MB at 2.6 TB/s: launching workgroups costs as much as their loads); on a CPU adapter
    the whole-buffer shapes."""
    if cpu:
        return list(READ_SHAPES_CPU)
    loads = size // 16
    return [(unroll, False, max(1, -(-loads // (256 * per_invocation))))
            for per_invocation in (4, 16, 64) for unroll in (4, 8)]


async def read_by_size(gpu, src, sink, nbytes: int) -> list:
    """The read stream cut into windows: a chain of dispatches in one compute pass, each reading its
    own window of `src` (windows in turn, at least 128 MiB of them on a GPU, so that no dispatch finds
    its bytes in the cache an earlier one filled), by window size. Each size: microseconds a
    dispatch and GB/s, the best of `_window_shapes`."""
    cpu = gpu.is_cpu
    rows = []
    for mib in READ_WINDOW_MIB_CPU if cpu else READ_WINDOW_MIB_GPU:
        size = int(mib * (1 << 20))
        windows = min(nbytes // size, READ_WINDOWS_MAX)
        if windows < 2:
            continue
        reps = 2 if cpu else windows
        best = None
        for unroll, chunked, groups in _window_shapes(cpu, size):
            k, pipeline = roofline_kernel(gpu, "read_stream", READ_UNROLL=unroll, READ_CHUNKED=chunked)
            groups_of_windows = [bind_named(gpu, k, pipeline, f"roofline window {w}", src=(src, w * size, size),
                                            sink=sink) for w in range(windows)]
            await time_dispatches(gpu, pipeline, groups_of_windows, groups, 1)
            us = best_seconds(await time_dispatches(gpu, pipeline, groups_of_windows, groups, reps)) / reps * 1e6
            if best is None or us < best["us"]:
                best = {"mib": mib, "bytes": size, "us": round(us, 3), "gbs": round(size / us / 1e3, 3),
                        "unroll": unroll, "chunked": chunked, "workgroups": groups, "windows": windows}
        rows.append(best)
    return rows


def stream_us(by_size: list, nbytes: int, least_us: float = 0.0) -> float:
    """Microseconds the windowed read stream (`read_by_size`) takes for one dispatch of `nbytes`:
    linear between the measured sizes (a dispatch costs about a fixed part plus its bytes at a
    rate), and so below the smallest (the two smallest's line, not under `least_us`: an empty
    dispatch's cost); beyond the largest, the rest at the largest's rate."""
    points = sorted((r["bytes"], r["us"]) for r in by_size)
    for (b0, t0), (b1, t1) in zip(points, points[1:]):
        if nbytes <= b1 or (b0, t0) == points[0] and nbytes < b0:
            return max(least_us, t0 + (t1 - t0) * (nbytes - b0) / (b1 - b0))
    b, t = points[-1]
    return t * nbytes / b


async def dispatch_cost(gpu, sink, reps: int) -> dict:
    """Microseconds per dispatch in a chain of `reps` dependent dispatches that do nothing else
    (roofline.wgsl dispatch_step), by workgroup count: the floor under every kernel of a decode
    step, which is such a chain."""
    k, pipeline = roofline_kernel(gpu, "dispatch_step")
    group = bind_named(gpu, k, pipeline, "dispatch cost", sink=sink)
    out = {}
    for groups in DISPATCH_GROUPS:
        await time_dispatches(gpu, pipeline, group, groups, 1)
        t = await time_dispatches(gpu, pipeline, group, groups, reps)
        out[str(groups)] = round(best_seconds(t) / reps * 1e6, 3)
    return out


def queue_fill(gpu, buf, fmt: str, seed: int, spread: float, centre: float, params, label: str = "fill",
               groups: int | None = None) -> None:
    """Queue filling the whole of `buf` with random weights in format `fmt` (roofline.wgsl
    fill_random) through `params`, a 16-byte storage buffer (queue order makes each fill see its own
    seed, spread and centre, so one buffer serves a model's every weight)."""
    words = int(buf.size) // 4
    groups = groups or (16 if gpu.is_cpu else min(65535, -(-words // 256)))
    gpu.write(params, struct.pack("<Iff", seed & 0xFFFFFFFF, spread, centre) + bytes(4))
    k, pipeline = roofline_kernel(gpu, "fill_random", FILL_FORMAT=FILL_FORMATS[fmt])
    gpu.run(pipeline, bind_named(gpu, k, pipeline, label, dst=buf, params=params), groups)


async def fill_random(gpu, buf, fmt: str, seed: int, spread: float = 0.02, centre: float = 0.0,
                      groups: int | None = None) -> None:
    """`queue_fill` through a parameter buffer of its own, waited for and freed."""
    params = gpu.buffer(16, STORAGE | COPY_DST, "fill parameters")
    try:
        queue_fill(gpu, buf, fmt, seed, spread, centre, params, groups=groups)
        await gpu.queue.onSubmittedWorkDone()
    finally:
        gpu.free(params)
