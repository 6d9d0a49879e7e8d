"""One model load in progress: its abort signal, progress reports and statistics.

Progress: `on_progress(json_text)` with {phase, file, loaded, total, bytes_per_s, eta_s, from_cache,
overall_loaded, overall_total, overall_eta_s, file_index, file_count, elapsed_s}; phase is one of
'config', 'tokenizer', 'headers', 'download', 'cache', 'upload', 'compile' (first run of every
kernel), 'done'. Cancel: `LoadJob.cancel()` (`pywebgpt.cancelLoad()`) aborts the running download;
the load frees everything it allocated.
"""

from __future__ import annotations

import json
import time

import js

from .errors import LoadCancelled
from .gpu import is_null


class LoadJob:
    """One load in progress: its abort signal, progress reports and statistics."""

    def __init__(self, on_progress=None):
        self.on_progress = on_progress if on_progress is not None and not is_null(on_progress) else None
        self.controller = js.AbortController.new()
        self.signal = self.controller.signal
        self.cancelled = False
        self.t0 = time.perf_counter()
        self.overall_total = 0
        self.overall_done = 0
        self.overall_t0 = None
        self.file_count = 0
        self.file_index = 0
        self.stats = {"network_bytes": 0, "cache_bytes": 0, "file_bytes": 0, "requests": 0}
        self._progress_broken = False

    def cancel(self) -> None:
        self.cancelled = True
        try:
            self.controller.abort()
        except Exception:  # noqa: BLE001 - aborting twice or after the end is harmless
            pass

    def check(self) -> None:
        if self.cancelled:
            raise LoadCancelled()

    def emit(self, phase: str, file: str | None = None, loaded: int = 0, total: int | None = None,
             from_cache: bool = False, started: float | None = None) -> None:
        if self.on_progress is None or self._progress_broken:
            return
        now = time.perf_counter()
        rate = eta = overall_eta = None
        if started is not None and now - started > 0.05 and loaded:
            rate = loaded / (now - started)
            if total:
                eta = max(0.0, (total - loaded) / rate)
        overall_loaded = self.overall_done + (loaded if phase == "download" else 0)
        if self.overall_t0 is not None and self.overall_total and overall_loaded and now - self.overall_t0 > 0.05:
            overall_rate = overall_loaded / (now - self.overall_t0)
            overall_eta = max(0.0, (self.overall_total - overall_loaded) / overall_rate)
        event = {
            "phase": phase, "file": file, "loaded": loaded, "total": total,
            "bytes_per_s": round(rate) if rate else None,
            "eta_s": round(eta, 2) if eta is not None else None,
            "from_cache": from_cache,
            "overall_loaded": overall_loaded, "overall_total": self.overall_total,
            "overall_eta_s": round(overall_eta, 2) if overall_eta is not None else None,
            "file_index": self.file_index, "file_count": self.file_count,
            "elapsed_s": round(now - self.t0, 3),
        }
        try:
            self.on_progress(json.dumps(event))
        except Exception:  # noqa: BLE001 - a broken progress callback must not break the load
            self._progress_broken = True


