"""A resumable cache of endpoint answers: SQLite, keyed by endpoint + model + request.

An evaluation is many small, deterministic requests (greedy, fixed seed). Each answer is
stored as soon as it arrives, under a digest of the endpoint URL, the model and the
whole request body (prompt included), so a run stopped half-way continues where it
stopped and a run repeated costs nothing. The file holds model outputs for the
evaluator's own prompts; it is the caller's to keep or delete.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResponseCache", "cache_key"]


def cache_key(endpoint: str, model: str, path: str, body: dict[str, Any]) -> str:
    """The digest an answer is stored under: endpoint, model, route and request body."""
    canonical = json.dumps(
        [endpoint.rstrip("/"), model, path, body], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Answers by key in one SQLite file (WAL); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, body TEXT)")
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM answers WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(self, key: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, body) VALUES (?, ?)",
                (key, json.dumps(body, ensure_ascii=False)),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
