"""The models kept in the browser's Cache Storage: list them with their sizes, delete one or all.
(app/sources.py UrlSource writes them.)"""

from __future__ import annotations

from pyodide.ffi import to_js

from .errors import LoadError
from .gpu import is_null
from .sources import MANIFEST, _fetch_js, _get, hub_id, resolve_reference


async def cached_models(hub: str | None = None) -> dict:
    """The models in Cache Storage: {models: [{source, hub_id, files: [{name, bytes, stored}], bytes,
    complete, stored}], total_bytes, usage, quota}. `complete` means the next load is network-free."""
    F = _fetch_js()
    out = {"models": [], "total_bytes": 0, "usage": None, "quota": None, "available": bool(F.cacheAvailable())}
    if not out["available"]:
        return out
    entries = await F.cacheEntries()
    if _get(entries, "error") is not None:
        raise LoadError(f"cannot read the browser cache ({_get(entries, 'message', '')})", "input")
    groups: dict = {}
    for e in entries:
        url = str(e.url)
        base, name = url[:url.rfind("/") + 1], url[url.rfind("/") + 1:]
        groups.setdefault(base, {})[name] = {"name": name, "bytes": int(e.size or 0),
                                             "stored": _get(e, "stored") and str(e.stored)}
    for base, files in sorted(groups.items()):
        manifest = files.pop(MANIFEST, None)
        listed = sorted(files.values(), key=lambda f: f["name"])
        total = sum(f["bytes"] for f in listed)
        out["models"].append({
            "source": base, "hub_id": hub_id(base, hub), "files": listed, "bytes": total,
            "complete": manifest is not None, "stored": manifest["stored"] if manifest else None,
        })
        out["total_bytes"] += total
    estimate = await F.storageEstimate()
    if estimate is not None and not is_null(estimate):
        out["usage"], out["quota"] = _get(estimate, "usage"), _get(estimate, "quota")
    return out


async def clear_cache(ref: str = "", base_url: str = "", hub: str | None = None) -> dict:
    """Delete one model's cached files (ref: as for loading), or every cached model (no ref)."""
    F = _fetch_js()
    if not F.cacheAvailable():
        return {"deleted_files": 0, "freed_bytes": 0}
    entries = await F.cacheEntries()
    if _get(entries, "error") is not None:
        raise LoadError(f"cannot read the browser cache ({_get(entries, 'message', '')})", "input")
    entries = [(str(e.url), int(e.size or 0)) for e in entries]
    if not ref:
        await F.cacheDrop()
        chosen = entries
    else:
        base = resolve_reference(ref, base_url, hub)
        chosen = [(url, size) for url, size in entries if url.startswith(base) and "/" not in url[len(base):]]
        r = await F.cacheDelete(to_js([url for url, _ in chosen]))
        if _get(r, "error") is not None:
            raise LoadError(f"cannot delete from the browser cache ({_get(r, 'message', '')})", "input")
    return {"deleted_files": sum(1 for url, _ in chosen if not url.endswith(MANIFEST)),
            "freed_bytes": sum(size for url, size in chosen if not url.endswith(MANIFEST))}
