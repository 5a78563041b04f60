"""Citation validation: reasons citing a feature the case lacks are dropped and counted."""

from __future__ import annotations

from luodi.apps.risk.case import Reason
from luodi.apps.risk.citations import check_citations


def test_reasons_citing_absent_features_are_dropped_and_counted() -> None:
    reasons = [
        Reason(feature="events.24h.small_count", evidence="11 under ¥10"),
        Reason(feature="ip_reputation", evidence="made up"),
        Reason(feature="[account_age_days]", evidence="new account"),
        Reason(feature="events.24h.small_count", evidence="said twice"),
    ]
    checked = check_citations(reasons, {"events.24h.small_count", "account_age_days"})
    assert [r.feature for r in checked.kept] == ["events.24h.small_count", "account_age_days"]
    assert checked.dropped == 1
    assert checked.dropped_features == ("ip_reputation",)


def test_no_reasons_is_nothing_dropped() -> None:
    checked = check_citations([], {"a"})
    assert checked.kept == [] and checked.dropped == 0
