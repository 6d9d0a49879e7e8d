"""The Python/WGSL contract, in CPython: every constant and binding the model graphs name exists in
the shader they target, the shared structs pack as the shaders declare them, and the buffer plan
covers every buffer the graphs bind, for GPT-2 shapes on both kinds of adapter."""

from __future__ import annotations

import dataclasses
import re

import pytest

from app import contract, wgsl
from app.buffer_plan import LOAD_CHUNK_BYTES, BufferPlan, WeightSpec, load_staging_bytes
from app.config import GPT2Config
from app.errors import LoadError
from app.kernels import kernel
from app.model import GPT2
from app.shapes import KernelShapes
from app.weights import STAGING_BYTES

LIMITS = {"maxComputeWorkgroupStorageSize": 16384, "maxStorageBufferBindingSize": 1 << 27, "maxBufferSize": 1 << 28}
KERNEL_FILES = ["attention.wgsl", "embedding.wgsl", "layer_norm.wgsl", "linear.wgsl", "lm_head.wgsl", "topk.wgsl"]
GPT2_SHAPES = [  # (n_layer, n_head, n_embd, n_positions, vocab_size, dtype)
    (2, 4, 64, 256, 65, "F16"),
    (12, 12, 768, 1024, 50257, "F32"),   # GPT-2 small: the token table split over two buffers in f32
    (3, 5, 120, 77, 2049, "BF16"),       # a vocabulary one past a top-k chunk
]


def graphs():
    for layers, heads, embd, positions, vocab, dtype in GPT2_SHAPES:
        cfg = GPT2Config(n_layer=layers, n_head=heads, n_embd=embd, n_positions=positions, vocab_size=vocab)
        for cpu in (True, False):
            yield GPT2(cfg, KernelShapes.for_adapter(cpu), LIMITS, matrix_dtype=dtype)


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_every_declared_constant_is_used_and_every_used_name_is_declared(name):
    """A kernel's header declares its constants; each is used in the code, and the code uses no
    upper-case name that is neither declared, shared (app/contract.py) nor defined in the file."""
    source = wgsl.kernel_source(name)  # with the files it includes
    declared = wgsl.kernel_file(name).constants
    assert declared, f"{name} declares no constants"
    code = re.sub(r"//[^\n]*", "", source)
    common = re.sub(r"//[^\n]*", "", wgsl.shader_source(wgsl.COMMON))
    for constant in declared:
        assert re.search(rf"\b{constant}\b", code), f"{name} declares {constant} but never uses it"
    defined = set(re.findall(r"\bconst\s+(\w+)", code + common)) | set(contract.SHARED_CONSTANTS)
    used = set(re.findall(r"(?<![.\w])([A-Z][A-Z0-9_]+)\b", code))
    assert not used - set(declared) - defined, f"{name} uses undeclared {sorted(used - set(declared) - defined)}"


def test_every_graph_dispatch_names_real_constants_and_bindings():
    """Building a graph checks each kernel's constants against its header and each bound name
    against the entry point's bindings (read from the .wgsl file); here, every bound buffer is one
    the plan allocates, and the module source of every pipeline assembles."""
    for graph in graphs():
        plan = BufferPlan.of(graph)
        labels = {b.label for b in plan.buffers}
        for d in graph.all_dispatches():
            bindings = d.kernel.bindings()
            for name, label in d.bind:
                assert name in bindings, (d.name, name)
                assert label in labels, (d.name, label)
            assert "struct Step" in d.kernel.source()


def test_a_wrong_constant_or_binding_is_refused_before_any_gpu_call():
    with pytest.raises(wgsl.ShaderContractError, match="missing N_CTX"):
        kernel("attention.wgsl", "attention", "F32", C=8, NH=2, KVH=2, HD=4, SCALE=0.5, ATT_GROUPS=2, ATT_SPLITS=1)
    with pytest.raises(wgsl.ShaderContractError, match="not declared by the shader: BOGUS"):
        kernel("layer_norm.wgsl", "layer_norm", "F32", C=8, C4=2, EPS=1e-5, BOGUS=1)
    with pytest.raises(wgsl.ShaderContractError, match="no entry point"):
        kernel("layer_norm.wgsl", "no_such_entry", "F32", C=8, C4=2, EPS=1e-5)
    from app.kernels import dispatch
    k = kernel("layer_norm.wgsl", "layer_norm", "F32", C=8, C4=2, EPS=1e-5)
    with pytest.raises(wgsl.ShaderContractError, match="has no binding wrong"):
        dispatch("ln", k, (1, 1, 1), step="step", wrong="x")
    with pytest.raises(wgsl.ShaderContractError, match="f32"):
        wgsl.module_source("layer_norm.wgsl", wgsl.WEIGHT_SNIPPETS["F32"], {"C": 8, "C4": 2, "EPS": float("inf")})


def test_a_cpu_f32_gemv_declares_exactly_what_it_reads_and_the_plan_binds_at_least_that():
    """A CPU adapter's F32 decode GEMV declares its weights (N_W rows of K / 4 packs) and its input row
    with their lengths: a shorter declaration would clamp the loads past it to the last element, a
    wrong answer with no error. The plan checks every such binding's buffer holds the declared bytes,
    and refuses a graph that binds a smaller one; GPU kernels and other formats stay runtime-sized."""
    cfg = GPT2Config(n_layer=1, n_head=12, n_embd=768, n_positions=64, vocab_size=300)
    for cpu, dtype in ((False, "F32"), (True, "F16"), (True, "F32")):  # the CPU F32 graph last: see below
        graph = GPT2(cfg, KernelShapes.for_adapter(cpu), LIMITS, matrix_dtype=dtype)
        gemvs = {d.name.split("+")[-1]: d for d in graph.decode if d.kernel.entry == "gemv"}  # ln_1+qkv: qkv
        assert set(gemvs) == {"qkv", "attn_proj", "mlp_fc", "mlp_proj"}
        for name, d in gemvs.items():
            K, N = d.kernel.values["K"], d.kernel.values["N"]
            if not (cpu and dtype == "F32"):
                assert d.kernel.fixed == () and "array<WPack>;" in d.kernel.source(), (cpu, dtype, name)
                continue
            assert d.kernel.fixed == (("w", N * K // 4), ("x", K // 4)), name
            assert d.kernel.fixed_bytes() == {"w": N * K * 4, "x": K * 4}
            source = d.kernel.source()
            assert f"var<storage, read> w: array<WPack, {N * K // 4}>;" in source
            assert f"var<storage, read> x: array<vec4<f32>, {K // 4}>;" in source
        BufferPlan.of(graph)  # every bound buffer holds what its kernel declares
    fc = gemvs["mlp_fc"]
    short = dataclasses.replace(fc, kernel=dataclasses.replace(fc.kernel, fixed=(("w", 768 * 3072 // 4 + 1),)))
    graph.decode[graph.decode.index(fc)] = short
    with pytest.raises(wgsl.ShaderContractError, match="mlp_fc .* reads 9437200 bytes of binding 'w'"):
        BufferPlan.of(graph)
    with pytest.raises(wgsl.ShaderContractError, match="no read-only runtime-sized array binding 'y'"):
        wgsl.module_source("linear.wgsl", wgsl.WEIGHT_SNIPPETS["F32"], fc.kernel.values, (("y", 4),))


def test_bindings_are_the_ones_each_entry_point_uses():
    """As WebGPU's automatic layout sees them: through the functions an entry point calls, and not
    through a member or swizzle of the same name (v.w is not the binding w)."""
    assert set(wgsl.entry_bindings("linear.wgsl", "gemv")) == {"step", "x", "w", "bias", "y", "norm_w", "norm_b",
                                                                "kv"}
    assert set(wgsl.entry_bindings("linear.wgsl", "linear_tiled")) == {"step", "x", "w", "bias", "y", "kv"}
    assert set(wgsl.entry_bindings("topk.wgsl", "topk_merge")) == {"step", "logits", "part", "out", "seen"}
    assert wgsl.entry_bindings("embedding.wgsl", "embed")["chain"].writable is False


def test_step_and_topk_layouts():
    raw = contract.pack_step([7, 8, 9], pos0=5, k=3, temperature=0.5, top_k=2, top_p=0.9, draw=0.25)
    assert len(raw) == contract.step_bytes(3) == contract.STEP_HEADER.size + 12
    assert contract.STEP_HEADER.unpack(raw[:contract.STEP_HEADER.size])[:5] == (3, 5, 3, 0.5, 2)
    # values beyond what the GPU holds mean the same there
    header = contract.STEP_HEADER
    big = header.unpack(contract.pack_step([1], 0, k=10**9, temperature=1e300, top_k=2**40)[:header.size])
    assert big[2] == contract.KMAX and big[4] == contract.KMAX and big[3] == pytest.approx(contract.F32_MAX, rel=1e-6)
    fields = [name for name, _, _ in contract.STEP_FIELDS]
    text = contract.step_struct_wgsl()
    assert [m for m in re.findall(r"^\s+(\w+):", text, re.M)] == fields + ["ids"]
    # choice, 3 ids, 3 logits, M, S, the weights before the choice and its own
    words = [4, 10, 11, 12, 0x40000000, 0x3F800000, 0x41200000, 0, 0, 0x3F000000, 0x3E800000, 0, 0]
    raw = b"".join(w.to_bytes(4, "little") for w in words)
    chosen, ids, logits, m, s, placed = contract.unpack_topk(raw, 3)
    assert (chosen, ids, logits, placed) == (4, [10, 11, 12], [2.0, 1.0, 10.0], (0.5, 0.25, 0.0, 0.0))
    assert len(raw) == contract.topk_output_bytes(3)


def test_workgroup_memory_is_read_from_the_shaders():
    """The attention kernel keeps a row of scores: its bytes grow with N_CTX, and the graph's context
    stops where they pass the adapter's limit (what the loader's check and the runner agree on)."""
    small = wgsl.workgroup_bytes("attention.wgsl", "attention", {"N_CTX": 100, "HD": 64})
    large = wgsl.workgroup_bytes("attention.wgsl", "attention", {"N_CTX": 200, "HD": 64})
    assert large - small == 400
    assert wgsl.workgroup_bytes("attention.wgsl", "attention_tiled", {"N_CTX": 1, "HD": 64}) == 4 * (48 * 64 + 256)
    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=64, n_positions=8192, vocab_size=10)
    shapes = KernelShapes.for_adapter(False, {"no_tiled_attention": True})
    graph = GPT2(cfg, shapes, LIMITS, matrix_dtype="F32")
    limit = LIMITS["maxComputeWorkgroupStorageSize"]
    fits = wgsl.workgroup_bytes("attention.wgsl", "attention", {"N_CTX": graph.n_ctx, "HD": 32})
    over = wgsl.workgroup_bytes("attention.wgsl", "attention", {"N_CTX": graph.n_ctx + 1, "HD": 32})
    assert fits <= limit < over and graph.notices, graph.notices


def test_plan_limits_name_the_buffer_or_kernel_over_them():
    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=64, n_positions=16, vocab_size=300_000)
    graph = GPT2(cfg, KernelShapes.for_adapter(True), {**LIMITS, "maxStorageBufferBindingSize": 1 << 20},
                 matrix_dtype="F32")
    plan = BufferPlan.of(graph)
    with pytest.raises(LoadError, match="logits needs 1,200,000 bytes") as err:
        plan.check_limits(graph.limits, "config.json")
    assert err.value.code == "too_large"
    assert [w.rows for w in graph.table] == [4096] * 73 + [300_000 - 4096 * 73]  # whole rows per buffer


class FileTensor:
    """What the plan reads of a file's tensor: its dtype and shape."""

    def __init__(self, dtype: str, shape: tuple):
        self.dtype, self.shape = dtype, shape


def test_the_plan_sizes_the_load_staging_buffer_from_the_files_tensors():
    """The staging buffer that transpose-, quantize- and regroup-on-load read from is in the plan:
    the largest source chunk (a whole source under STAGING_BYTES, else an even count of whole units
    of it), 3 bytes of padding, rounded to 16; nothing for sources written as they are."""
    cfg = GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
    graph = GPT2(cfg, KernelShapes.for_adapter(True), LIMITS, matrix_dtype="F32")
    # GPT-2's Conv1D matrices [in, out] in f16, transposed and widened on load; the largest are c_fc
    # [768, 3072] and mlp.c_proj [3072, 768], one chunk each.
    tensors = {w.sources[0]: FileTensor("F16", (w.cols, w.rows)) for w in graph.weights if w.transposed}
    assert len(tensors) == 4 * 12
    largest = max(w.rows * w.cols * 2 for w in graph.weights if w.transposed)
    plan = BufferPlan.of(graph, tensors)
    assert plan.load_staging == contract.buffer_size(largest + 3) == 4_718_608
    assert plan.peak == plan.total + plan.load_staging + LOAD_CHUNK_BYTES
    assert BufferPlan.of(graph).load_staging == 0  # no file's tensors yet (the config-time check)

    # a token table quantized to Q8_0 from f32 goes in chunks: 2^18 blocks of 32 f32 values, 32 MiB
    big = WeightSpec("table", ("table",), 300_000, 64, "Q8_0")
    per = STAGING_BYTES // 128 // 2 * 2
    assert load_staging_bytes([big], {"table": FileTensor("F32", (300_000, 64))}) == contract.buffer_size(
        per * 128 + 3)
    # a file's Q4_0 regrouped: its 18-byte blocks, whole; kept as stored: no staging
    q4 = WeightSpec("q", ("q",), 6, 64, "Q4_0")
    assert load_staging_bytes([q4], {"q": FileTensor("Q4_0", (6, 64))}) == contract.buffer_size(6 * 2 * 18 + 3)
    kept = WeightSpec("k", ("k",), 6, 64, "Q8_0")
    assert load_staging_bytes([kept], {"k": FileTensor("Q8_0", (6, 64))}) == 0
    # a staging buffer over the device's buffer limit is refused before any allocation
    with pytest.raises(LoadError, match="staging buffer of") as err:
        BufferPlan([], {}, 1 << 28).check_limits(LIMITS, "model.safetensors")
    assert err.value.code == "too_large"


def test_decode_reads_each_weight_once_and_one_row_of_each_table():
    cfg = GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
    graph = GPT2(cfg, KernelShapes.for_adapter(False), {**LIMITS, "maxStorageBufferBindingSize": 1 << 30,
                                                        "maxBufferSize": 1 << 30}, matrix_dtype="F16")
    C, M, V, L = 768, 3072, 50257, 12
    matrices = L * (C * 3 * C + C * C + C * M + M * C) + V * C
    vectors = L * (4 * C + 3 * C + C + M + C) + 2 * C
    assert graph.decode_weight_bytes() == matrices * 2 + vectors * 4 + 2 * C * 2
    assert graph.dispatches_per_decode_step == 5 * L + 4 <= 6 * L + 4


def test_a_fused_matrix_whose_parts_mix_formats_runs_one_dispatch_per_format():
    """llama.cpp's Q4_K_M keeps some layers' attn_v (and ffn_down) in Q6_K, their q and k in Q4_K:
    that layer's q|k|v becomes a q|k matrix and a v matrix, each in its own format and buffer (the
    buffer plan counts their packed bytes), run as one GEMV each writing its columns of the qkv
    output (and one linear per format in prefill); a gate|up in two formats decodes through two GEMVs
    and swiglu.wgsl. Layers of one format keep one dispatch each: a decode step has one dispatch more
    per extra part of a q|k|v and two more per split gate|up (llama.cpp's mixes split only q|k|v:
    within app/contract.py decode_dispatch_limit)."""
    import json

    from app.config import config_from_json
    from app.gguf_load import weight_formats
    from app.model import Llama
    from app.weights import matrix_bytes

    cfg = config_from_json(json.dumps({
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 64}),
        "config.json")
    p = "model.layers.1."
    for cpu in (False, True):
        shapes = KernelShapes.for_adapter(cpu)
        plain = Llama(cfg, shapes, LIMITS, matrix_dtype="F16")
        stored = {s: "Q4_K" for w in plain.weights for s in w.sources}
        stored |= {p + "self_attn.v_proj.weight": "Q6_K", p + "mlp.down_proj.weight": "Q6_K",
                   "model.layers.2.mlp.up_proj.weight": "Q8_0"}
        dtype, formats = weight_formats(plain.weights, stored)
        assert dtype == "Q4_K"
        graph = Llama(cfg, shapes, LIMITS, matrix_dtype=dtype, formats=formats)
        weights = {w.label: w for w in graph.weights}
        assert (weights[p + "self_attn.q_k_proj.weight"].rows, weights[p + "self_attn.q_k_proj.weight"].dtype) == \
            (256 + 128, "Q4_K")
        assert weights[p + "self_attn.v_proj.weight"].dtype == weights[p + "mlp.down_proj.weight"].dtype == "Q6_K"
        assert p + "self_attn.qkv_proj.weight" not in weights and "model.layers.0.self_attn.qkv_proj.weight" in weights
        assert weights["model.layers.2.mlp.up_proj.weight"].dtype == "Q8_0"
        shapes_of = {"q": (256, 256), "k": (128, 256), "v": (128, 256), "o": (256, 256), "gate": (512, 256),
                     "up": (512, 256), "down": (256, 512)}
        tensors = {f"model.layers.{i}.{'self_attn' if n in 'qkvo' else 'mlp'}.{n}_proj.weight": shape
                   for i in range(3) for n, shape in shapes_of.items()}
        layer_matrices = [w for w in graph.weights if w.label.startswith("model.layers.") and w.rows > 1]
        assert sum(w.nbytes for w in layer_matrices) == sum(matrix_bytes(*shape, stored[name])
                                                            for name, shape in tensors.items())
        plan = {b.label: b.nbytes for b in BufferPlan.of(graph).buffers}
        assert all(plan[w.label] == contract.buffer_size(w.nbytes) for w in layer_matrices)
        qkv_name, gate_up_name = graph.fused_name("rms_norm_1", "qkv"), graph.fused_name("rms_norm_2", "gate_up")
        qkv = [d for d in graph.decode if d.name == qkv_name]
        layer1 = [(d.kernel.weights, d.kernel.values["N"], d.kernel.values["Y_COL0"], d.kernel.values["Y_COLS"],
                   dict(d.bind)["w"]) for d in qkv[1:3]]
        assert layer1 == [("Q4_K", 384, 0, 512, p + "self_attn.q_k_proj.weight"),
                          ("Q6_K", 128, 384, 512, p + "self_attn.v_proj.weight")]
        assert len(qkv) == 4 and len([d for d in graph.prefill if d.name == "qkv"]) == 4, qkv_name
        gate_up = [d for d in graph.decode if d.name in (gate_up_name, "swiglu")]
        assert [(d.name, d.kernel.weights) for d in gate_up[2:]] == [
            (gate_up_name, "Q4_K"), (gate_up_name, "Q8_0"), ("swiglu", "Q4_K")]
        assert graph.dispatches_per_decode_step == plain.dispatches_per_decode_step + 3
    with pytest.raises(wgsl.ShaderContractError, match="swiglu epilogue writes whole rows"):
        graph.k.linear_gemv("gate_up", 256, 256, "swiglu", "Q4_K", y_cols=512, y_col0=256, step="step", x="x",
                            w="w", y="h")


def test_a_cpu_adapter_gives_each_processor_one_workgroup_of_a_decode_dispatch():
    """SwiftShader runs a dispatch's workgroups on one worker thread per logical processor: a decode
    GEMV and LM head get as many workgroups as the machine has processors (navigator.hardwareConcurrency,
    clamped to 1..16), and 4 where that is unknown; a GPU's shapes do not depend on it."""
    from app.shapes import CPU_GROUPS_MAX, CPU_GROUPS_UNKNOWN, cpu_groups_for
    assert [cpu_groups_for(n) for n in (None, 0, 1, 2, 3, 8, 64)] == [CPU_GROUPS_UNKNOWN, CPU_GROUPS_UNKNOWN, 1, 2, 3,
                                                                       8, CPU_GROUPS_MAX]
    cfg = GPT2Config(n_layer=1, n_head=12, n_embd=768, n_positions=64, vocab_size=50257)
    for threads in (2, 8, None):
        graph = GPT2(cfg, KernelShapes.for_adapter(True, cpu_threads=threads), LIMITS, matrix_dtype="F32")
        counts = {d.name: d.counts()[0] for d in graph.decode + graph.tail if d.kernel.entry in ("gemv", "lm_head")}
        assert set(counts.values()) == {cpu_groups_for(threads)}, (threads, counts)
    assert KernelShapes.for_adapter(True, {"cpu_groups": 3}, cpu_threads=2).cpu_groups == 3  # an override wins
    assert KernelShapes.for_adapter(False, cpu_threads=2) == KernelShapes.for_adapter(False, cpu_threads=64)


def test_decode_gemv_variants_apply_on_a_gpu_where_they_fit():
    """The decode GEMV variants (app/shapes.py) change a GPU's kernels only: 16-byte loads for F16 /
    BF16 rows of a multiple of 8, staging for Q8_0 / Q4_1 in chunks shrunk until the workgroup
    memory fits the adapter's limit; a CPU adapter's kernels stay as they are; bad values are refused."""
    from app.errors import InputError
    from app.kernels import Kernels

    on = {"gemv_wide_f16": True, "gemv_unroll": 4, "gemv_stage_blocks": 64}

    def gemv(fmt, K, cpu=False, limit=16384):
        k = Kernels(KernelShapes.for_adapter(cpu, on), fmt, C=K, n_head=K // 64, head_dim=64, n_ctx=64, eps=1e-5,
                    workgroup_limit=limit)
        return k.linear_gemv("gemv", K, 8192, "swiglu", fmt, rms_input=True, step="step", x="x", w="w", y="y").kernel

    assert gemv("F16", 2048).snippet == "weights_f16_wide.wgsl"
    assert gemv("BF16", 960).snippet == "weights_bf16_wide.wgsl"
    assert gemv("F16", 196).snippet == "weights_f16_packed.wgsl"  # K % 8 != 0
    assert gemv("F16", 2048).values["GEMV_UNROLL"] == 4
    small, large = gemv("Q4_1", 2048), gemv("Q4_1", 2048, limit=49152)
    assert 0 < small.values["STAGE_BLOCKS"] < large.values["STAGE_BLOCKS"] == 64
    assert small.workgroup_bytes() <= 16384 < gemv("Q4_1", 2048, limit=16384 * 8).workgroup_bytes()
    assert gemv("Q4_0", 2048, limit=49152).values["STAGE_BLOCKS"] == 0  # aligned on the GPU: never staged
    assert gemv("Q8_0", 576, limit=49152).values["STAGE_BLOCKS"] == 576 // 32  # never more than a row
    assert gemv("Q4_K", 2048).values["STAGE_BLOCKS"] == 0

    def down(fmt, limit):  # a plain input row, K = 8192: 32 KB copied
        k = Kernels(KernelShapes.for_adapter(False, {**on, "gemv_copy_input": True}), fmt, C=2048, n_head=32,
                    head_dim=64, n_ctx=64, eps=1e-5, workgroup_limit=limit)
        return k.linear_gemv("down", 8192, 2048, "residual", fmt, step="step", x="x", w="w", y="y").kernel

    assert not down("F16", 16384).values["COPY_INPUT"] and down("F16", 49152).values["COPY_INPUT"]
    for limit in (40960, 49152):  # 32 KB of input leave room for fewer blocks, or for all 64
        copied = down("Q4_1", limit)
        assert copied.values["COPY_INPUT"] and copied.workgroup_bytes() <= limit, copied.values
        assert 0 < copied.values["STAGE_BLOCKS"] < 64 if limit == 40960 else copied.values["STAGE_BLOCKS"] == 64
    for fmt in ("F16", "Q4_0"):
        cpu = gemv(fmt, 2048, cpu=True)
        assert (cpu.wide, cpu.values["GEMV_UNROLL"], cpu.values["STAGE_BLOCKS"], cpu.values["COPY_INPUT"]) == (
            False, 1, 0, False)
    # a CPU adapter's rows an invocation (8 for F32, else 4: KernelShapes.row_tile) take no reduction
    # memory (the GPU's grows with the rows a lane: 8 rows of a 2048-deep GEMV would pass 16 KB)
    def cpu_gemv(fmt, tile):
        k = Kernels(KernelShapes.for_adapter(True, {"gemv_row_tile": tile}), fmt, C=2048, n_head=32, head_dim=64,
                    n_ctx=64, eps=1e-5)
        return k.linear_gemv("gemv", 2048, 8192, "swiglu", fmt, rms_input=True, step="step", x="x", w="w",
                             y="y").kernel
    assert [cpu_gemv(fmt, 8).values["GEMV_ROW_TILE"] for fmt in ("F32", "F16", "Q4_0")] == [8, 4, 4]
    assert cpu_gemv("F32", 8).workgroup_bytes() == cpu_gemv("F32", 1).workgroup_bytes() <= 16384
    for bad in ({"gemv_unroll": 3}, {"gemv_stage_blocks": -1}, {"gemv_wide_f16": 1}, {"gemv_copy_input": "yes"},
                {"gemv_row_tile": 8}):
        with pytest.raises(InputError, match=next(iter(bad))):
            KernelShapes.for_adapter(False, bad)
