"""tools/l2_prefetch_probe.mjs, the L2 prefetch probe, run on SwiftShader through Node + Dawn on its
small shape: it times every pair it would time on a GPU, and its GEMV computes W x to float
rounding, so that a figure it prints on the H200 is the figure of a correct kernel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"


def test_the_probe_times_every_pair_of_a_correct_gemv():
    if shutil.which("node") is None or not (ROOT / "node_modules" / "webgpu").is_dir():
        pytest.fail("node and node_modules/webgpu are needed (npm ci)")
    env = dict(os.environ, REPS="3", SHAPES="small", PF="0,4", SPIN="8,0", WINDOW_MB="1",
               VK_ICD_FILENAMES=SWIFTSHADER_ICD,
               LD_LIBRARY_PATH="/usr/lib/chromium:" + os.environ.get("LD_LIBRARY_PATH", ""))
    env.pop("VK_DRIVER_FILES", None)
    proc = subprocess.run(["node", str(ROOT / "tools" / "l2_prefetch_probe.mjs")], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "swiftshader" in lines[0]["adapter"]
    alone = [r for r in lines[1:] if "gemv_alone_us" in r]
    pairs = [r for r in lines[1:] if "pair_us" in r]
    assert [r["spin"] for r in alone] == [8, 0]
    assert [(r["spin"], r["prefetch_groups"]) for r in pairs] == [(8, 0), (8, 4), (0, 0), (0, 4)]
    assert all(r["pair_us"] > 0 for r in pairs) and all(r["gemv_alone_us"] > 0 for r in alone)
    assert all(r["gemv_rel_err"] <= 1e-5 for r in alone), alone
