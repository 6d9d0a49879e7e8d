"""tools/q4_gemv_probe.mjs, the Q4_0 GEMV layout probe, run on SwiftShader through Node + Dawn on its
small shapes: every layout it would time on a GPU computes the same outputs as the first one (the
layout linear.wgsl runs, with the nibbles shifted down as before), to float rounding, so that a
figure it prints on the H200 is the figure of a correct kernel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"


def test_every_probe_layout_computes_the_same_outputs():
    if shutil.which("node") is None or not (ROOT / "node_modules" / "webgpu").is_dir():
        pytest.fail("node and node_modules/webgpu are needed (npm ci)")
    env = dict(os.environ, REPS="1", SHAPES="small_gate_up,small_down", VK_ICD_FILENAMES=SWIFTSHADER_ICD,
               LD_LIBRARY_PATH="/usr/lib/chromium:" + os.environ.get("LD_LIBRARY_PATH", ""))
    env.pop("VK_DRIVER_FILES", None)
    proc = subprocess.run(["node", str(ROOT / "tools" / "q4_gemv_probe.mjs")], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "swiftshader" in lines[0]["adapter"]
    rows = [r for r in lines[1:] if "skipped" not in r]
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
