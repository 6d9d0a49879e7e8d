"""A model folder from this computer: the folder picker and drag and drop (a folder, or its files,
from a file manager). The files go to the loader as they are; nothing leaves the page.

A mixin of app/ui.py's UI: it reads `el`, `engine`, `loading`, `generating`, `spawn()`,
`show_error()` and `load()`."""

from __future__ import annotations

import js
from pyodide.ffi import create_once_callable

from .ui_dom import or_none, to_js_object


class FolderInput:
    def _on_folder_picked(self, event) -> None:
        files = or_none(self.el["folder-input"].files)
        if files is None or not files.length:
            return
        first = files.item(0)
        path = str(first.webkitRelativePath or first.name)
        folder = path.split("/")[0] if "/" in path else "picked files"
        self.spawn(self.load_files(files, f"folder {folder}"))

    def _on_gguf_picked(self, event) -> None:
        files = or_none(self.el["gguf-input"].files)
        if files is not None and files.length:
            self.spawn(self.load_files(files, str(files.item(0).name)))

    async def load_files(self, files, label: str):
        try:
            await self.load(None, label=label, files=files)
        finally:
            self.el["folder-input"].value = ""
            self.el["gguf-input"].value = ""

    def _on_drag_over(self, event) -> None:
        event.preventDefault()
        if or_none(event.dataTransfer) is not None:
            event.dataTransfer.dropEffect = "copy"
        self.el["drop-zone"].classList.add("dragging")

    def _on_page_drop(self, event) -> None:
        event.preventDefault()

    def _on_drop(self, event) -> None:
        event.preventDefault()
        event.stopPropagation()
        self.el["drop-zone"].classList.remove("dragging")
        if self.engine != "ready" or self.loading or self.generating:
            return
        transfer = or_none(event.dataTransfer)
        entries, plain = [], []
        # Entries must be taken while the drop event runs: the DataTransfer empties afterwards.
        items = or_none(transfer.items) if transfer is not None else None
        if items is not None:
            for i in range(items.length):
                item = items[i]
                if str(item.kind) != "file":
                    continue
                entry = or_none(item.webkitGetAsEntry()) if hasattr(item, "webkitGetAsEntry") else None
                if entry is not None:
                    entries.append(entry)
                else:
                    f = or_none(item.getAsFile())
                    if f is not None:
                        plain.append(f)
        elif transfer is not None:
            plain = [transfer.files.item(i) for i in range(transfer.files.length)]
        self.spawn(self._load_dropped(entries, plain))

    async def _load_dropped(self, entries, plain):
        pairs = [(str(f.name), f) for f in plain]
        for entry in entries:
            pairs += await self._walk(entry)
        if not pairs:
            self.show_error("Nothing to load", "The drop held no files.", "Drop a model folder, or its files.")
            return
        top = {p.split("/")[0] for p, _ in pairs if "/" in p}
        label = f"folder {next(iter(top))}" if len(top) == 1 else "dropped files"
        array = js.Array.new()
        for path, file in pairs:
            array.push(to_js_object({"path": path, "file": file}))
        await self.load(None, label=label, files=array)

    async def _walk(self, entry) -> list:
        if entry.isFile:
            file = await js.Promise.new(create_once_callable(lambda resolve, reject: entry.file(resolve, reject)))
            return [(str(entry.fullPath).lstrip("/"), file)]
        out = []
        if entry.isDirectory:
            reader = entry.createReader()
            while True:
                batch = await js.Promise.new(
                    create_once_callable(lambda resolve, reject: reader.readEntries(resolve, reject)))
                if not batch.length:
                    break
                for i in range(batch.length):
                    out += await self._walk(batch[i])
        return out
