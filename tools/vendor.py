"""Copy the pinned browser runtime (Pyodide, PyScript) from node_modules/ into vendor/.

The page loads nothing from any other origin, so the runtime is served from the site itself.
Run `npm ci` first (package.json pins pyodide@314.0.7 and @pyscript/core@0.7.31).

    python tools/vendor.py [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "vendor"
PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]
PINNED = {"pyodide": "314.0.7", "@pyscript/core": "0.7.31"}


def installed_version(package: str) -> str | None:
    manifest = ROOT / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())["version"]


def ensure_node_modules() -> None:
    if all(installed_version(p) == v for p, v in PINNED.items()):
        return
    if shutil.which("npm") is None:
        sys.exit("error: npm is not installed; install Node.js 20+ and run `npm ci` in " + str(ROOT))
    print("vendor: running npm ci", file=sys.stderr)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    for package, version in PINNED.items():
        if installed_version(package) != version:
            sys.exit(f"error: node_modules/{package} is {installed_version(package)}, expected {version}")


def vendor(force: bool = False) -> Path:
    stamp = VENDOR / "VERSIONS.json"
    if stamp.is_file() and not force and json.loads(stamp.read_text()) == PINNED:
        return VENDOR
    ensure_node_modules()
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    (VENDOR / "pyodide").mkdir(parents=True)
    for name in PYODIDE_FILES:
        shutil.copy2(ROOT / "node_modules" / "pyodide" / name, VENDOR / "pyodide" / name)
    shutil.copytree(ROOT / "node_modules" / "@pyscript" / "core" / "dist", VENDOR / "pyscript",
                    ignore=shutil.ignore_patterns("*.map"))
    stamp.write_text(json.dumps(PINNED))
    return VENDOR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="copy again even if vendor/ is up to date")
    args = parser.parse_args()
    path = vendor(force=args.force)
    print(f"vendor: runtime ready in {path}")


if __name__ == "__main__":
    main()
