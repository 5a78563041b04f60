"""Licence, consent, retention and residency checks, and the evidence they give.

Each check reads one metadata field. A record failing one is rejected naming the check.
``EVIDENCE`` maps every check (and the PII stage) to the GDPR articles and the MLPS 2.0
controls (GB/T 22239-2019, level 3 numbering, 8.1.4 安全计算环境) it serves; the runner
puts the checks that ran, with their counts, in summary.json.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from luodi.pipeline.spec import ComplianceSpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["EVIDENCE", "Compliance"]

EVIDENCE: dict[str, dict[str, list[str]]] = {
    "license": {
        "gdpr": ["Art. 6(1) lawfulness of processing"],
        "mlps": ["8.1.4.11 个人信息保护 (only data with a right to use it)"],
    },
    "consent": {
        "gdpr": ["Art. 6(1)(a) consent", "Art. 7 conditions for consent"],
        "mlps": ["8.1.4.11 个人信息保护"],
    },
    "retention": {
        "gdpr": ["Art. 5(1)(e) storage limitation", "Art. 17 right to erasure"],
        "mlps": ["8.1.4.10 剩余信息保护"],
    },
    "residency": {
        "gdpr": ["Art. 44 general principle for transfers"],
        "mlps": ["8.1.4.8 数据保密性"],
    },
    "pii": {
        "gdpr": [
            "Art. 5(1)(c) data minimisation",
            "Art. 25 data protection by design",
            "Art. 32 security of processing",
        ],
        "mlps": ["8.1.4.8 数据保密性", "8.1.4.11 个人信息保护"],
    },
}
"""Check → {"gdpr": articles, "mlps": controls}."""


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "y", "granted"}
    return bool(value)


class Compliance:
    name = "compliance"
    stateful = False

    def __init__(self, spec: ComplianceSpec) -> None:
        self.spec = spec
        self.today = dt.date.fromisoformat(spec.today) if spec.today else dt.date.today()
        self._licenses = (
            {x.lower() for x in spec.allowed_licenses} if spec.allowed_licenses else None
        )
        self._residency = (
            {x.upper() for x in spec.allowed_residency} if spec.allowed_residency else None
        )

    def failure(self, record: dict[str, Any]) -> tuple[str, str] | None:
        """(check, detail) of the first failing check, None when the record passes."""
        spec = self.spec
        if spec.license_field:
            lic = record.get(spec.license_field)
            if not lic:
                return "license", f"no {spec.license_field}"
            if self._licenses is not None and str(lic).lower() not in self._licenses:
                return "license", f"{lic} not allowed"
        if spec.consent_field and not _truthy(record.get(spec.consent_field)):
            return "consent", f"{spec.consent_field} not granted"
        if spec.retention_field:
            until = record.get(spec.retention_field)
            try:
                if until is None or dt.date.fromisoformat(str(until)[:10]) < self.today:
                    return "retention", f"{spec.retention_field}={until} expired or missing"
            except ValueError:
                return "retention", f"{spec.retention_field}={until!r} is not an ISO date"
        if spec.residency_field:
            where = str(record.get(spec.residency_field, "")).upper()
            if self._residency is not None and where not in self._residency:
                return "residency", f"{spec.residency_field}={where or 'missing'}"
        return None

    def checks(self) -> list[str]:
        """The checks this configuration runs."""
        spec = self.spec
        named = {
            "license": spec.license_field,
            "consent": spec.consent_field,
            "retention": spec.retention_field,
            "residency": spec.residency_field,
        }
        return [check for check, field in named.items() if field]

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for check in self.checks():
            out.stats[f"checked:{check}"] += len(batch)
        for record in batch:
            failed = self.failure(record)
            if failed is None:
                out.kept.append(record)
            else:
                out.stats[f"failed:{failed[0]}"] += 1
                out.rejected.append(Rejection(record, failed[0], failed[1]))
        return out
