"""Settings of the ``support`` section: customer-service assistants (``luodi.apps.support``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["SupportSettings"]


class SupportSettings(BaseModel):
    """Where assistant files live, how intents are recognised and how sessions are kept."""

    assistants_dir: Path | None = None
    """Folder of assistant YAML files, one assistant per file, served as model
    ``support/<name>``. None: no assistants."""

    reload_check_s: float = Field(default=2.0, ge=0)
    """Least seconds between two looks at the folder for changed files (hot reload);
    0 looks on every request. ``POST /admin/support/reload`` reloads at once."""

    embedding_weight: float | None = Field(default=None, ge=0, le=1)
    """Share of the embedding model's features beside the lexical ones in the intent
    classifier. None: chosen per assistant by cross-validation on its examples."""

    chinese_gloss: Literal["auto", "on", "off"] = "auto"
    """Embed Chinese utterances as their English gloss (CC-CEDICT, word by word), for an
    English-only embedding model such as the bundled MiniLM. ``auto``: cross-validation
    on the assistant's examples decides."""

    model_features: Literal["auto", "off"] = "auto"
    """Offer the intent classifier the assistant's embedded model's hidden states (the
    mean over an utterance's tokens at a quarter to two thirds of its depth) beside the
    embedding and lexical features. ``auto``: cross-validation on the assistant's
    examples decides whether and which layer; each utterance then costs a forward pass
    through that many layers (Gemma-3-270M, layer 6 of 18: about 20 ms on one thread
    alone, 7-10 ms each when concurrent turns share a batched pass).
    Upstream models and models over ``model_features_max_gb`` are never read."""

    model_features_max_gb: float = Field(default=2.0, gt=0)
    """Largest model file (GB) read for hidden-state features: a bigger model's forward
    pass on the CPU would not fit a turn's latency budget."""

    model_features_threads: int = Field(default=1, ge=1)
    """CPU threads of those forward passes (1 leaves the serving engine its cores)."""

    accept_confidence: float = Field(default=0.55, ge=0, le=1)
    """Calibrated confidence at which the nearest-example answer is taken as it is;
    below it the model classifies (``path: llm``)."""

    llm_fallback: bool = True
    """Ask the assistant's model when the nearest examples are not confident enough."""

    judge_timeout_ms: float = Field(default=400, gt=0)
    """Longest wait for the model's classification in a turn or on the classify route;
    then the first layer's answer stands (``luodi support eval`` waits without limit)."""

    llm_candidates: int = Field(default=4, ge=1, le=50)
    """Intents (best first) the model chooses among, besides ``out_of_scope``."""

    session_ttl_s: int = Field(default=86_400, ge=60)
    """Seconds a conversation's session is kept after its last turn."""

    session_store: Literal["database", "redis"] = "database"
    """Where sessions live: the platform database (``storage.database_url``), or Redis
    (``redis_url``) for many gateway replicas; Redis expires each session by itself."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis server of ``session_store: redis``."""

    redis_prefix: str = Field(default="luodi:support", min_length=1)
    """Prefix of the Redis keys of the sessions."""

    history_turns: int = Field(default=6, ge=0, le=100)
    """Earlier turns (user and assistant) of a session given to the model."""

    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Timeout of one action webhook call."""

    allow_public_urls: bool = False
    """Let action webhooks go outside private and loopback networks."""

    allow_metadata_urls: bool = False
    """Let action webhooks reach link-local and cloud metadata addresses."""

    min_relevance: float = Field(default=0.35, ge=0, le=1)
    """Least relevance of a retrieved passage to the question: the mean of their embedding
    cosine and the share of the question's terms the passage contains. With none above
    it the assistant says it does not know and offers a human. 0.35 was calibrated on
    questions the shipped FAQ can and cannot answer (docs/support.md)."""

    passages: int = Field(default=3, ge=1, le=20)
    """Passages retrieved per question (those relevant enough go to the model)."""
