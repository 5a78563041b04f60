"""In-context learning: the k most similar labelled cases, and the LLM decides.

For a new case the learner retrieves the labelled cases nearest to it (cosine
similarity of the narrative embeddings blended with feature distance), shows them
with their labels, and asks the chat model for ``{"decision", "risk_score",
"reasons"}`` under a JSON schema whose ``reasons[].feature`` may only name the case's
own feature ids. The probability is not the number the model writes: it is the
model's own distribution over the three decisions at the decision token
(``calibration.decision_distribution``), calibrated on labelled cases scored
leave-one-out at training time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from luodi.apps.risk.calibration import DECISIONS, Calibrator, decision_distribution, risk_mass
from luodi.apps.risk.case import Case, LabelledCase, Reason
from luodi.apps.risk.citations import check_citations
from luodi.apps.risk.features import feature_table
from luodi.apps.risk.learners.base import Learner, Tools, Verdict, check_two_classes
from luodi.apps.risk.narrative import render
from luodi.apps.risk.space import FeatureSpace

__all__ = ["InContextLearner", "decision_schema"]

_CONCURRENCY = 4
_FALLBACK = {"approve": 0.1, "review": 0.5, "reject": 0.9}

_SYSTEM = {
    "en": (
        "You are a fraud analyst at a bank. Each case is a customer's recent activity, one "
        "fact per line; the id in brackets names the fact. Compare the new case with the "
        "labelled examples, then decide: approve (not fraud), review (unsure) or reject "
        "(fraud). Give a risk score from 0 to 100 and cite up to 3 facts by their ids."
    ),
    "zh": (
        "你是银行的反欺诈分析师。每个案例是一位客户的近期行为，每行一个事实，方括号中是该事实的编号。"
        "请将新案例与已标注的示例比较，然后决定："
        "approve（非欺诈）、review（存疑）或 reject（欺诈）。"
        "给出0到100的风险分，并按编号引用最多3个事实作为理由。"
    ),
}
_LABELS = {"en": ("not fraud", "fraud"), "zh": ("非欺诈", "欺诈")}
_HEAD = {
    "en": ("Labelled similar cases:", "Example", "New case:", "Answer in JSON."),
    "zh": ("相似的已标注案例：", "示例", "新案例：", "请用JSON回答。"),
}


def decision_schema(feature_ids: Sequence[str]) -> dict[str, Any]:
    """The answer's JSON schema; ``decision`` comes first, so its token is read early."""
    reason: dict[str, Any] = {
        "type": "object",
        "properties": {
            "feature": {"type": "string", "enum": sorted(set(feature_ids))},
            "evidence": {"type": "string", "maxLength": 100},
        },
        "required": ["feature", "evidence"],
        "additionalProperties": False,
    }
    reasons: dict[str, Any] = (
        {"type": "array", "items": reason, "maxItems": 3}
        if feature_ids
        else {"type": "array", "maxItems": 0}
    )
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": list(DECISIONS)},
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
            "reasons": reasons,
        },
        "required": ["decision", "risk_score", "reasons"],
        "additionalProperties": False,
    }


class InContextLearner(Learner):
    """Retrieval of labelled neighbours plus a schema-constrained LLM decision."""

    name = "incontext"
    uses_chat = True
    uses_embeddings = True

    cases: list[LabelledCase]
    vectors: NDArray[np.float32]
    space: FeatureSpace
    rows: NDArray[np.float64]
    calibrator: Calibrator
    chat_model: str = ""
    embedding_model: str = ""

    async def fit(self, cases: Sequence[LabelledCase], tools: Tools) -> None:
        check_two_classes(cases)
        embeddings = tools.need_embeddings(self.name)
        self.cases = list(cases)
        self.vectors = await embeddings.embed(
            [render(c, self.settings.language).text for c in cases]
        )
        self.space = FeatureSpace.fit(cases)
        self.rows = self.space.matrix(cases)
        self.embedding_model = embeddings.name
        self.calibrator = Calibrator()
        self.trained_on = len(cases)
        held = self._calibration_set()
        if held:
            chat = tools.need_chat(self.name)
            self.chat_model = chat.name
            raws = await self._gather(
                [self._ask(self.cases[i], self.vectors[i], chat, exclude=i) for i in held]
            )
            labels = [self.cases[i].label for i in held]
            self.calibrator.fit([r["raw"] for r in raws], labels)

    def _calibration_set(self) -> list[int]:
        """Up to ``calibration_cases`` labelled cases, the two labels alternating."""
        limit = self.settings.calibration_cases
        by_label = [
            sorted(
                (i for i, c in enumerate(self.cases) if c.label == y),
                key=lambda i: self.cases[i].id,
            )
            for y in (0, 1)
        ]
        out: list[int] = []
        for pair in zip(*by_label, strict=False):
            out.extend(pair)
        return sorted(out[:limit])

    def neighbours(
        self, vector: NDArray[np.float32], row: NDArray[np.float64], exclude: int | None = None
    ) -> list[int]:
        """Indices of the k most similar labelled cases, most similar first."""
        cosine = self.vectors @ vector
        distance = np.linalg.norm(self.rows - row, axis=1) / np.sqrt(max(1, self.rows.shape[1]))
        w = self.settings.embedding_weight
        similarity = w * cosine + (1 - w) / (1.0 + distance)
        if exclude is not None:
            similarity[exclude] = -np.inf
        order = np.argsort(-similarity, kind="stable")
        k = min(self.settings.neighbours, len(self.cases) - (exclude is not None))
        return [int(i) for i in order[:k]]

    def _messages(self, case: Case, shown: list[int]) -> list[dict[str, Any]]:
        lang = self.settings.language
        head, example, new, answer = _HEAD[lang]
        parts = [head]
        for n, i in enumerate(shown, 1):
            label = _LABELS[lang][self.cases[i].label]
            parts.append(f"{example} {n} ({label}):\n{render(self.cases[i], lang).text}")
        parts.append(f"{new}\n{render(case, lang).text}\n\n{answer}")
        return [
            {"role": "system", "content": _SYSTEM[lang]},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    async def _ask(
        self, case: Case, vector: NDArray[np.float32], chat: Any, exclude: int | None = None
    ) -> dict[str, Any]:
        shown = self.neighbours(vector, self.space.matrix([case])[0], exclude)
        ids = list(feature_table(case))
        reply = await chat.complete(
            self._messages(case, shown), decision_schema(ids), max_tokens=self.settings.max_tokens
        )
        try:
            answer = json.loads(reply.text)
        except json.JSONDecodeError:
            answer = {}
        distribution = decision_distribution(reply.text, reply.tokens)
        written = answer.get("decision") if answer.get("decision") in DECISIONS else None
        if distribution is not None:
            raw, source = risk_mass(distribution), "decision-token-logprobs"
        else:
            raw, source = _FALLBACK.get(written or "review", 0.5), "decision-text"
        reasons = [
            Reason(feature=str(r.get("feature", "")), evidence=str(r.get("evidence", "")))
            for r in answer.get("reasons") or []
            if isinstance(r, dict)
        ]
        decision = written or (
            max(distribution, key=distribution.__getitem__) if distribution else "review"
        )
        return {
            "raw": raw,
            "source": source,
            "distribution": distribution,
            "decision": decision,
            "model_risk_score": answer.get("risk_score"),
            "reasons": reasons,
            "ids": ids,
            "similar": [self.cases[i].id for i in shown],
        }

    async def _gather(self, calls: list[Any]) -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(call: Any) -> dict[str, Any]:
            async with gate:
                result: dict[str, Any] = await call
                return result

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def score(
        self, cases: Sequence[Case], tools: Tools, *, explain: bool = True
    ) -> list[Verdict]:
        if not cases:
            return []
        chat = tools.need_chat(self.name)
        embeddings = tools.need_embeddings(self.name)
        vectors = await embeddings.embed([render(c, self.settings.language).text for c in cases])
        asked = await self._gather(
            [self._ask(c, v, chat) for c, v in zip(cases, vectors, strict=True)]
        )
        verdicts = []
        for a in asked:
            checked = check_citations(a["reasons"], set(a["ids"]))
            verdicts.append(
                Verdict(
                    probability=self.calibrator(a["raw"]),
                    decision=a["decision"],
                    reasons=checked.kept,
                    dropped_reasons=checked.dropped,
                    similar_cases=a["similar"],
                    detail={
                        "chat_model": chat.name,
                        "probability_from": a["source"],
                        "decision_distribution": a["distribution"],
                        "raw_risk": round(a["raw"], 6),
                        "model_risk_score": a["model_risk_score"],
                        "dropped_features": list(checked.dropped_features),
                    },
                )
            )
        return verdicts
