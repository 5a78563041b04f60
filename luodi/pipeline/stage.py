"""What every stage is: a function over a batch of records, and what it returns.

A record is a plain ``dict`` with a ``text`` field; the other fields are metadata and
travel with it. A stage takes a list of records and returns the kept ones, the rejected
ones with the reason, and counters for the summary. Stages hold no reference to a runner,
so the same objects run in the local process pool or inside Ray Data's ``map_batches``.

Stateless stages (everything but dedup) may run on any worker. Stateful ones keep state
across batches (the hashes and the LSH index) and say so with ``stateful = True``: a runner
must feed them every batch of the run in order, in one place, and checkpoint ``state()``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Batch", "Outcome", "Record", "Rejection", "Stage", "StatefulStage"]

Record = dict[str, Any]
Batch = list[Record]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record a stage dropped, and why (``reason`` is short and stable: ``near_dup``)."""

    record: Record
    reason: str
    detail: str = ""
    duplicate_of: str | None = None
    """For a duplicate: the kept record it repeats (its id or input line), for the
    report's duplicate clusters."""


@dataclass(slots=True)
class Outcome:
    """One stage's result on one batch."""

    kept: Batch
    rejected: list[Rejection] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    """Additive counters for the summary (``lang:zh``, ``pii:ID_CARD``); merged across batches."""


@runtime_checkable
class Stage(Protocol):
    """A named function over a batch."""

    name: str
    stateful: bool

    def __call__(self, batch: Batch) -> Outcome: ...


class StatefulStage(Stage, Protocol):
    """A stage whose decisions depend on earlier batches; its state is checkpointed."""

    def state(self) -> object: ...

    def load_state(self, state: object) -> None: ...
