"""One request's state inside the embedded engine."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from luodi.engine.llamacpp.detokenizer import IncrementalDetokenizer
from luodi.engine.llamacpp.drafting import PromptLookup
from luodi.engine.llamacpp.stop import StopMatcher
from luodi.engine.types import FinishReason, GenerationRequest, TokenLogprob

__all__ = ["Sequence", "SequenceStatus"]


class SequenceStatus(enum.Enum):
    """Where a sequence is in its life; only the scheduler moves it."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """A request being served: its tokens, its KV position and its output state.

    Invariant: positions ``[0, n_computed)`` of the prompt followed by the output are
    in the KV cache under ``seq_id``. While prefilling, more than the last sampled
    token is missing: the prompt, or after a preemption (which drops every cell) the
    prompt and the output so far, which are computed again without being sampled or
    streamed again. Once decoding, the last sampled token is the only one missing.
    """

    request: GenerationRequest
    status: SequenceStatus = SequenceStatus.WAITING
    seq_id: int | None = None
    n_computed: int = 0
    cached_tokens: int = 0
    """Prompt tokens copied from a cached prefix at first admission (reported in usage)."""
    preemptions: int = 0
    """How often the scheduler took this sequence's cells back to let others continue."""
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
    prompt_logprobs: list[TokenLogprob | None] = field(default_factory=list)
    """Scores of the prompt's tokens so far, when the request asked for them."""
    drafter: PromptLookup | None = None
    """Its prompt-lookup index, made at its first speculative step."""
    draft_accepts: float = 0.0
    draft_rejects: float = 0.0
    """Evidence on its drafts, fading step by step: draft tokens the model agreed with,
    and runs it cut short. ``draft_acceptance`` estimates from them."""
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    """Draft tokens decoded for it, and those the model agreed with."""

    @property
    def draft_acceptance(self) -> float:
        """The chance the model agrees with its next draft token (1/2 before evidence)."""
        return (self.draft_accepts + 1.0) / (self.draft_accepts + self.draft_rejects + 2.0)

    def __post_init__(self) -> None:
        if self.request.params.prompt_logprobs is not None:
            self.prompt_logprobs = [None]  # the first token has nothing before it

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
    def num_tokens(self) -> int:
        """Prompt plus output tokens: the positions this sequence has so far."""
        return len(self.request.prompt_tokens) + len(self.output_tokens)

    @property
    def is_prefilling(self) -> bool:
        return self.n_computed < max(self.prompt_len, self.num_tokens - 1)

    @property
    def all_tokens(self) -> list[int]:
        """Prompt then output, in position order."""
        return self.prompt + self.output_tokens if self.output_tokens else self.prompt

    def tokens_between(self, start: int, end: int) -> list[int]:
        """Positions ``[start, end)`` of the prompt followed by the output."""
        if end <= self.prompt_len:
            return self.prompt[start:end]
        return self.all_tokens[start:end]

    @property
    def kv_tokens(self) -> list[int]:
        """The tokens whose KV is in the cache, in position order."""
        return self.tokens_between(0, self.n_computed)

    @property
    def scoring(self) -> bool:
        """True while prompt tokens asked to be scored are not all scored yet.

        Such a sequence computes its whole prompt itself: a copied prefix has no logits.
        """
        wanted = self.request.params.prompt_logprobs is not None
        return wanted and len(self.prompt_logprobs) < self.prompt_len

    @property
    def prefill_only(self) -> bool:
        """A scoring request with ``max_tokens`` 0: done once its prompt is computed."""
        return self.request.params.max_tokens == 0

    def queued_seconds(self) -> float:
        start = self.admitted_at if self.admitted_at is not None else time.monotonic()
        return max(0.0, start - self.request.arrival_time)
