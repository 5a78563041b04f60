"""``RiskService``: train learners on labelled sets, score cases, audit and replay decisions.

The API routes and the CLI both come here. Every decision gets an id, is kept for
replay (``RiskStore``) and is written to the audit chain: the risk model, learner,
labelled-set version, the inputs hash (the record's ``prompt_sha256`` is the SHA-256
of the case's canonical JSON), score, probability, decision and reasons.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from luodi.apps.risk.case import Case, LabelledCase, ScoreAnswer, inputs_sha256
from luodi.apps.risk.learners import Learner, Tools, Verdict, build_learner, check_two_classes
from luodi.apps.risk.store import RiskStore
from luodi.config.risk import RiskSettings
from luodi.errors import InvalidRequestError, NotFoundError
from luodi.security import AuditEvent, Decision, Principal

__all__ = ["AuditSink", "Caller", "RiskService"]

AuditSink = Callable[[AuditEvent], Awaitable[None]]
"""Where decision records go: ``Gateway.audit`` in the server."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as the audit record names them."""

    principal: Principal | None = None
    endpoint: str = "luodi risk"
    source_ip: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RiskService:
    """Risk models in a ``RiskStore``; learners are cached in memory once loaded."""

    def __init__(self, settings: RiskSettings, *, audit: AuditSink | None = None) -> None:
        self.settings = settings
        self.store = RiskStore(Path(settings.data_dir))
        self._audit = audit
        self._cache: dict[tuple[str, str, str], Learner] = {}

    async def _write(self, event: AuditEvent) -> None:
        if self._audit is not None:
            await self._audit(event)

    # -- training -----------------------------------------------------------------

    async def train(
        self,
        model: str,
        cases: Sequence[LabelledCase],
        learners: Sequence[str],
        tools: Tools,
        *,
        replace: bool = False,
        caller: Caller | None = None,
    ) -> dict[str, Any]:
        """Add ``cases`` to the model's labelled set (or replace it) and train ``learners``.

        Raises:
            InvalidRequestError: an unknown learner, or a set without both labels.
        """
        self.store.check_name(model)
        if not learners:
            raise InvalidRequestError("name at least one learner to train", param="learners")
        built = [build_learner(name, self.settings) for name in dict.fromkeys(learners)]
        merged = {c.id: c for c in ([] if replace else self.store.labelled(model))}
        merged.update((c.id, c) for c in cases)
        labelled = list(merged.values())
        check_two_classes(labelled)
        version = await asyncio.to_thread(self.store.save_labelled, model, labelled)
        try:
            meta = self.store.meta(model)
        except NotFoundError:
            meta = {"name": model, "learners": {}, "history": []}
        report: dict[str, Any] = {}
        for learner in built:
            started = time.perf_counter()
            await learner.fit(labelled, tools)
            seconds = time.perf_counter() - started
            await asyncio.to_thread(self.store.save_learner, model, learner, version)
            self._cache[(model, learner.name, version)] = learner
            entry = {
                "labelled_set": version,
                "trained_at": _now(),
                "fit_seconds": round(seconds, 3),
                "trained_on": len(labelled),
                "cv_auc": await self._cv_auc(learner.name, labelled, tools),
                "chat_model": getattr(learner, "chat_model", None) or None,
                "embedding_model": getattr(learner, "embedding_model", None) or None,
            }
            meta["learners"][learner.name] = entry
            report[learner.name] = entry
        counts = {"0": sum(1 for c in labelled if c.label == 0)}
        counts["1"] = len(labelled) - counts["0"]
        meta.update(labelled_set=version, labels=counts, cases=len(labelled), updated_at=_now())
        if version not in meta["history"]:
            meta["history"].append(version)
        await asyncio.to_thread(self.store.save_meta, model, meta)
        who = caller or Caller()
        await self._write(
            AuditEvent.for_request(
                who.principal,
                endpoint=who.endpoint,
                kind="risk.train",
                source_ip=who.source_ip,
                model=model,
                detail={
                    "risk_model": model,
                    "labelled_set": version,
                    "labels": counts,
                    "added": len(cases),
                    "replace": replace,
                    "learners": {k: v["fit_seconds"] for k, v in report.items()},
                },
            )
        )
        return {"model": model, "labelled_set": version, "labels": counts, "learners": report}

    async def _cv_auc(self, name: str, cases: list[LabelledCase], tools: Tools) -> float | None:
        """Stratified k-fold AUC for the tabular learners (cheap); None for the LLM ones."""
        probe = build_learner(name, self.settings)
        if probe.uses_chat or probe.uses_embeddings:
            return None
        labels = np.asarray([c.label for c in cases])
        folds = int(min(5, labels.sum(), len(labels) - labels.sum()))
        if folds < 2:
            return None
        order = sorted(range(len(cases)), key=lambda i: (cases[i].label, cases[i].id))
        fold_of = {i: n % folds for n, i in enumerate(order)}
        scores = np.zeros(len(cases))
        for fold in range(folds):
            train = [cases[i] for i in range(len(cases)) if fold_of[i] != fold]
            test = [i for i in range(len(cases)) if fold_of[i] == fold]
            learner = build_learner(name, self.settings)
            await learner.fit(train, tools)
            verdicts = await learner.score([cases[i] for i in test], tools, explain=False)
            for i, v in zip(test, verdicts, strict=True):
                scores[i] = v.probability
        return round(float(roc_auc_score(labels, scores)), 4)

    # -- scoring ------------------------------------------------------------------

    def describe(self, model: str) -> dict[str, Any]:
        """The model's learners, their metrics and the label counts (``GET``)."""
        meta = self.store.meta(model)
        meta["default_learner"] = self._default_learner(meta)
        return meta

    def _default_learner(self, meta: dict[str, Any]) -> str:
        learners: dict[str, Any] = meta.get("learners", {})
        if self.settings.default_learner in learners:
            return self.settings.default_learner
        return next(iter(sorted(learners)), self.settings.default_learner)

    def learner(self, model: str, name: str | None = None) -> tuple[Learner, str]:
        """The trained learner ``name`` (the default when None) and its labelled-set version."""
        meta = self.store.meta(model)
        name = name or self._default_learner(meta)
        entry = meta.get("learners", {}).get(name)
        if entry is None:
            trained = ", ".join(sorted(meta.get("learners", {}))) or "none"
            raise NotFoundError(
                f"risk model {model!r} has no trained {name!r} learner (trained: {trained})",
                param="learner",
            )
        version = str(entry["labelled_set"])
        return self._load(model, name, version), version

    def _load(self, model: str, name: str, version: str) -> Learner:
        key = (model, name, version)
        if key not in self._cache:
            self._cache[key] = self.store.load_learner(model, name, version)
        return self._cache[key]

    async def score(
        self,
        model: str,
        cases: Sequence[Case],
        tools: Tools,
        *,
        learner: str | None = None,
        caller: Caller | None = None,
    ) -> list[ScoreAnswer]:
        """Score ``cases``; each decision is kept for replay and written to the audit chain."""
        if len(cases) > self.settings.max_batch:
            raise InvalidRequestError(
                f"at most {self.settings.max_batch} cases per request, got {len(cases)}",
                param="cases",
            )
        chosen, version = self.learner(model, learner)
        started = time.perf_counter()
        verdicts = await chosen.score(cases, tools)
        per_case_ms = (time.perf_counter() - started) * 1000 / max(1, len(cases))
        answers = []
        for case, verdict in zip(cases, verdicts, strict=True):
            answer = self._answer(case, verdict, chosen.name, version)
            await self._keep(model, case, answer, verdict, per_case_ms, caller or Caller())
            answers.append(answer)
        return answers

    @staticmethod
    def _answer(case: Case, verdict: Verdict, learner: str, version: str) -> ScoreAnswer:
        return ScoreAnswer(
            id=case.id,
            risk_score=verdict.risk_score,
            probability=round(min(1.0, max(0.0, verdict.probability)), 6),
            decision=verdict.decision,
            reasons=verdict.reasons,
            learner=learner,
            decision_id=f"dec-{uuid.uuid4().hex}",
            similar_cases=verdict.similar_cases,
            dropped_reasons=verdict.dropped_reasons,
            labelled_set=version,
        )

    async def _keep(
        self,
        model: str,
        case: Case,
        answer: ScoreAnswer,
        verdict: Verdict,
        latency_ms: float,
        caller: Caller,
    ) -> None:
        assert answer.decision_id is not None
        detail = {
            "decision_id": answer.decision_id,
            "risk_model": model,
            "learner": answer.learner,
            "labelled_set": answer.labelled_set,
            "inputs_sha256": inputs_sha256(case),
            "case_id": case.id,
            "risk_score": answer.risk_score,
            "probability": answer.probability,
            "decision": answer.decision,
            "reasons": [r.model_dump() for r in answer.reasons],
            "dropped_reasons": answer.dropped_reasons,
            "similar_cases": answer.similar_cases,
            **{k: v for k, v in verdict.detail.items() if k != "decision_distribution"},
        }
        record = {**detail, "case": case.model_dump(mode="json"), "answer": answer.model_dump()}
        await asyncio.to_thread(self.store.save_decision, answer.decision_id, record)
        await self._write(
            AuditEvent.for_request(
                caller.principal,
                endpoint=caller.endpoint,
                kind="risk.decision",
                prompt=case.canonical(),
                response=json.dumps(answer.model_dump(), sort_keys=True, ensure_ascii=False),
                decision=Decision.ALLOWED,
                source_ip=caller.source_ip,
                model=model,
                latency_ms=latency_ms,
                detail=detail,
            )
        )

    # -- replay -------------------------------------------------------------------

    async def replay(self, decision_id: str, tools: Tools) -> dict[str, Any]:
        """Score a kept decision's case again with the same learner and labelled set."""
        record = self.store.decision(decision_id)
        case = Case.model_validate(record["case"])
        if inputs_sha256(case) != record["inputs_sha256"]:
            raise InvalidRequestError(
                f"decision {decision_id}: the kept case no longer matches its inputs hash",
                param="decision_id",
            )
        learner = self._load(record["risk_model"], record["learner"], record["labelled_set"])
        [verdict] = await learner.score([case], tools)
        replayed = self._answer(case, verdict, learner.name, record["labelled_set"])
        original = ScoreAnswer.model_validate(record["answer"])
        matches = (
            replayed.decision == original.decision
            and abs(replayed.probability - original.probability) < 1e-6
            and [r.feature for r in replayed.reasons] == [r.feature for r in original.reasons]
        )
        return {
            "decision_id": decision_id,
            "risk_model": record["risk_model"],
            "learner": record["learner"],
            "labelled_set": record["labelled_set"],
            "inputs_sha256": record["inputs_sha256"],
            "original": original.model_dump(exclude={"decision_id"}),
            "replayed": replayed.model_dump(exclude={"decision_id"}),
            "matches": matches,
        }
