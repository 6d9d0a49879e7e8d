"""Kernel shapes: how the kernels are laid out on one adapter, chosen once per device.

A GPU wants many workgroups and reductions through workgroup memory; a CPU adapter (SwiftShader,
or any software fallback) runs workgroups on a few threads, where each extra workgroup and barrier
costs far more than a serial loop, so it gets barrier-free variants and a few workgroups that stride
over the work (see the shaders' headers). The value is frozen and handed to the model graph and the
buffer plan; benchmarks pass overrides (tools/bench.py --tuning) instead of editing globals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import InputError

CPU_GROUPS_UNKNOWN = 4  # a CPU adapter's decode workgroups where the machine's processors are not known
CPU_GROUPS_MAX = 16


def cpu_groups_for(cpu_threads: int | None) -> int:
    """Workgroups per decode dispatch on a CPU adapter: one per logical processor. SwiftShader runs a
    dispatch's workgroups as tasks on one worker thread per processor, so a dispatch lasts as long as
    its busiest worker: on 2 processors (GPT-2 117M f32, the decode step's kernels summed, 2026-12-05)
    1 / 2 / 3 / 4 / 8 workgroups took 246 / 136 / 171 / 136-160 / 149-162 ms, 4 now and then giving
    one worker three (the LM head 40 -> 56-59 ms, the whole step's pass 144 -> 160-164)."""
    if not cpu_threads:
        return CPU_GROUPS_UNKNOWN
    return max(1, min(CPU_GROUPS_MAX, int(cpu_threads)))


@dataclass(frozen=True)
class KernelShapes:
    cpu: bool                    # barrier-free CPU-adapter kernels
    linear_gemv_rows: int        # linear.wgsl GEMV output rows per workgroup, a power of two
    head_lanes: int              # LM-head invocations per vocabulary row (1: no reduction)
    cpu_groups: int              # workgroups per decode dispatch on a CPU adapter
    prefill_chunk: int           # prompt rows per prefill run (Stop is checked between runs)
    split_k_depth: int           # k per split of a long prefill projection (GPU; at most SPLIT_K_MAX splits)
    fused_norms: bool            # decode: each LayerNorm / RMSNorm fused into the GEMV after it (GPU);
                                 # else its own dispatch (a CPU adapter: see for_adapter)
    split_attention: bool        # decode attention split over blocks of ATT_BLOCK positions (GPU)
    tiled_attention: bool        # flash-attention-style prefill where the tiles fit (GPU)
    # Decode GEMV variants on a GPU (linear.wgsl gemv, lm_head.wgsl), off by default until measured;
    # a CPU adapter ignores them (its one invocation per row reads whole blocks):
    gemv_wide_f16: bool = False  # F16 / BF16 rows as blocks of 8 halves, one 16-byte load each (K % 8 == 0)
    gemv_unroll: int = 1         # packs or segments a lane loads before multiplying them: 1, 2, 4 or 8
    gemv_unroll_paired: int = 4  # the same, at most, when a lane reads two rows (gate|up) or a block
                                 # format: with 8 Llama-1B's decode pass on the H200 (2026-12-04) took
                                 # 1.92 ms against 1.40 for F16 (8 loads of each of two rows: registers),
                                 # 1.85 against 1.68 for Q8_0 and 1.38 against 1.36 for Q4_0, where GPT-2
                                 # XL F16 (one row, floats) went 3.06 -> 2.92
    gemv_stage_blocks: int = 0   # Q8_0 / Q4_1 GEMV: blocks of each row staged through workgroup
                                 # memory at a time (0: not staged; fewer where the memory is short)
    gemv_copy_input: bool = False  # a GEMV's plain input row (down) copied into workgroup memory once
                                   # per workgroup, where it fits, instead of read once per output row
    gemv_deep_rows: int = 0      # output rows per workgroup of a GEMV that reads its input as it is and
                                 # has K > deep_gemv_k (Llama's down, GPT-2's MLP projection): more
                                 # lanes to a row's long K (0: linear_gemv_rows, as every GEMV)
    deep_gemv_k: int = 2048      # the depth past which a GEMV counts as deep (gemv_deep_rows)
    gemv_row_tile: int = 1       # output rows per GEMV lane from the same input reads: 1, 2 or 4 (not with
                                 # staging; unrolling gives way to the rows' own loads in flight); on a
                                 # CPU adapter also 8 (F32 only: see row_tile), the invocation's rows adjacent

    @classmethod
    def for_adapter(cls, is_cpu: bool, overrides: dict | None = None, cpu_threads: int | None = None) -> "KernelShapes":
        """The default shapes for a CPU adapter or a GPU, with `overrides` ({field: value}; also
        the older spellings no_split_attention / no_tiled_attention) applied. `cpu_threads`: the
        machine's logical processors, where known (a CPU adapter's decode dispatches get a workgroup
        per processor: cpu_groups_for)."""
        overrides = dict(overrides or {})
        cpu = bool(overrides.pop("cpu", is_cpu))
        if cpu:
            # One invocation per output row (no reduction, no barrier); a prefill chunk of 128
            # keeps Stop responsive at SwiftShader's speed. Norms not fused: a GEMV reading its
            # input from workgroup memory ran 1.1-1.25 GB/s where one reading it from a buffer ran
            # 1.6-1.7 (SwiftShader, GPT-2 117M f32: the step 331 -> 292 ms chained, 2026-12-04).
            # Four rows per invocation, the input read once for them: the 117M f32 step 326 -> 198
            # ms (GPU pass; 2 rows: 259). Eight for F32 (row_tile), each row's sum one f32 (dot
            # products; vec4 sums of eight rows were slower): GEMVs 2.0-2.4 -> 2.2-2.9 GB/s, the LM
            # head 2.7 -> 2.9 (2026-12-05, BENCH.md; 16 rows no better). Workgroups: cpu_groups_for.
            shapes = cls(cpu=True, linear_gemv_rows=256, head_lanes=1, cpu_groups=cpu_groups_for(cpu_threads),
                         prefill_chunk=128, split_k_depth=768, fused_norms=False, split_attention=False,
                         tiled_attention=False, gemv_row_tile=8)
        else:
            # A 512-row prefill chunk gives fewer round trips and enough output tiles to fill the
            # chip; split K at ~768 deep (GPT-2 117M's 3072-deep MLP projection ran 2.5 of 8.4 ms of
            # a 512-row prefill as one serial loop per tile). Decode GEMV variants on the H200
            # (Llama-1B, GPU pass ms for F16 / Q4_0 / Q8_0, BENCH.md): as they were 1.94 / 1.57 /
            # 2.13; 4 loads per lane before the math 1.39 / 1.43 / 1.65 (2 loads: 1.50 / 1.48 /
            # 1.74); 16-byte F16 loads alone 1.55 for F16; staging the blocks through workgroup
            # memory (16 or 64 blocks) 1.75-1.92 for Q4_0, copying down's input row 2.39 for F16:
            # slower, so left off. Two or four rows per lane (gemv_row_tile) 1.88 / 1.87 for F16 and
            # 1.52 / 1.82 for Q4_0 against 1.39 / 1.39 (2026-12-04): left off. 8 loads per lane for
            # one row of floats (4 for two rows or a block format, app/kernels.py): GPT-2 XL F16
            # 3.06 -> 2.92 ms, Llama-1B F16 1.38 -> 1.34 (2026-12-04).
            # 4 rows per workgroup (64 lanes a row) for a deep GEMV with a plain input (2026-12-04,
            # GPU pass ms: Llama-1B F16 1.32 -> 1.28, Q4_0 1.31 -> 1.22 (its down 24 -> 19 us), GPT-2 XL
            # 2.93 -> 2.78, 117M 0.518 -> 0.495; 2 rows 1.48 / 1.24 for Llama, 1 row 1.28 for Q4_0).
            shapes = cls(cpu=False, linear_gemv_rows=8, head_lanes=8, gemv_unroll=8, cpu_groups=4, prefill_chunk=512,
                         split_k_depth=768, fused_norms=True, split_attention=True, tiled_attention=True,
                         gemv_deep_rows=4)
        for old, new in (("no_split_attention", "split_attention"), ("no_tiled_attention", "tiled_attention")):
            if old in overrides:
                overrides[new] = not overrides.pop(old)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"unknown kernel-shape override(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return replace(shapes, **overrides).checked()

    def row_tile(self, fmt: str) -> int:
        """GEMV / LM-head rows per lane for a matrix stored as `fmt`: gemv_row_tile, on a CPU adapter at
        most 4 for any format but F32, whose 8 rows an invocation unpacked or dequantized slower
        (SwiftShader, 2026-12-05, ms a step with 4 -> 8 rows: SmolLM2-135M Q4_1 qkv 23.7 -> 36.5,
        o_proj 17.3 -> 26.5, down 32.5 -> 49.9; the same shape in F16 gate|up 95.8 -> 105.8, down
        52.9 -> 58.7)."""
        return min(self.gemv_row_tile, 4) if self.cpu and fmt != "F32" else self.gemv_row_tile

    def checked(self) -> "KernelShapes":
        for name in ("linear_gemv_rows", "head_lanes", "gemv_deep_rows"):
            value = getattr(self, name)
            if name == "gemv_deep_rows" and value == 0:
                continue
            if not (isinstance(value, int) and 1 <= value <= 256 and value & (value - 1) == 0):
                raise InputError(f"kernel shape {name} must be a power of two from 1 to 256, got {value!r}")
        if self.gemv_row_tile not in ((1, 2, 4, 8) if self.cpu else (1, 2, 4)):
            raise InputError(f"kernel shape gemv_row_tile must be 1, 2, 4{', 8' if self.cpu else ''} "
                             f"(8 on a CPU adapter only), got {self.gemv_row_tile!r}")
        for name in ("gemv_unroll", "gemv_unroll_paired"):
            if getattr(self, name) not in (1, 2, 4, 8):
                raise InputError(f"kernel shape {name} must be 1, 2, 4 or 8, got {getattr(self, name)!r}")
        if not (isinstance(self.gemv_stage_blocks, int) and 0 <= self.gemv_stage_blocks <= 256):
            raise InputError(f"kernel shape gemv_stage_blocks must be an integer from 0 to 256, "
                             f"got {self.gemv_stage_blocks!r}")
        for name in ("gemv_wide_f16", "gemv_copy_input", "fused_norms"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"kernel shape {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("cpu_groups", "prefill_chunk", "split_k_depth", "deep_gemv_k"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise InputError(f"kernel shape {name} must be a positive integer, got {value!r}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)
