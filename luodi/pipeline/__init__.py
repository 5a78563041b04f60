"""Data pipelines: records through clean, dedup, quality, language, PII and compliance stages.

``load_pipeline`` validates a YAML pipeline file into a ``PipelineSpec``; ``build_stages``
turns its stage list into ``Stage`` objects (plain functions over a batch of records);
``LocalRunner`` streams the input through them in shards on a process pool, resumably,
and writes the kept records, a rejected-records file and ``summary.json``.
"""

from __future__ import annotations

from luodi.pipeline.registry import STAGES, StageContext, build_stages
from luodi.pipeline.runner import LocalRunner, StageTotals, default_workers
from luodi.pipeline.spec import PipelineSpec, load_pipeline, parse_pipeline
from luodi.pipeline.stage import Batch, Outcome, Record, Rejection, Stage
from luodi.pipeline.stages import EVIDENCE, PIIResidueError, Scrubber, ScrubberFactory

__all__ = [
    "EVIDENCE",
    "STAGES",
    "Batch",
    "LocalRunner",
    "Outcome",
    "PIIResidueError",
    "PipelineSpec",
    "Record",
    "Rejection",
    "Scrubber",
    "ScrubberFactory",
    "Stage",
    "StageContext",
    "StageTotals",
    "build_stages",
    "default_workers",
    "load_pipeline",
    "parse_pipeline",
]
