"""Rebuild web/wheels/: the pure-Python wheels of Jinja2 and MarkupSafe that the page installs into
Pyodide when a model's chat template is first rendered (app/wheels.py; web/wheels/README.md says why).

    python3 tools/make_wheels.py

Jinja2 3.1.6 is PyPI's own pure-Python wheel. MarkupSafe has no pure wheel on PyPI (only wheels
with its C speedups, for CPython platforms), so it is built here from its PyPI sdist with the C
compiler made to fail: the sdist's setup.py then takes its own fallback ("Retrying the build
without the C extension"), and markupsafe/__init__.py imports the pure-Python `_native` module
when `_speedups` is missing. SOURCE_DATE_EPOCH and the pinned setuptools make that build
reproducible (the same bytes, the same sha256). Writes web/wheels/manifest.json (name, version,
sha256, size of each wheel) and copies each project's license next to the wheels.
Needs the network (PyPI); the tests never run it, they check the files against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "web" / "wheels"
JINJA2 = ("jinja2", "3.1.6", "jinja2-3.1.6-py3-none-any.whl",
          "85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67")
MARKUPSAFE_SDIST = ("markupsafe", "3.0.3", "markupsafe-3.0.3.tar.gz",
                    "722695808f4b6457b320fdc131280796bdceb04ab50fe1795cd540799ebe1698")
SETUPTOOLS = "setuptools==84.2.1"
SOURCE_DATE_EPOCH = "1758996636"  # the sdist's PKG-INFO mtime


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip_download(spec: str, binary: bool, dest: Path) -> None:
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *kind, spec, "-d", str(dest)], check=True)


def checked(path: Path, want: str) -> Path:
    got = sha256(path)
    if got != want:
        sys.exit(f"error: {path.name} has sha256 {got}, expected {want} (PyPI's published file)")
    return path


def build_markupsafe(work: Path) -> Path:
    name, version, sdist, digest = MARKUPSAFE_SDIST
    pip_download(f"{name}=={version}", binary=False, dest=work)
    with tarfile.open(checked(work / sdist, digest)) as tar:
        tar.extractall(work, filter="data")
    constraints = work / "constraints.txt"
    constraints.write_text(SETUPTOOLS + "\n")
    env = dict(os.environ, CC="false", SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, PIP_CONSTRAINT=str(constraints))
    log = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir",
                          str(work / f"markupsafe-{version}"), "-w", str(work / "built")],
                         env=env, check=True, capture_output=True, text=True)
    if "Plain-Python build succeeded" not in log.stdout + log.stderr:
        sys.exit("error: MarkupSafe's build did not take its pure-Python fallback")
    wheel = work / "built" / f"markupsafe-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        compiled = [n for n in zf.namelist() if n.endswith((".so", ".pyd", ".dylib"))]
    if compiled:
        sys.exit(f"error: the MarkupSafe wheel holds compiled code: {compiled}")
    return wheel


def license_text(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if ".dist-info/licenses/" in n]
        return zf.read(name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pip_download(f"{JINJA2[0]}=={JINJA2[1]}", binary=True, dest=work)
        wheels = [(JINJA2[0], JINJA2[1], checked(work / JINJA2[2], JINJA2[3])),
                  (MARKUPSAFE_SDIST[0], MARKUPSAFE_SDIST[1], build_markupsafe(work))]
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "licenses").mkdir(exist_ok=True)
        entries = []
        for name, version, wheel in wheels:
            shutil.copy2(wheel, OUT / wheel.name)
            (OUT / "licenses" / f"{name}-LICENSE.txt").write_bytes(license_text(wheel))
            entries.append({"name": name, "version": version, "file": wheel.name,
                            "sha256": sha256(wheel), "size": wheel.stat().st_size})
    manifest = {"comment": "written by tools/make_wheels.py; app/wheels.py installs these in this order",
                "wheels": entries}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
