"""Thin WebGPU wrapper for Python running in Pyodide (browser page, worker or Node + Dawn).

Everything GPU-specific that the model needs lives here: adapter and device, buffers, compute
pipelines built from `shaders/*.wgsl`, bind groups, and command encoding. The model layer above
talks only to this module; nothing here touches the DOM, so the same code runs in Node.

Costs worth knowing: each Python -> JS call through the FFI costs microseconds, and converting a
Python dict into a JS object costs more. So descriptors are converted once, at set-up time, and the
per-token path replays a prepared list of dispatches in a single JS call (`web/replay.js`).
"""

from __future__ import annotations

import json

import js  # provided by Pyodide: the JS global scope (window, worker or Node's globalThis)
from pyodide.ffi import create_proxy, to_js

from .contract import buffer_size
from .errors import DeviceLostError, GPUError, WebGPUUnavailable

# GPUBufferUsage / GPUMapMode bits are fixed by the WebGPU spec; using the numbers avoids relying on
# globals that Node's Dawn binding only installs when asked.
MAP_READ = 0x0001
COPY_SRC = 0x0004
COPY_DST = 0x0008
UNIFORM = 0x0040
STORAGE = 0x0080
QUERY_RESOLVE = 0x0200
MAP_MODE_READ = 0x0001

FEATURES_OF_INTEREST = ("shader-f16", "subgroups", "timestamp-query")
LIMITS_OF_INTEREST = (
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxComputeWorkgroupStorageSize",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX",
    "maxComputeWorkgroupsPerDimension",
    "maxStorageBuffersPerShaderStage",
    "minStorageBufferOffsetAlignment",
)

LINUX_HINT = (
    "Use a browser with WebGPU: Chrome or Edge 113+ (on Linux start it with "
    "--enable-unsafe-webgpu --enable-features=Vulkan, or enable chrome://flags/#enable-unsafe-webgpu), "
    "Firefox 141+ on Windows, or Safari 26+. The page must be served over http://localhost or https."
)


def _js_obj(d: dict):
    """A Python dict -> plain JS object (set-up time only)."""
    return to_js(d, dict_converter=js.Object.fromEntries)


def is_null(value) -> bool:
    """JS null and undefined: Pyodide 314 maps null to a JsNull object, not None."""
    return value is None or type(value).__name__ in ("JsNull", "JsUndefined")


class GPU:
    """One adapter + device, with helpers that keep JS conversions out of hot paths."""

    def __init__(self, adapter, device, adapter_info: dict, features: list[str], limits: dict,
                 cpu_threads: int | None = None):
        self.adapter = adapter
        self.cpu_threads = cpu_threads       # the machine's logical processors (navigator.hardwareConcurrency)
        self.device = device
        self.queue = device.queue
        self.adapter_info = adapter_info
        self.features = features
        self.limits = limits
        self.errors: list[str] = []          # uncaptured validation / out-of-memory errors
        self.lost_reason: str | None = None  # set once the device is lost
        self.on_error = None                 # optional callback(message) for the UI
        self.on_lost = None                  # optional callback(message)
        self.live_buffers = 0                # created minus destroyed, for leak checks
        self.bytes_allocated = 0
        self._modules: dict = {}
        self._pipelines: dict = {}
        self._proxies = []
        self._install_error_handlers()
        replay = getattr(js.globalThis, "pywebgptReplay", None)
        self._replay = None if is_null(replay) else replay

    @property
    def is_cpu(self) -> bool:
        """A software adapter (SwiftShader, or any fallback adapter): it runs workgroups on a few
        CPU threads, where each extra workgroup and barrier costs far more than on a GPU."""
        info = self.adapter_info
        return "swiftshader" in " ".join(str(v) for v in info.values()).lower()

    # ----------------------------------------------------------------------------- creation
    @classmethod
    async def create(cls, power_preference: str = "high-performance") -> "GPU":
        navigator = getattr(js.globalThis, "navigator", None)
        gpu = None if is_null(navigator) else getattr(navigator, "gpu", None)
        if is_null(gpu):
            raise WebGPUUnavailable("This browser does not expose WebGPU (navigator.gpu is missing). " + LINUX_HINT)
        adapter = await gpu.requestAdapter(_js_obj({"powerPreference": power_preference}))
        if is_null(adapter):
            raise WebGPUUnavailable(
                "WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted). " + LINUX_HINT
            )
        features = [f for f in FEATURES_OF_INTEREST if adapter.features.has(f)]
        # The defaults (128 MiB per binding, 256 MiB per buffer) are too small for GPT-2's embedding
        # table, so ask for everything the adapter offers.
        required_limits = {
            "maxStorageBufferBindingSize": adapter.limits.maxStorageBufferBindingSize,
            "maxBufferSize": adapter.limits.maxBufferSize,
            "maxComputeWorkgroupStorageSize": adapter.limits.maxComputeWorkgroupStorageSize,
            "maxStorageBuffersPerShaderStage": adapter.limits.maxStorageBuffersPerShaderStage,
        }
        try:
            device = await adapter.requestDevice(
                _js_obj({"requiredFeatures": to_js(features), "requiredLimits": _js_obj(required_limits)})
            )
        except Exception as exc:  # a JS error crosses as JsException
            raise WebGPUUnavailable(f"The GPU adapter refused to create a device: {exc}. " + LINUX_HINT) from exc
        info = getattr(adapter, "info", None)
        adapter_info = {
            key: ("" if is_null(info) else str(getattr(info, key, "") or ""))
            for key in ("vendor", "architecture", "device", "description")
        }
        limits = {}
        for key in LIMITS_OF_INTEREST:
            value = getattr(device.limits, key, None)
            if value is not None:
                limits[key] = int(value)
        threads = getattr(navigator, "hardwareConcurrency", None)
        cpu_threads = int(threads) if isinstance(threads, (int, float)) and threads >= 1 else None
        return cls(adapter, device, adapter_info, features, limits, cpu_threads)

    def _install_error_handlers(self):
        def on_uncaptured(event):
            message = str(getattr(event.error, "message", event.error))
            self.errors.append(message)
            js.console.error("WebGPU error: " + message)
            if self.on_error is not None:
                self.on_error(message)

        def on_lost(lost_info):
            reason = str(getattr(lost_info, "reason", "unknown"))
            message = str(getattr(lost_info, "message", ""))
            self.lost_reason = f"{reason}: {message}".strip(": ")
            if reason != "destroyed":
                js.console.error("WebGPU device lost: " + self.lost_reason)
            if self.on_lost is not None:
                self.on_lost(self.lost_reason)

        handler = create_proxy(on_uncaptured)
        lost = create_proxy(on_lost)
        self._proxies += [handler, lost]
        self.device.addEventListener("uncapturederror", handler)
        self.device.lost.then(lost)

    def info(self) -> dict:
        return {"adapter": dict(self.adapter_info), "features": list(self.features), "limits": dict(self.limits)}

    def check(self):
        """Raise the first GPU error seen since the last check: errors are surfaced, never swallowed."""
        if self.lost_reason is not None:
            raise DeviceLostError(f"The GPU device was lost ({self.lost_reason}). Reload the model to continue.",
                                  self.lost_reason)
        if self.errors:
            first, self.errors = self.errors[0], []
            raise GPUError(f"WebGPU reported an error: {first}")

    async def confirm_lost(self, timeout_s: float = 10.0) -> bool:
        """True if the device is lost, waiting up to `timeout_s` for device.lost to settle: after a
        destroy() or a driver reset, the failed call (a rejected mapAsync) can come first, and on a
        busy software adapter device.lost may settle a second or more later. Only failures wait."""
        import asyncio  # noqa: PLC0415
        import time  # noqa: PLC0415

        deadline = time.perf_counter() + timeout_s
        while self.lost_reason is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        return self.lost_reason is not None

    def destroy(self):
        """Destroy the device (lost or not) and drop the event handlers' proxies."""
        try:
            self.device.destroy()
        except Exception:  # noqa: BLE001 - a lost device may refuse; nothing is left to free
            pass
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies = []

    # ----------------------------------------------------------------------------- buffers
    def buffer(self, nbytes: int, usage: int, label: str = ""):
        nbytes = buffer_size(nbytes)
        if nbytes > self.limits.get("maxBufferSize", nbytes):
            raise GPUError(f"buffer {label!r} needs {nbytes} bytes, over this GPU's maxBufferSize "
                           f"{self.limits['maxBufferSize']}")
        buf = self.device.createBuffer(_js_obj({"size": nbytes, "usage": usage, "label": label}))
        self.live_buffers += 1
        self.bytes_allocated += nbytes
        return buf

    def storage(self, nbytes: int, label: str = "", readable: bool = False):
        usage = STORAGE | COPY_DST | (COPY_SRC if readable else 0)
        return self.buffer(nbytes, usage, label)

    def free(self, buf):
        if buf is not None:
            self.bytes_allocated -= int(buf.size)
            buf.destroy()
            self.live_buffers -= 1

    def write(self, buf, data, offset: int = 0):
        """Upload bytes-like data (Python) or a JS ArrayBuffer / typed array (no wasm copy)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = to_js(memoryview(data).cast("B"))
        self.queue.writeBuffer(buf, offset, data)

    def write_js(self, buf, offset: int, array_buffer, src_offset: int, nbytes: int):
        """Copy a slice of a JS ArrayBuffer straight into a GPU buffer (weights: never via wasm)."""
        self.queue.writeBuffer(buf, offset, array_buffer, src_offset, nbytes)

    async def read(self, buf, nbytes: int, offset: int = 0) -> bytes:
        """Copy `nbytes` from a COPY_SRC buffer to a staging buffer and return them as bytes."""
        staging = self.buffer(nbytes, MAP_READ | COPY_DST, "readback")
        try:
            encoder = self.device.createCommandEncoder()
            encoder.copyBufferToBuffer(buf, offset, staging, 0, (nbytes + 3) // 4 * 4)
            self.queue.submit(to_js([encoder.finish()]))
            await self.map_read(staging)
            data = staging.getMappedRange(0, (nbytes + 3) // 4 * 4).to_py()
            staging.unmap()
            return bytes(data)[:nbytes]
        finally:
            self.free(staging)

    async def map_read(self, staging):
        try:
            await staging.mapAsync(MAP_MODE_READ)
        except Exception as exc:
            self.check()
            raise GPUError(f"reading results back from the GPU failed: {exc}") from exc

    # ----------------------------------------------------------------------------- pipelines
    def shader_module(self, code: str, label: str = ""):
        """A shader module for WGSL `code`, cached by its text (app/kernels.py Kernel.source)."""
        module = self._modules.get(code)
        if module is None:
            module = self.device.createShaderModule(_js_obj({"code": code, "label": label}))
            self._modules[code] = module
        return module

    def pipeline(self, module, entry_point: str, label: str = ""):
        """A compute pipeline with an automatic layout, cached by (module, entry point)."""
        key = (id(module), entry_point)
        pipe = self._pipelines.get(key)
        if pipe is None:
            pipe = self.device.createComputePipeline(
                _js_obj({"layout": "auto", "compute": _js_obj({"module": module, "entryPoint": entry_point}),
                         "label": label})
            )
            self._pipelines[key] = pipe
        return pipe

    def bind_group(self, pipeline, entries: dict, label: str = ""):
        """Bind `entries[i]` (a buffer, or (buffer, byte offset, bytes) for a window of one) to
        @binding(i) of @group(0)."""
        def resource(b):
            if isinstance(b, tuple):
                buf, offset, size = b
                return _js_obj({"buffer": buf, "offset": offset, "size": size})
            return _js_obj({"buffer": b})

        js_entries = [_js_obj({"binding": i, "resource": resource(b)}) for i, b in sorted(entries.items())]
        return self.device.createBindGroup(
            _js_obj({"layout": pipeline.getBindGroupLayout(0), "entries": to_js(js_entries), "label": label})
        )

    # ----------------------------------------------------------------------------- dispatch
    def plan(self, steps: list) -> "Plan":
        """Prepare a list of (pipeline, bind_group) pairs to replay with per-run workgroup counts."""
        return Plan(self, steps)

    def encode(self, plan: "Plan", counts: list[int], encoder=None, pass_descriptor=None):
        """Record the plan into one compute pass; `counts` holds x, y, z for each step.
        `pass_descriptor`: a JS GPUComputePassDescriptor (timestampWrites, for app/bench.py); None
        reaches JS as undefined, the default pass."""
        own = encoder is None
        if own:
            encoder = self.device.createCommandEncoder()
        if self._replay is not None:
            self._replay(encoder, plan.js_steps, to_js(counts, create_pyproxies=False), plan.count, pass_descriptor)
        else:  # plain Python fallback: same effect, a few FFI calls per step
            cpass = encoder.beginComputePass(pass_descriptor)
            for i, (pipe, group) in enumerate(plan.steps):
                x, y, z = counts[3 * i: 3 * i + 3]
                if x and y and z:
                    cpass.setPipeline(pipe)
                    cpass.setBindGroup(0, group)
                    cpass.dispatchWorkgroups(x, y, z)
            cpass.end()
        if own:
            self.queue.submit(to_js([encoder.finish()]))
        return encoder

    def submit(self, encoder):
        self.queue.submit(to_js([encoder.finish()]))

    def run(self, pipeline, bind_group, x: int, y: int = 1, z: int = 1):
        """One-off dispatch (tests, set-up); hot paths use plans."""
        self.encode(Plan(self, [(pipeline, bind_group)]), [x, y, z])


class Plan:
    """A fixed list of (pipeline, bind group) steps, converted to JS once."""

    def __init__(self, gpu: GPU, steps: list):
        self.steps = list(steps)
        self.count = len(self.steps)
        self.js_steps = to_js([[p, g] for p, g in self.steps])


def json_info(gpu: GPU) -> str:
    return json.dumps(gpu.info())
