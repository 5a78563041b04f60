"""What an engine reports as it works; the metrics module implements it."""

from __future__ import annotations

from typing import Literal, Protocol, get_args

__all__ = ["STEP_KINDS", "DraftTally", "EngineObserver", "NullObserver", "StepKind"]

StepKind = Literal["decode", "mixed", "prefill"]
"""A step's tokens: decodes only (drafts included), decodes beside prompt tokens, or
prompt tokens only. Mixed against decode steps is what arriving prompts cost running
streams in inter-token latency (``engine.step_slack`` bounds it)."""

STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)


class EngineObserver(Protocol):
    """Callbacks from the engine thread; they must be cheap and never raise."""

    def on_queued(self, waiting: int, running: int) -> None: ...

    def on_admitted(self, queue_wait_s: float, cached_tokens: int) -> None: ...

    def on_step(
        self, batch_size: int, n_tokens: int, seconds: float, kind: StepKind = "decode"
    ) -> None: ...

    def on_first_token(self, ttft_s: float) -> None: ...

    def on_token(self, itl_s: float) -> None: ...

    def on_draft(self, drafted: int, accepted: int) -> None: ...

    def on_finished(
        self, reason: str, prompt_tokens: int, completion_tokens: int, e2e_s: float
    ) -> None: ...


class NullObserver:
    """Observes nothing."""

    def on_queued(self, waiting: int, running: int) -> None:
        pass

    def on_admitted(self, queue_wait_s: float, cached_tokens: int) -> None:
        pass

    def on_step(
        self, batch_size: int, n_tokens: int, seconds: float, kind: StepKind = "decode"
    ) -> None:
        pass

    def on_first_token(self, ttft_s: float) -> None:
        pass

    def on_token(self, itl_s: float) -> None:
        pass

    def on_draft(self, drafted: int, accepted: int) -> None:
        pass

    def on_finished(
        self, reason: str, prompt_tokens: int, completion_tokens: int, e2e_s: float
    ) -> None:
        pass


class DraftTally(NullObserver):
    """Counts speculative draft tokens and those kept (benchmarks and tests read it)."""

    def __init__(self) -> None:
        self.drafted = 0
        self.accepted = 0

    def on_draft(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
