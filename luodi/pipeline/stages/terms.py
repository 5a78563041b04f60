"""Sensitive-term filter: drop a record containing any term of the user's lists."""

from __future__ import annotations

import re
from collections import Counter

from luodi.errors import ConfigError
from luodi.pipeline.spec import TermsSpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["Terms", "load_terms"]


def load_terms(spec: TermsSpec) -> list[str]:
    terms = [t for t in spec.terms if t.strip()]
    for path in spec.files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read term list {path}: {exc.strerror}") from exc
        terms += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return terms


class Terms:
    name = "terms"
    stateful = False

    def __init__(self, spec: TermsSpec) -> None:
        terms = sorted(set(load_terms(spec)), key=len, reverse=True)
        flags = 0 if spec.case_sensitive else re.IGNORECASE
        # One alternation: a regex automaton over all terms, one pass per record.
        self._pattern = re.compile("|".join(map(re.escape, terms)), flags) if terms else None

    def __call__(self, batch: Batch) -> Outcome:
        if self._pattern is None:
            return Outcome(kept=list(batch))
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            hit = self._pattern.search(record["text"])
            if hit is None:
                out.kept.append(record)
            else:
                out.stats[f"term:{hit.group(0)}"] += 1
                out.rejected.append(Rejection(record, "sensitive_term", hit.group(0)))
        return out
