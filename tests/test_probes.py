"""The design probes (tools/*_probe.mjs: not product code, run on the H200 to choose kernel layouts),
run on SwiftShader through Node + Dawn on small shapes: every kernel they would time on a GPU
computes what it should, to float rounding, and every figure they print is there, so that a figure
printed on the H200 is the figure of a correct kernel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"


def run_probe(script: str, **env: str) -> list:
    """The JSON lines a probe prints on SwiftShader (the adapter first), with `env` set."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "webgpu").is_dir():
        pytest.fail("node and node_modules/webgpu are needed (npm ci)")
    full = dict(os.environ, **env, VK_ICD_FILENAMES=SWIFTSHADER_ICD,
                LD_LIBRARY_PATH="/usr/lib/chromium:" + os.environ.get("LD_LIBRARY_PATH", ""))
    full.pop("VK_DRIVER_FILES", None)
    proc = subprocess.run(["node", str(ROOT / "tools" / script)], capture_output=True, text=True, env=full, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "swiftshader" in lines[0]["adapter"]
    return lines[1:]


def test_every_q4_gemv_layout_computes_the_same_outputs():
    """q4_gemv_probe: each Q4_0 GEMV layout against the first one (linear.wgsl's, nibbles shifted)."""
    rows = [r for r in run_probe("q4_gemv_probe.mjs", REPS="1", SHAPES="small_gate_up,small_down")
            if "skipped" not in r]
    assert {r["shape"] for r in rows} == {"small_gate_up", "small_down"}
    assert not [r for r in rows if "error" in r]
    computed = [r for r in rows if r["rel_err"] is not None]
    # stream_shift, stream, stream_early, stream_defer, the 12 computing blocks variants and the 12
    # computing blocks-of-R-rows variants without subgroups
    assert len(computed) == 2 * 28, [r["variant"] for r in computed]
    for r in computed:
        assert r["us"] > 0
        assert r["rel_err"] <= 1e-6, r
    assert [r["rel_err"] for r in computed if r["variant"] == "stream"] == [0, 0]  # same floats, same order


def test_l2_prefetch_probe_times_every_pair_of_a_correct_gemv():
    """l2_prefetch_probe: every (stand-in, prefetching workgroups) pair timed; its GEMV is W x."""
    lines = run_probe("l2_prefetch_probe.mjs", REPS="3", SHAPES="small", PF="0,4", SPIN="8,0", WINDOW_MB="1")
    alone = [r for r in lines if "gemv_alone_us" in r]
    pairs = [r for r in lines if "pair_us" in r]
    assert [r["spin"] for r in alone] == [8, 0]
    assert [(r["spin"], r["prefetch_groups"]) for r in pairs] == [(8, 0), (8, 4), (0, 0), (0, 4)]
    assert all(r["pair_us"] > 0 for r in pairs) and all(r["gemv_alone_us"] > 0 for r in alone)
    assert all(r["gemv_rel_err"] <= 1e-5 for r in alone), alone


def test_window_stream_probe_times_every_buffer():
    """window_stream_probe: each fresh buffer, the separate buffers and the first buffer again."""
    lines = run_probe("window_stream_probe.mjs", ROUNDS="2", MIB="1", BIG_MIB="4", WINDOWS="2", PASSES="2",
                      WARM_MS="20")
    assert [r["buffer"] for r in lines] == ["big 0", "big 1", "2 separate buffers", "big 0 again"]
    assert all(r["window_us"] > 0 and r["window_mib"] == 1 for r in lines), lines
    assert all(r["whole_tbs"] >= 0 and r["passes"] == 2 for r in lines if r["buffer"].startswith("big")), lines
