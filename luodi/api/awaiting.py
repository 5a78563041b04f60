"""Requests waiting for their first token: what background work gives way to.

A knowledge-base ingest parses, chunks and embeds in a thread of its own, which on a
small machine competes with serving for the cores and for the interpreter. Priority
(``knowledge.ingest_nice``) settles the cores, not the interpreter: a chat's retrieval,
masking and planning are Python, and they queue behind the ingest's. The pipeline
counts the requests between their arrival and their first event; background jobs
wait, between two batches, while that count is not zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["AwaitingFirstToken"]


class AwaitingFirstToken:
    """How many model requests are inside the pipeline, not yet answered with anything.

    Changed on the event loop only; other threads just read it (an int read is atomic).
    """

    def __init__(self) -> None:
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def busy(self) -> bool:
        """Whether some request is waiting for its first token now."""
        return self._count > 0

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Count one request for as long as the block runs."""
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
