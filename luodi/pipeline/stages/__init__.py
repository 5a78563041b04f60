"""The stages, one module each; ``registry.STAGES`` names them for pipeline files."""

from __future__ import annotations

from luodi.pipeline.stages.compliance import EVIDENCE, Compliance
from luodi.pipeline.stages.dedup import DedupExact, DedupNear
from luodi.pipeline.stages.language import Language
from luodi.pipeline.stages.normalize import Normalize
from luodi.pipeline.stages.pii import PII, PIIResidueError, Scrubber, ScrubberFactory
from luodi.pipeline.stages.quality import Quality
from luodi.pipeline.stages.terms import Terms

__all__ = [
    "EVIDENCE",
    "PII",
    "Compliance",
    "DedupExact",
    "DedupNear",
    "Language",
    "Normalize",
    "PIIResidueError",
    "Quality",
    "Scrubber",
    "ScrubberFactory",
    "Terms",
]
