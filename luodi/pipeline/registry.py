"""Stage name → constructor, and ``build_stages``: the one place specs become stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from luodi.errors import ConfigError
from luodi.pipeline.spec import PIISpec, PipelineSpec
from luodi.pipeline.stage import Stage
from luodi.pipeline.stages import (
    PII,
    Compliance,
    DedupExact,
    DedupNear,
    Language,
    Normalize,
    Quality,
    ScrubberFactory,
    Terms,
)

__all__ = ["STAGES", "StageContext", "build_stages"]


@dataclass(frozen=True)
class StageContext:
    """What some stages need beyond their spec; everything here must pickle."""

    scrubber_factory: ScrubberFactory | None = None


def _pii(spec: Any, ctx: StageContext) -> Stage:
    if ctx.scrubber_factory is None:
        raise ConfigError("the pii stage needs a PII engine; run it through `luodi pipeline`")
    assert isinstance(spec, PIISpec)
    return PII(spec, ctx.scrubber_factory(spec))


STAGES: Mapping[str, Callable[[Any, StageContext], Stage]] = {
    "normalize": lambda spec, ctx: Normalize(spec),
    "dedup_exact": lambda spec, ctx: DedupExact(spec),
    "dedup_near": lambda spec, ctx: DedupNear(spec),
    "quality": lambda spec, ctx: Quality(spec),
    "language": lambda spec, ctx: Language(spec),
    "terms": lambda spec, ctx: Terms(spec),
    "pii": _pii,
    "compliance": lambda spec, ctx: Compliance(spec),
}


def build_stages(
    spec: PipelineSpec,
    ctx: StageContext,
    registry: Mapping[str, Callable[[Any, StageContext], Stage]] = STAGES,
) -> list[Stage]:
    """One stage object per entry of ``spec.stages``, in order."""
    out: list[Stage] = []
    for stage_spec in spec.stages:
        make = registry.get(stage_spec.stage)
        if make is None:
            raise ConfigError(f"unknown stage {stage_spec.stage!r}; known: {sorted(registry)}")
        out.append(make(stage_spec, ctx))
    return out
