"""Every GPU buffer a model needs, and the workgroup memory of every pipeline it runs, listed once.

Standard library only. A model graph (app/model.py) declares its weights, activations and
dispatches; `BufferPlan.of(graph)` adds the dummy buffers for unbound bindings and sums it all up.
The GPU side (app/runner.py) allocates exactly this list, the loader checks it against the
adapter's limits and the memory budget before anything is downloaded, and tests compare it with
what was allocated, byte for byte. Given the file's tensors, the plan also sizes the one buffer that
lives only while the weights load: the staging buffer that quantize-, regroup- and transpose-on-load
read their sources from (its largest chunk), so the budget is checked against the load's peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .contract import buffer_size
from .errors import LoadError
from .weights import gpu_matrix_bytes, load_unit, row_bytes, staging_chunk
from .wgsl import ShaderContractError

USAGES = ("storage", "storage_readable", "readback")  # GPU side: app/runner.py BUFFER_USAGE
LOAD_CHUNK_BYTES = 16  # the buffer a load kernel reads its chunk's range from, beside the staging buffer


@dataclass(frozen=True)
class BufferSpec:
    label: str
    nbytes: int          # as allocated: whole 16-byte units (contract.buffer_size)
    usage: str           # one of USAGES
    kind: str = "activations"  # weights, kv_cache, activations (scratch, logits, read-back, dummies)
    bound: bool = True   # bound to a shader (must fit maxStorageBufferBindingSize)


@dataclass(frozen=True)
class WeightSpec:
    """A weight buffer: rows [row0, row0 + rows) of the tensors `sources`, concatenated by rows
    (one tensor for most; e.g. q, k and v together), stored as `dtype` (a float dtype, or a block
    format of app/weights.py); a vector has cols = its length and rows = 1."""

    label: str
    sources: tuple       # tensor names
    rows: int
    cols: int
    dtype: str           # on the GPU
    row0: int = 0
    # the source tensor is [cols, rows] (HF Conv1D [in, out]) and the GPU keeps it as [rows, cols]
    # (written transposed on load: app/runner.py _transpose)
    transposed: bool = False

    @property
    def nbytes(self) -> int:
        return gpu_matrix_bytes(self.rows, self.cols, self.dtype)


def split_rows(label: str, source: str, rows: int, cols: int, dtype: str, per_buffer: int) -> list:
    """A [rows, cols] table as WeightSpecs of whole rows that each fit `per_buffer` bytes."""
    per = max(1, per_buffer // row_bytes(cols, dtype))
    while per > 1 and gpu_matrix_bytes(per, cols, dtype) > per_buffer:  # a grouped format's padding
        per -= 1
    return [WeightSpec(f"{label}[{r}:{min(rows, r + per)}]", (source,), min(per, rows - r), cols, dtype, r)
            for r in range(0, rows, per)]


def source_rows(w: WeightSpec, t) -> int:
    """Rows that source tensor `t` (with .shape) gives weight `w`, not transposed: rows [row0, row0 +
    rows) of its one source, or the whole of each of several (a vector: 1)."""
    if len(w.sources) == 1:
        return w.rows
    return t.shape[0] if len(t.shape) == 2 else 1


def load_staging_bytes(weights, tensors: dict) -> int:
    """Bytes of the load's staging buffer (app/runner.py), as allocated: the largest chunk of any source
    that goes through it (tensors: name -> an object with .dtype and .shape, the file's); 0 if none."""
    need = 0
    for w in weights:
        for name in w.sources:
            t = tensors.get(name)
            unit = None if t is None else load_unit(w.dtype, t.dtype, w.transposed, w.rows)
            if unit is None:
                continue
            if w.transposed:
                units = w.cols
            else:
                cols = t.shape[-1] if t.shape else 1
                units = source_rows(w, t) * row_bytes(cols, t.dtype) // unit
            need = max(need, staging_chunk(unit, units)[1])
    return buffer_size(need) if need else 0


@dataclass
class BufferPlan:
    buffers: list                        # BufferSpec, weights included, in allocation order
    workgroup: dict = field(default_factory=dict)   # kernel label (with its constants' key) -> bytes
    load_staging: int = 0                # the load's staging buffer (freed when the weights are in)

    @classmethod
    def of(cls, graph, tensors: dict | None = None) -> "BufferPlan":
        buffers = [BufferSpec(w.label, buffer_size(w.nbytes), "storage", "weights") for w in graph.weights]
        buffers += list(graph.buffers)
        ro = rw = 0
        workgroup = {}
        sizes = {b.label: b.nbytes for b in buffers}
        for d in graph.all_dispatches():
            bound = dict(d.bind)
            for name, need in d.kernel.fixed_bytes().items():
                label = bound.get(name)
                if label is None or sizes.get(label, 0) < need:
                    raise ShaderContractError(f"{d.name} ({d.kernel.label}) reads {need} bytes of binding {name!r}, "
                                              f"bound to {label!r} of {sizes.get(label, 0)} bytes")
            unbound = [b for name, b in d.kernel.bindings().items() if name not in bound]
            ro = max(ro, min(1, sum(1 for b in unbound if not b.writable)))
            rw = max(rw, sum(1 for b in unbound if b.writable))
            workgroup[d.kernel] = d.kernel.workgroup_bytes()
        buffers += [BufferSpec("unused read binding", 16, "storage")] * ro
        buffers += [BufferSpec(f"unused write binding {i}", 16, "storage") for i in range(rw)]
        return cls(buffers, workgroup, load_staging_bytes(graph.weights, tensors or {}))

    @property
    def total(self) -> int:
        """Bytes of every buffer the model keeps."""
        return sum(b.nbytes for b in self.buffers)

    @property
    def peak(self) -> int:
        """Bytes while the weights load: what the model keeps and the load's own buffers (the staging
        buffer and its chunk range)."""
        return self.total + (self.load_staging + LOAD_CHUNK_BYTES if self.load_staging else 0)

    def by_kind(self) -> dict:
        """Bytes of weights, KV cache and the rest (activations, read-back, dummies)."""
        out = {"weights": 0, "kv_cache": 0, "activations": 0}
        for b in self.buffers:
            out[b.kind] += b.nbytes
        return out

    def check_limits(self, limits: dict, where: str = "") -> None:
        """Raise LoadError('too_large') naming the buffer or pipeline over the adapter's limits."""
        prefix = f"{where}: " if where else ""
        max_buffer = int(limits.get("maxBufferSize", 1 << 28))
        max_binding = int(limits.get("maxStorageBufferBindingSize", 1 << 27))
        for b in self.buffers:
            limit, name = (min(max_buffer, max_binding), None) if b.bound else (max_buffer, "maxBufferSize")
            if name is None:
                name = "maxStorageBufferBindingSize" if max_binding <= max_buffer else "maxBufferSize"
            if b.nbytes > limit:
                raise LoadError(f"{prefix}the model is too large for this GPU: {b.label} needs {b.nbytes:,} bytes in "
                                f"one GPU buffer, over this device's {name} of {limit:,} bytes", "too_large")
        if self.load_staging > min(max_buffer, max_binding):
            raise LoadError(f"{prefix}the model cannot be loaded on this GPU: a source quantized or transposed on "
                            f"load needs a staging buffer of {self.load_staging:,} bytes, over this device's "
                            f"limit of {min(max_buffer, max_binding):,} bytes for one buffer", "too_large")
        wg_limit = int(limits.get("maxComputeWorkgroupStorageSize", 16384))
        for k, nbytes in self.workgroup.items():
            if nbytes > wg_limit:
                raise LoadError(f"{prefix}the kernel {k.label} needs {nbytes:,} bytes of workgroup memory for this "
                                f"model, over this GPU's {wg_limit:,}", "too_large")
