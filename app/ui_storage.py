"""What this browser keeps, in the Model panel's "Stored in this browser": the models in Cache
Storage (`pywebgpt.cachedModels()`, app/model_cache.py) with their sizes and a Delete button each
(`pywebgpt.clearCache(source)`), the storage used and allowed, and whether the site works offline
(the service worker's shell cache, sw.js). When a model over PERSIST_BYTES is stored, the page asks
for persistent storage (`navigator.storage.persist()`), so that the browser does not evict a large
download under storage pressure; the answer is shown.

A mixin of app/ui.py's UI: it reads `api`, `el`, `engine`, `models`, `loading`, `spawn()` and
`on()`, and owns `persist_state` (None until asked, then 'granted' or 'refused')."""

from __future__ import annotations

import js

from .ui_dom import bump, empty, error_parts, or_none, to_py
from .ui_text import entry_for_source, size_text

PERSIST_BYTES = 100_000_000
SHELL_PREFIX = "pywebgpt-shell:"
SHELL_MARKER = "web/shell-manifest.json"


class StoragePanel:
    persist_state: str | None

    def bind_storage(self) -> None:
        self.on(self.el["storage"], "toggle", lambda ev: self.el["storage"].open and self.spawn(self.refresh_storage()))
        self.on(js.document, "pywebgpt:model", lambda ev: self.spawn(self.refresh_storage()))
        self.on(js.document, "pywebgpt:offline", lambda ev: self.spawn(self.show_offline_state()))
        self.on(self.el["cached-list"], "click", self._on_cached_click)
        self.el["cached-list"].style.paddingLeft = "0"  # rows with a button, not bullets
        self.el["cached-list"].style.margin = "0"

    def _on_cached_click(self, event) -> None:
        # one listener for the list's buttons, which are made again at every refresh
        button = or_none(event.target.closest("button[data-source]"))
        if button is not None and not self.loading:
            self.spawn(self.delete_cached(str(button.dataset.source), str(button.dataset.name)))

    def model_name(self, source: str, hub: str | None) -> str:
        entry = entry_for_source(self.models, source, lambda ref: js.URL.new(ref, js.location.href).href)
        if entry is not None:
            return str(entry["name"])
        if hub:
            return hub
        here = str(js.URL.new("./", js.location.href).href)
        return source[len(here):] if source.startswith(here) else source

    async def refresh_storage(self) -> None:
        if self.engine != "ready":
            return
        try:
            listing = to_py(await self.api.cachedModels()) or {}
        except Exception as exc:  # noqa: BLE001 - a browser that refuses Cache Storage: say so, nothing else
            self.el["cached-summary"].textContent = f"The browser cache cannot be read: {error_parts(exc)['message']}"
            return
        self.show_cached(listing)
        big = [m for m in listing.get("models", []) if m.get("complete") and m.get("bytes", 0) > PERSIST_BYTES]
        if big and self.persist_state is None:
            await self.ask_persist()
            self.show_cached(listing)
        await self.show_offline_state()
        bump("storage")

    def show_cached(self, listing: dict) -> None:
        ul = self.el["cached-list"]
        empty(ul)
        models = listing.get("models") or []
        for m in models:
            li = js.document.createElement("li")
            li.className = "row"
            name = self.model_name(str(m["source"]), m.get("hub_id"))
            files = len(m.get("files") or [])
            state = "" if m.get("complete") else ", incomplete"
            span = js.document.createElement("span")
            plural = "s" if files != 1 else ""
            span.textContent = f"{name}: {size_text(m.get('bytes', 0))} ({files} file{plural}{state})"
            button = js.document.createElement("button")
            button.type = "button"
            button.className = "secondary small"
            button.textContent = "Delete"
            button.setAttribute("aria-label", f"Delete {name} from this browser")
            button.dataset.source = str(m["source"])
            button.dataset.name = name
            li.appendChild(span)
            li.appendChild(button)
            ul.appendChild(li)
        if not listing.get("available", True):
            text = "This page cannot use the browser cache (Cache Storage), so models are downloaded at every load."
        elif not models:
            text = "No models are stored in this browser yet: a model loaded from the Hub or a URL is kept here."
        else:
            text = f"{len(models)} model{'s' if len(models) != 1 else ''}, {size_text(listing.get('total_bytes', 0))}."
        usage, quota = listing.get("usage"), listing.get("quota")
        if usage is not None and quota:
            text += f" This site uses {size_text(usage)} of the {size_text(quota)} the browser allows it."
        if self.persist_state == "granted":
            text += " Storage is persistent: the browser keeps these models until you delete them."
        elif self.persist_state == "refused":
            text += (" The browser did not grant persistent storage, so it may remove these models when space runs "
                     "low.")
        self.el["cached-summary"].textContent = text

    async def delete_cached(self, source: str, name: str) -> None:
        try:
            out = to_py(await self.api.clearCache(source)) or {}
        except Exception as exc:  # noqa: BLE001 - shown next to the list
            self.el["cached-summary"].textContent = f"Could not delete {name}: {error_parts(exc)['message']}"
            return
        await self.refresh_storage()
        freed = size_text(out.get("freed_bytes", 0))
        self.el["cached-summary"].textContent = (f"Deleted {name} ({freed} freed). "
                                                 + str(self.el["cached-summary"].textContent))

    async def ask_persist(self) -> None:
        storage = or_none(getattr(js.navigator, "storage", None))
        if storage is None or or_none(getattr(storage, "persist", None)) is None:
            return
        try:
            granted = bool(await storage.persisted()) or bool(await storage.persist())
        except Exception:  # noqa: BLE001 - a browser that refuses the question: treat as refused
            granted = False
        self.persist_state = "granted" if granted else "refused"
        js.document.body.dataset.persist = self.persist_state

    async def show_offline_state(self) -> None:
        line = self.el["offline-state"]
        if or_none(getattr(js.navigator, "serviceWorker", None)) is None or not js.window.isSecureContext:
            line.textContent = "Offline use is not available on this page (it needs https or localhost)."
            line.dataset.state = "unavailable"
            return
        scope = str(js.URL.new("./", js.location.href).pathname)
        manifest = None
        try:
            for name in to_py(await js.caches.keys()) or []:
                if str(name).startswith(f"{SHELL_PREFIX}{scope}:"):
                    hit = or_none(await (await js.caches.open(name)).match(SHELL_MARKER))
                    if hit is not None:
                        manifest = to_py(await hit.json())
        except Exception:  # noqa: BLE001 - no Cache Storage: the offline line says what it can
            manifest = None
        if manifest is not None:
            line.textContent = (f"Works offline: the app and the bundled model are stored "
                                f"({size_text(manifest.get('bytes', 0))}, version {manifest.get('version')}).")
            line.dataset.state = "ready"
        else:
            off = or_none(getattr(js.window, "pywebgptOffline", None))
            error = or_none(getattr(off, "error", None)) if off is not None else None
            line.textContent = (f"Offline use is off: {error}." if error else
                                "Preparing offline use: the app and the bundled model are being stored…")
            line.dataset.state = "error" if error else "preparing"
