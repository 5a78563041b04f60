"""Run the recognizers over a text and settle overlaps into one list of findings."""

from __future__ import annotations

import bisect
from collections.abc import Collection

from luodi.privacy.finding import Finding
from luodi.privacy.registry import RecognizerRegistry

__all__ = ["Analyzer"]


class Analyzer:
    """Finds personal data: every recognizer runs, then overlapping findings are settled.

    Overlaps resolve to the higher score, then the longer span, then the earlier one;
    a span that contains all it overlaps wins over them (see ``resolve_overlaps``).
    """

    def __init__(
        self, registry: RecognizerRegistry | None = None, *, min_score: float = 0.5
    ) -> None:
        self.registry = registry if registry is not None else RecognizerRegistry.with_rules()
        self.min_score = min_score

    def analyze(
        self,
        text: str,
        *,
        entities: Collection[str] | None = None,
        min_score: float | None = None,
        near_misses: bool = False,
    ) -> list[Finding]:
        """Non-overlapping findings in ``text`` ordered by position.

        Args:
            text: the text to scan.
            entities: keep only these entity types (all when None); recognizers that
                cannot emit any of them are not run.
            min_score: drop findings below this score (the analyzer's default when None).
            near_misses: also report look-alikes that fail their checksum where a
                context word names them (flagged ``near_miss``); off: strict checksums.
        """
        if not text:
            return []
        floor = self.min_score if min_score is None else min_score
        wanted = set(entities) if entities is not None else None
        candidates: list[Finding] = []
        for recognizer in self.registry.for_entities(wanted):
            # A NearMissRecognizer, duck-typed: isinstance() against a runtime Protocol
            # costs more than most recognizers take to scan a message.
            lenient = getattr(recognizer, "find_with_near_misses", None) if near_misses else None
            found: list[Finding] = lenient(text) if lenient is not None else recognizer.find(text)
            for f in found:
                if f.score >= floor and (wanted is None or f.entity_type in wanted):
                    candidates.append(f)
        return resolve_overlaps(candidates)


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Settle overlaps; the result is sorted by start.

    Findings are taken best score first. One that overlaps a kept finding is dropped,
    unless it strictly contains every finding it overlaps: then it replaces them (an
    address contains the surname-like street name 王街; a card number contains what
    looks like a mobile number).
    """
    ranked = sorted(findings, key=lambda f: (-f.score, -f.length, f.start))
    kept: list[Finding] = []  # non-overlapping, sorted by start (and so by end)
    starts: list[int] = []
    for f in ranked:
        # Kept findings overlapping f: those starting before f.end and ending after f.start.
        hi = bisect.bisect_left(starts, f.end)
        lo = hi
        while lo > 0 and kept[lo - 1].end > f.start:
            lo -= 1
        clashes = kept[lo:hi]
        if clashes and not all(
            f.start <= k.start and k.end <= f.end and f.length > k.length for k in clashes
        ):
            continue
        kept[lo:hi] = [f]
        starts[lo:hi] = [f.start]
    return kept
