"""Settings of the ``risk`` section: fraud scoring (``/v1/apps/risk``, ``luodi risk``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["RiskSettings"]


class RiskSettings(BaseModel):
    """Risk models: where learners and decisions are kept, and how they decide."""

    data_dir: Path = Path("data/risk")
    """Folder of the labelled sets, trained learners and the decisions kept for replay."""

    default_learner: Literal["incontext", "probe", "logreg", "gbdt"] = "logreg"
    """Learner used when a score request names none."""

    llm_model: str | None = None
    """Chat model the in-context learner asks (through the gateway). None: the first served."""

    embedding_model: str | None = None
    """Embedding model of the probe and of the in-context retrieval. None: the first served.
    Serve the chat GGUF as the embedding model (``embeddings.model``) to probe the LLM itself."""

    language: Literal["en", "zh"] = "en"
    """Language of the narratives the LLM learners read."""

    neighbours: int = Field(default=4, ge=1, le=32)
    """Labelled cases shown to the in-context learner per decision."""

    embedding_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    """Share of narrative-embedding similarity (the rest: feature distance) in retrieval."""

    calibration_cases: int = Field(default=8, ge=0, le=1000)
    """Labelled cases the in-context learner scores (leave-one-out) at training to
    calibrate its decision probabilities; 0 leaves them uncalibrated."""

    review_threshold: float = Field(default=0.3, gt=0.0, lt=1.0)
    """Probability from which a case is sent to review (below it: approve)."""

    reject_threshold: float = Field(default=0.7, gt=0.0, lt=1.0)
    """Probability from which a case is rejected."""

    max_batch: int = Field(default=1000, ge=1, le=100_000)
    """Most cases in one score or train request."""

    max_tokens: int = Field(default=192, ge=32, le=4096)
    """Most tokens of one in-context answer."""

    @model_validator(mode="after")
    def _check(self) -> RiskSettings:
        if self.review_threshold >= self.reject_threshold:
            raise ValueError(
                f"risk.review_threshold={self.review_threshold} must be below "
                f"risk.reject_threshold={self.reject_threshold}"
            )
        return self
