"""Small case factories shared by the risk tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def card_testing_case() -> dict[str, Any]:
    """The golden case: a quiet history, then a burst of tiny online payments."""
    events: list[dict[str, Any]] = [
        {
            "ts": "2026-02-10T09:00:00Z",
            "type": "login",
            "amount": 0,
            "channel": "app",
            "device": "phone-1",
            "location": "Shanghai",
        },
        {
            "ts": "2026-02-20T18:30:00Z",
            "type": "card_payment",
            "amount": 268.0,
            "currency": "CNY",
            "channel": "pos",
            "device": "phone-1",
            "location": "Shanghai",
            "counterparty": "grocer",
        },
    ]
    for k in range(6):
        events.append(
            {
                "ts": f"2026-03-01T0{k}:1{k}:00Z",
                "type": "card_payment",
                "amount": 1.5 + k,
                "currency": "CNY",
                "channel": "online",
                "device": f"new-{k % 3}",
                "location": "Shenzhen" if k % 2 else "Shanghai",
                "counterparty": f"shop-{k}",
            }
        )
    return {
        "id": "golden-1",
        "features": {"account_age_days": 412, "kyc_level": "basic"},
        "events": events,
    }


def labelled_set(n: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` labelled cases, half card testing (label 1), half ordinary spending."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        fraud = i % 2 == 0
        events = [
            {
                "ts": (T0 - timedelta(days=rnd.uniform(1, 25))).isoformat(),
                "type": "card_payment",
                "amount": round(rnd.uniform(20, 400), 2),
                "currency": "CNY",
                "channel": "pos",
                "device": "d0",
                "counterparty": f"m{rnd.randint(0, 5)}",
            }
            for _ in range(rnd.randint(3, 8))
        ]
        if fraud:
            events += [
                {
                    "ts": (T0 + timedelta(minutes=3 * k)).isoformat(),
                    "type": "card_payment",
                    "amount": round(rnd.uniform(0.5, 9), 2),
                    "currency": "CNY",
                    "channel": "online",
                    "device": f"n{k % 3}",
                    "counterparty": f"shop{k}",
                }
                for k in range(rnd.randint(6, 14))
            ]
        else:
            events.append(
                {
                    "ts": T0.isoformat(),
                    "type": "card_payment",
                    "amount": 88.0,
                    "currency": "CNY",
                    "channel": "pos",
                    "device": "d0",
                }
            )
        out.append(
            {
                "id": f"case-{i:03d}",
                "label": int(fraud),
                "features": {
                    "account_age_days": rnd.randint(30, 3000),
                    "segment": rnd.choice(["retail", "sme"]),
                },
                "events": events,
            }
        )
    return out
