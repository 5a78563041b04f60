"""Scenario metrics: one interface through which application metrics join the report.

Later apps measure what matters to them (intent accuracy of the support bot, risk-score
AUC, knowledge-base recall@k, PII F1). Each is a ``ScenarioMetric``: a name and one
``measure`` call against a candidate's endpoint returning a ``ScenarioResult``. They are
built by name from the plan through a read-only registry and ``build_scenario``, as
every pluggable part of luodi is (docs/architecture.md, one factory style); a test or a
plugin passes its own registry.

Built in: ``results_file``, which reads a ``ScenarioResult`` an app's own evaluation
wrote as JSON, so a metric measured elsewhere appears beside the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from luodi.errors import ConfigError
from luodi.evaluation.endpoint import Endpoint

__all__ = [
    "SCENARIOS",
    "ResultsFile",
    "ScenarioMetric",
    "ScenarioResult",
    "build_scenario",
]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One scenario figure; ``outcomes`` (0/1 or scores per case) feed the report's CI."""

    name: str
    value: float
    n: int
    higher_is_better: bool = True
    unit: str = ""
    source: str = ""
    outcomes: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcomes"] = list(self.outcomes)
        return out


class ScenarioMetric(Protocol):
    """A scenario's measurement of one candidate."""

    name: str

    async def measure(self, endpoint: Endpoint | None) -> ScenarioResult: ...


class ResultsFile:
    """A result measured elsewhere: a JSON object with ScenarioResult's fields."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        path = options.get("path")
        if not path:
            raise ConfigError("scenario results_file needs a path")
        self.path = Path(str(path))
        self.name = str(options.get("name") or self.path.stem)

    async def measure(self, endpoint: Endpoint | None) -> ScenarioResult:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return ScenarioResult(
                name=str(raw.get("name", self.name)),
                value=float(raw["value"]),
                n=int(raw["n"]),
                higher_is_better=bool(raw.get("higher_is_better", True)),
                unit=str(raw.get("unit", "")),
                source=str(raw.get("source", self.path)),
                outcomes=tuple(float(x) for x in raw.get("outcomes", ())),
            )
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such scenario result") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{self.path}: not a scenario result (needs value and n): {exc!r}"
            ) from None


ScenarioFactory = Callable[[Mapping[str, Any]], ScenarioMetric]

SCENARIOS: Mapping[str, ScenarioFactory] = MappingProxyType({"results_file": ResultsFile})


def build_scenario(
    kind: str, options: Mapping[str, Any], registry: Mapping[str, ScenarioFactory] = SCENARIOS
) -> ScenarioMetric:
    """The scenario metric named ``kind``, built from its options."""
    factory = registry.get(kind)
    if factory is None:
        raise ConfigError(f"unknown scenario metric {kind!r}; known: {sorted(registry)}")
    return factory(options)
