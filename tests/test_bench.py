"""tools/bench.py end to end in headless Chromium (SwiftShader), on a tiny model folder and on tiny
synthetic models (random weights made on the GPU, Q4_0 and F16): the JSON object it prints carries
every figure of a BENCH.md row, the roofline measured in the same run (read bandwidth, FMA rate) and
every decode / prefill figure set against it, per-dispatch GPU times whose bytes add up to what a
step reads; the counts are within the per-step budgets, and the chained and one-step sampled
generations agreed on their tokens (bench.py fails otherwise). Times are only checked to be measured
(positive) and fractions to be fractions, never compared: speed lives in BENCH.md."""

from __future__ import annotations

import json
import subprocess
import sys

from app.contract import CHAIN_DEPTH_MAX, decode_dispatch_limit, topk_output_bytes
from app.synthetic import DISPATCH_GROUPS
from bench import BENCH_HEADER, bench_md_row
from conftest import ROOT
from tools.make_model import cached_model

TINY = dict(n_layer=2, n_head=2, n_embd=64, n_positions=512, vocab_size=100, tokenizer="char", seed=3)


def test_bench_prints_every_figure(tmp_path_factory):
    model = cached_model(tmp_path_factory.getbasetemp() / "models", **TINY)
    bench_md = (ROOT / "BENCH.md").read_text()
    cmd = [sys.executable, str(ROOT / "tools/bench.py"), "--model", str(model), "--no-bench-md", "--commit", "test",
           "--prompts", "5,20", "--contexts", "4,20", "--steps", "3", "--generate-tokens", "6", "--profile"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (ROOT / "BENCH.md").read_text() == bench_md, "--no-bench-md appended a row"

    assert row["runtime"] == "browser" and row["commit"] == "test" and row["dtype"] == "F32"
    assert row["parameters"] > 0 and row["gpu_bytes"] > 0 and row["ready_ms"] > 0 and row["ttft_ms"] > 0
    assert row["load_cold_s"] > 0 and row["load_warm_s"] > 0
    assert list(row["prefill"]) == ["5", "20"] and all(v["tokens_per_s"] > 0 for v in row["prefill"].values())
    for key in ("decode", "decode_chained"):
        assert list(row[key]) == ["4", "20"], row[key]
        assert all(0 < v["ms_median"] <= v["ms_p90"] for v in row[key].values()), row[key]
    # chained at every queue depth, and at the deepest in submits of several steps
    assert list(row["decode_chained_by_depth"]) == [str(d) for d in range(1, CHAIN_DEPTH_MAX + 1)]
    per_submit = [int(n) for n in row["decode_chained_by_steps_per_submit"]]
    assert per_submit[0] == 1 and len(per_submit) > 1 and all(2 * n <= CHAIN_DEPTH_MAX for n in per_submit)
    assert all(ms > 0 for ms in [*row["decode_chained_by_depth"].values(),
                                 *row["decode_chained_by_steps_per_submit"].values()])
    # a decode step within its budgets (dispatches <= decode_dispatch_limit, only the k = 5 candidates
    # read back, few Python -> JS calls), as counted by the benchmark itself (SwiftShader: norms unfused)
    assert row["dispatches_per_decode_step"] <= row["dispatch_limit"] == decode_dispatch_limit(2, fused_norms=False)
    assert row["readback_bytes_per_decode_step"] == topk_output_bytes(5)
    assert 0 < row["ffi_calls_per_decode_step"] <= 12
    sampled = row["generate_sampled_ms_per_token"]
    assert sampled["tokens"] == 6 and sampled["chained"] > 0 and sampled["one_step"] > 0
    assert sampled["logits_read"] == 0, "top-k 40 of 100 tokens: the candidates decide"
    assert {"top_k_penalty", "top_p", "in_id_order_penalty"} <= set(sampled["settings"])
    for name, figures in sampled["settings"].items():
        assert figures["chained"] > 0 and figures["one_step"] > 0, (name, figures)
    assert 0 <= sampled["settings"]["in_id_order_penalty"]["logits_read"] <= 6
    assert row["weight_gbs_at_first_context"] > 0 and row["copy_gbs"] > 0
    assert 0 < row["fraction_of_copy_bandwidth"] and 0 < row["fraction_of_copy_bandwidth_chained"]
    # GPU timestamps at the start and end of each decode step's pass (SwiftShader has timestamp-query)
    stamps = row["gpu_timestamps"]
    assert stamps["context"] == 4 and stamps["pass_ms"] > 0 and stamps["start_to_start_ms"] > 0, stamps
    decode_profile, prefill_profile = row["profile"]
    assert decode_profile["kind"] == "decode" and prefill_profile["kind"] == "prefill"
    assert sum(k["dispatches"] for k in decode_profile["kernels"].values()) == row["dispatches_per_decode_step"]
    # the row BENCH.md would get has a cell for every column
    md = bench_md_row(row)
    assert md.count("|") == BENCH_HEADER.splitlines()[0].count("|") == BENCH_HEADER.splitlines()[1].count("|")
    check_roofline_figures(row)


def check_roofline_figures(row: dict) -> None:
    roof = row["roofline"]
    assert roof["read_gbs"] > 0 and roof["fma_tflops"] > 0 and roof["copy_gbs"] > 0, roof
    assert roof["read_gbs"] == max(s["gbs"] for s in roof["read_shapes"]) and roof["read_bytes"] > 0
    assert set(roof["dispatch_us"]) == {str(g) for g in DISPATCH_GROUPS}, roof
    assert all(us > 0 for us in roof["dispatch_us"].values()), roof
    # the stream cut into windows, one dispatch each: a larger window takes longer (a window bound
    # wrongly, the whole buffer each time, would take as long at every size)
    by_size = roof["read_by_size"]
    assert len(by_size) >= 2 and all(r["us"] > 0 and r["gbs"] > 0 and r["windows"] >= 2 for r in by_size), by_size
    assert [r["bytes"] for r in by_size] == sorted(r["bytes"] for r in by_size)
    assert all(a["us"] < b["us"] for a, b in zip(by_size, by_size[1:])), by_size
    assert row["gpu_timestamps"]["stream_floor_ms"] > 0 and row["gpu_timestamps"]["fraction_of_stream_floor"] > 0
    contexts = list(row["decode"])
    assert list(row["decode_vs_roofline"]) == contexts
    for ctx, figures in row["decode_vs_roofline"].items():
        # the KV cache up to the context, on top of the weights
        assert figures["bytes"] > row["weight_bytes_per_decode_step"] > 0, figures
        assert figures["roofline_ms"] > 0
        for key, source in (("one_step", "decode"), ("chained", "decode_chained")):
            assert figures[key]["ms"] == row[source][ctx]["ms_median"]
            # fractions are ratios of two timings: positive, but on a busy 2-core machine either
            # side can be slowed, so no upper bound is asserted (benchmarks report, tests do not time)
            assert figures[key]["gbs"] > 0 and figures[key]["fraction"] > 0, figures
    assert row["gpu_timestamps"]["fraction_of_read_roofline"] > 0, row["gpu_timestamps"]
    for n, figures in row["prefill"].items():
        assert figures["gflop"] > 0 and figures["tflops"] > 0 and figures["fraction_of_fma"] > 0, (n, figures)
    times = row["kernel_times"]
    assert times["dispatches"] == row["dispatches_per_decode_step"]
    assert sum(k["dispatches"] for k in times["kernels"].values()) == times["dispatches"]
    assert times["sum_ms"] > 0 and abs(sum(k["share"] for k in times["kernels"].values()) - 1) < 1e-3, times
    assert all(k["stream_floor_ms"] > 0 for k in times["kernels"].values()), times
    # the dispatches' bytes are the step's: weights (one table row) and the KV cache at that context
    # (each layer's rope dispatch counts the rotary table's row, which the step reads once)
    step_bytes = row["decode_vs_roofline"][str(times["context"])]["bytes"]
    assert abs(times["bytes"] - step_bytes) <= 0.01 * step_bytes, (times, step_bytes)
    md = bench_md_row(row)
    assert md.count("|") == BENCH_HEADER.splitlines()[0].count("|") == BENCH_HEADER.splitlines()[1].count("|")
    assert f"| {roof['read_gbs']} |" in md


def test_bench_synthetic_models_against_the_roofline():
    """No file: the shapes' weights are made on the GPU (valid Q4_0 blocks, random f16)."""
    cmd = [sys.executable, str(ROOT / "tools/bench.py"), "--synthetic", "llama-tiny:q4_0", "--synthetic",
           "gpt2-tiny:f16", "--no-bench-md", "--commit", "test", "--prompts", "5,20", "--contexts", "4,20",
           "--steps", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [(r["model"], r["weight_formats"]) for r in rows] == [("llama-tiny", ["Q4_0"]), ("gpt2-tiny", ["F16"])]
    for row in rows:
        assert row["synthetic"] and row["parameters"] > 0 and row["gpu_bytes"] > row["weight_gpu_bytes"] > 0
        assert row["dispatches_per_decode_step"] <= row["dispatch_limit"]
        check_roofline_figures(row)
