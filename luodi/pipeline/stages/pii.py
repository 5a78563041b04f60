"""The PII stage: act on personal data, then prove nothing forbidden is left.

The pipeline sits below ``privacy`` in the layering (both are libraries), so it takes a
``Scrubber`` instead of importing luodi.privacy: ``luodi pipeline`` builds one from the
privacy settings (``luodi.cli.pipeline``). The residue scan runs the scrubber's detector
once more on the text the action produced; a record still holding a forbidden entity is
quarantined or stops the run (``on_residue``). It fails closed: a scrubber that raises
stops the run rather than letting the record through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from typing import Protocol

from luodi.errors import LuodiError
from luodi.pipeline.spec import PIISpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["PII", "PIIResidueError", "Scrubber", "ScrubberFactory"]


class PIIResidueError(LuodiError):
    """A record still held forbidden personal data after the PII stage (on_residue: stop)."""


class Scrubber(Protocol):
    """What the PII stage needs from a PII engine."""

    def entities(self, text: str, only: Collection[str] | None) -> list[str]:
        """Entity types found in ``text`` (one per finding), ``only`` these when given."""
        ...

    def scrub(
        self, text: str, action: str, only: Collection[str] | None
    ) -> tuple[str, dict[str, int]]:
        """``text`` with findings redacted or pseudonymized; counts per entity type."""
        ...


ScrubberFactory = Callable[[PIISpec], Scrubber]
"""Builds a scrubber in each worker process; must be a module-level function (picklable)."""


class PII:
    name = "pii"
    stateful = False

    def __init__(self, spec: PIISpec, scrubber: Scrubber) -> None:
        self.spec = spec
        self.scrubber = scrubber

    def __call__(self, batch: Batch) -> Outcome:
        spec = self.spec
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            text = record["text"]
            if spec.action == "drop":
                found = self.scrubber.entities(text, spec.entities)
                out.stats.update(f"found:{e}" for e in found)
                if found:
                    detail = ", ".join(sorted(set(found)))
                    out.rejected.append(Rejection(record, "pii", detail))
                    continue
                new = text
            else:
                new, counts = self.scrubber.scrub(text, spec.action, spec.entities)
                for entity, n in counts.items():
                    out.stats[f"found:{entity}"] += n
                    out.stats[f"removed:{entity}"] += n
            residue = self.scrubber.entities(new, spec.forbid) if spec.forbid else []
            if residue:
                kinds = ", ".join(sorted(set(residue)))
                out.stats.update(f"residue:{e}" for e in residue)
                if spec.on_residue == "stop":
                    raise PIIResidueError(
                        f"PII residue after the pii stage: {kinds} in record "
                        f"{record.get('id', record.get('_line', '?'))} (on_residue: stop)"
                    )
                out.rejected.append(Rejection({**record, "text": new}, "pii_residue", kinds))
                continue
            out.kept.append(record if new == text else {**record, "text": new})
        return out
