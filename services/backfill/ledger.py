"""The backfill's memory of what is done, in the state dir, so no credit is spent twice.

``windows.jsonl`` gets one line per window whose points Kafka has acknowledged, written and
synced before the next window is fetched: a run stopped at any point (Ctrl-C, a spent quota, a
kill) resumes with the windows it lacks. A kill between Kafka's acknowledgement and the line
costs that one window again, and the warehouse's MERGE on (id, interval, time) keeps its
points once. A torn last line is skipped, which is the same thing.

``ranking.json`` keeps the last top-assets listing for a day, so a rerun of ``--top N`` asks
CoinCap for it again only when it is stale. A lock file keeps two backfills from fetching the
same windows at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from services.backfill.plan import Window

RANKING_MAX_AGE_SECONDS = 24 * 3600


class BackfillAlreadyRunning(Exception):
    """Another backfill holds the ledger's lock."""

    def __init__(self, lock_path: Path) -> None:
        super().__init__(
            f"another backfill is running (it holds {lock_path}); wait for it to finish"
        )


class Ledger:
    """The finished windows and the kept ranking, under ``directory``; a context manager that
    holds the lock while a run uses it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.windows_path = directory / "windows.jsonl"
        self.ranking_path = directory / "ranking.json"
        self.lock_path = directory / "lock"
        self._lock: IO[str] | None = None

    def __enter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = self.lock_path.open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise BackfillAlreadyRunning(self.lock_path) from None
        self._lock = lock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def finished(self) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """Finished windows as ``(start_ms, end_ms)`` by (asset, interval)."""
        done: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        if not self.windows_path.exists():
            return done
        for line in self.windows_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                key = (str(entry["asset"]), str(entry["interval"]))
                done[key].append((int(entry["start"]), int(entry["end"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill: that window is simply fetched again
        return done

    def record(self, window: Window, records: int) -> None:
        """Note ``window`` as done, on disk before this returns."""
        entry = {
            "asset": window.asset_id,
            "interval": window.interval,
            "start": window.start_ms,
            "end": window.end_ms,
            "records": records,
            "finished_at": round(time.time() * 1000),
        }
        with self.windows_path.open("a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())

    def ranking(self, at_least: int) -> list[str] | None:
        """The kept ranking when it is under a day old and long enough; else None."""
        try:
            kept = json.loads(self.ranking_path.read_text(encoding="utf-8"))
            ids = [str(asset_id) for asset_id in kept["ids"]]
            fresh = time.time() - float(kept["listed_at"]) < RANKING_MAX_AGE_SECONDS
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return ids if fresh and len(ids) >= at_least else None

    def keep_ranking(self, ids: list[str]) -> None:
        temporary = self.ranking_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"ids": ids, "listed_at": time.time()}), encoding="utf-8")
        temporary.replace(self.ranking_path)
