"""Build the deployable static site (what GitHub Pages serves) into a folder, `_site/` by default.

    python3 tools/build_site.py [--out _site]

The site is the page and only what it needs: index.html, pyscript.toml, the service worker sw.js
(offline use), app/, shaders/, web/,
every folder under weights/ (models, and shared files such as gpt2-tokenizer/), and the pinned
browser runtime
in vendor/ (copied from node_modules by tools/vendor.py, which runs `npm ci` when needed). No
tests, no tools. A `.nojekyll` marks the folder as plain files.

GitHub Pages serves a project at https://<user>.github.io/<repo>/, a sub-path, so every URL the
page uses must be relative: the build fails when index.html, pyscript.toml or web/*.js names an
absolute path ("/x") or another origin. Prints a JSON summary (files, bytes, models).
"""

from __future__ import annotations

import argparse
import html.parser
import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import vendor as vendoring  # noqa: E402

PAGE_FILES = ["index.html", "pyscript.toml", "sw.js"]  # sw.js: at the root, to control the whole site
PAGE_DIRS = ["app", "shaders", "web"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.map", "VERSIONS.json")
LFS_POINTER = b"version https://git-lfs"
PAGES_FILE_LIMIT = 100 * 1024 * 1024  # GitHub rejects files over 100 MB
PAGES_SITE_LIMIT = 1024 * 1024 * 1024  # GitHub Pages sites should stay under 1 GB


class BuildError(RuntimeError):
    pass


# --- relative-URL check -----------------------------------------------------------------------

def _url_problem(url: str) -> str | None:
    """Why this URL breaks under a sub-path or leaves the site, or None when it is fine."""
    url = url.strip()
    if not url or url.startswith(("#", "data:", "blob:", "about:", "javascript:", "mailto:")):
        return None
    if url.startswith("//") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return "another origin"
    if url.startswith("/"):
        return "absolute path (breaks under a sub-path such as /<repo>/)"
    return None


class _Attrs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[int, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "config", "action", "poster", "data-src") and value is not None:
                self.urls.append((self.getpos()[0], value))


# Static URL strings in JS that the browser resolves: import ... from '...', import('...'),
# fetch('...'), new URL('...'), new Worker('...'), importScripts('...').
_JS_URL = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bfetch\s*\(\s*|\bnew\s+URL\s*\(\s*|"""
    r"""\bnew\s+(?:Shared)?Worker\s*\(\s*|\bimportScripts\s*\(\s*)(['"`])([^'"`]*)\1""")


def url_problems(site: Path) -> list[str]:
    """Every URL in the page's own files that is absolute or points to another origin."""
    problems: list[str] = []
    index = site / "index.html"
    if index.is_file():
        parser = _Attrs()
        parser.feed(index.read_text(encoding="utf-8"))
        for line, url in parser.urls:
            why = _url_problem(url)
            if why:
                problems.append(f"index.html:{line}: {url!r}: {why}")
    toml_path = site / "pyscript.toml"
    if toml_path.is_file():
        config = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        urls = [("interpreter", config.get("interpreter", ""))]
        urls += [(f"[files] {k!r}", k) for k in config.get("files", {})]
        urls += [(f"[js_modules.*] {k!r}", k) for group in config.get("js_modules", {}).values() for k in group]
        urls += [("packages", p) for p in config.get("packages", []) if "/" in p]
        for where, url in urls:
            why = _url_problem(str(url))
            if why:
                problems.append(f"pyscript.toml: {where}: {url!r}: {why}")
    for js in sorted((site / "web").glob("**/*.*js")) if (site / "web").is_dir() else []:
        text = js.read_text(encoding="utf-8")
        for match in _JS_URL.finditer(text):
            why = _url_problem(match.group(2))
            if why:
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{js.relative_to(site).as_posix()}:{line}: {match.group(2)!r}: {why}")
    return problems


def missing_files(site: Path) -> list[str]:
    """pyscript.toml's interpreter and [files] sources, and index.html's Python scripts, that the
    site lacks (each would fail only in the browser)."""
    config = tomllib.loads((site / "pyscript.toml").read_text(encoding="utf-8"))
    wanted = [("interpreter", config.get("interpreter", ""))]
    wanted += [("[files]", k) for k in config.get("files", {})]
    parser = _Attrs()
    parser.feed((site / "index.html").read_text(encoding="utf-8"))
    wanted += [("index.html", url) for _, url in parser.urls
               if url.endswith((".py", ".js", ".mjs", ".css", ".toml", ".svg"))]
    missing = []
    for where, url in wanted:
        if _url_problem(url) is None and not (site / url.split("?")[0].split("#")[0]).is_file():
            missing.append(f"{where}: {url}")
    return missing


# --- build ------------------------------------------------------------------------------------

def weight_folders(weights: Path) -> list[Path]:
    """The folders under weights/ that the site ships: all but hidden ones."""
    if not weights.is_dir():
        return []
    return sorted(p for p in weights.iterdir() if p.is_dir() and not p.name.startswith("."))


def model_folders(weights: Path) -> list[Path]:
    """The model folders under weights/: every folder holding a config.json."""
    return [p for p in weight_folders(weights) if (p / "config.json").is_file()]


def _check_weights(folder: Path) -> None:
    for f in folder.rglob("*"):
        if not f.is_file():
            continue
        with f.open("rb") as fh:
            if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                raise BuildError(f"{f.relative_to(ROOT)} is a Git LFS pointer, not the file: run `git lfs pull`")
        if f.stat().st_size > PAGES_FILE_LIMIT:
            print(f"build_site: warning: {f.relative_to(ROOT)} is over 100 MB; GitHub Pages may refuse it",
                  file=sys.stderr)


def build(out: Path, root: Path = ROOT) -> dict:
    """Assemble the site into `out` (emptied first) and return a summary."""
    out = out.resolve()
    if out == root.resolve() or root.resolve().is_relative_to(out):
        raise BuildError(f"refusing to build into {out}: it contains the repository")
    for name in PAGE_FILES:
        if not (root / name).is_file():
            raise BuildError(f"{name} is missing")
    vendor_dir = vendoring.vendor()  # copies the pinned runtime from node_modules when needed

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in PAGE_FILES:
        shutil.copy2(root / name, out / name)
    for name in PAGE_DIRS:
        if (root / name).is_dir():
            shutil.copytree(root / name, out / name, ignore=IGNORE)
    shutil.copytree(vendor_dir, out / "vendor", ignore=IGNORE)
    models = []
    for folder in weight_folders(root / "weights"):
        _check_weights(folder)
        shutil.copytree(folder, out / "weights" / folder.name, ignore=IGNORE)
        if (folder / "config.json").is_file():
            models.append(folder.name)
    for file in sorted((root / "weights").glob("*.json")):  # models.json: the page's list of models
        shutil.copy2(file, out / "weights" / file.name)
    (out / ".nojekyll").write_text("")

    problems = missing_files(out)
    if problems:
        raise BuildError("the page needs files that are not there:\n  " + "\n  ".join(problems))
    problems = url_problems(out)
    if problems:
        raise BuildError("the page uses URLs that break on GitHub Pages (serve under /<repo>/):\n  "
                         + "\n  ".join(problems))

    files = [p for p in out.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    if total > PAGES_SITE_LIMIT:
        print(f"build_site: warning: the site is {total / 2**20:.0f} MiB; GitHub Pages sites should stay "
              "under 1 GB", file=sys.stderr)
    groups: dict[str, dict[str, int]] = {}
    for p in files:
        top = p.relative_to(out).parts[0] if len(p.relative_to(out).parts) > 1 else "."
        g = groups.setdefault(top, {"files": 0, "bytes": 0})
        g["files"] += 1
        g["bytes"] += p.stat().st_size
    return {"out": str(out), "files": len(files), "bytes": total, "models": models,
            "by_folder": dict(sorted(groups.items()))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    args = parser.parse_args(argv)
    try:
        summary = build(args.out)
    except BuildError as exc:
        sys.exit(f"build_site: error: {exc}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
