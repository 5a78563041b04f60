"""One request's state inside the embedded engine."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from luodi.engine.llamacpp.detokenizer import IncrementalDetokenizer
from luodi.engine.llamacpp.stop import StopMatcher
from luodi.engine.types import FinishReason, GenerationRequest

__all__ = ["Sequence", "SequenceStatus"]


class SequenceStatus(enum.Enum):
    """Where a sequence is in its life; only the scheduler moves it."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """A request being served: its tokens, its KV position and its output state.

    Invariant: positions ``[0, n_computed)`` of ``all_tokens`` are in the KV cache
    under ``seq_id``. While prefilling, ``n_computed < len(prompt)``; once decoding,
    the last sampled token is the only one not yet in the cache.
    """

    request: GenerationRequest
    status: SequenceStatus = SequenceStatus.WAITING
    seq_id: int | None = None
    n_computed: int = 0
    cached_tokens: int = 0
    output_tokens: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    error: str | None = None
    cancelled: bool = False
    admitted_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    previous_token_at: float = 0.0
    detokenizer: IncrementalDetokenizer | None = None
    stop_matcher: StopMatcher | None = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def prompt(self) -> list[int]:
        return self.request.prompt_tokens

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_tokens)

    @property
    def is_prefilling(self) -> bool:
        return self.n_computed < self.prompt_len

    @property
    def kv_tokens(self) -> list[int]:
        """The tokens whose KV is in the cache, in position order."""
        all_tokens = self.prompt + self.output_tokens
        return all_tokens[: self.n_computed]

    @property
    def reserved_cells(self) -> int:
        """KV cells this sequence may still need, beyond what it shares with a cached prefix."""
        return self.prompt_len - self.cached_tokens + self.request.params.max_tokens

    def queued_seconds(self) -> float:
        start = self.admitted_at if self.admitted_at is not None else time.monotonic()
        return max(0.0, start - self.request.arrival_time)
