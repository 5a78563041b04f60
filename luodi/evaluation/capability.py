"""Capability: run a multiple-choice task against an endpoint and score it.

``loglikelihood`` picks the choice whose continuation the model finds most likely
(``acc``) and the most likely per UTF-8 byte (``acc_norm``: lm-eval's ``acc_bytes``
normalisation, fair between scripts whose characters take different byte counts).
``generate`` asks a chat endpoint for a letter (``acc`` only); ``generation`` tasks
(free answers, generation.py) report exact match as ``acc`` and token ``f1``. The two are different
measurements and are reported apart, never averaged.

Items run concurrently (the endpoint's own bound); ``predictions`` keep file order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.scoring import ChatChooser, ChoiceScorer
from luodi.evaluation.tasks import Task

__all__ = ["CapabilityResult", "Mode", "run_generate", "run_loglikelihood"]

Mode = Literal["loglikelihood", "generate", "generation"]


@dataclass(slots=True)
class CapabilityResult:
    """What ``luodi eval capability --out`` writes (the command's contract)."""

    task: str
    mode: Mode
    endpoint: str
    model: str
    n: int
    acc: float
    predictions: list[int]
    acc_norm: float | None = None
    f1: float | None = None
    judge: dict[str, Any] | None = None
    scorer: str = ""
    seed: int = 1234
    wall_s: float = 0.0
    requests_sent: int = 0
    cache_hits: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for optional in ("acc_norm", "f1", "judge"):
            if out[optional] is None:
                del out[optional]
        return out


async def run_loglikelihood(
    task: Task,
    scorer: ChoiceScorer,
    endpoint: Endpoint,
    *,
    limit: int | None = None,
    seed: int = 1234,
    on_item: Callable[[], None] | None = None,
) -> CapabilityResult:
    """Score every choice of the first ``limit`` items; argmax by sum and by sum per byte."""
    items = task.items[:limit] if limit is not None else task.items
    spec = task.definition
    started = time.perf_counter()

    async def one(index: int) -> dict[str, Any]:
        item = items[index]
        context = spec.context(item, task.examples_for(index))
        conts = [spec.continuation_of(item, c) for c in range(len(item.choices))]
        scores = await asyncio.gather(*(scorer.score(context, c) for c in conts))
        lls = [s.logprob for s in scores]
        per_byte = [ll / max(1, len(c.encode("utf-8"))) for ll, c in zip(lls, conts, strict=True)]
        if on_item is not None:
            on_item()
        return {
            "answer": item.answer,
            "pred": _argmax(lls),
            "pred_norm": _argmax(per_byte),
            "logprobs": lls,
            "greedy": [s.greedy for s in scores],
        }

    rows = await asyncio.gather(*(one(i) for i in range(len(items))))
    n = len(rows)
    return CapabilityResult(
        task=task.name,
        mode="loglikelihood",
        endpoint=endpoint.base_url,
        model=endpoint.model,
        n=n,
        acc=sum(r["pred"] == r["answer"] for r in rows) / n,
        acc_norm=sum(r["pred_norm"] == r["answer"] for r in rows) / n,
        predictions=[r["pred"] for r in rows],
        scorer=type(scorer).__name__,
        seed=seed,
        wall_s=time.perf_counter() - started,
        requests_sent=endpoint.requests_sent,
        cache_hits=endpoint.cache.hits if endpoint.cache else 0,
        items=rows,
    )


async def run_generate(
    task: Task,
    chooser: ChatChooser,
    *,
    limit: int | None = None,
    on_item: Callable[[], None] | None = None,
) -> CapabilityResult:
    """Ask for each item's letter; exact match against the answer."""
    items = task.items[:limit] if limit is not None else task.items
    endpoint = chooser.endpoint
    started = time.perf_counter()

    async def one(index: int) -> dict[str, Any]:
        pick = await chooser.choose(items[index], task.examples_for(index))
        if on_item is not None:
            on_item()
        return {"answer": items[index].answer, "pred": pick.index, "text": pick.text}

    rows = await asyncio.gather(*(one(i) for i in range(len(items))))
    n = len(rows)
    return CapabilityResult(
        task=task.name,
        mode="generate",
        endpoint=endpoint.base_url,
        model=endpoint.model,
        n=n,
        acc=sum(r["pred"] == r["answer"] for r in rows) / n,
        predictions=[r["pred"] for r in rows],
        scorer="ChatChooser",
        seed=chooser.seed,
        wall_s=time.perf_counter() - started,
        requests_sent=endpoint.requests_sent,
        cache_hits=endpoint.cache.hits if endpoint.cache else 0,
        items=rows,
    )


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
