"""Layered intent recognition: nearest examples first, the model when they are unsure.

``IntentRecognizer`` keeps one ``IntentModel`` per assistant version (rebuilt when the
file changes) and asks the ``IntentJudge`` only below ``support.accept_confidence``;
the judge chooses among the nearest examples' best intents and ``out_of_scope``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from luodi.apps.support.assistant import OUT_OF_SCOPE, Assistant
from luodi.apps.support.classifier import Classification, IntentModel, LayerStates
from luodi.apps.support.glossary import default_glossary
from luodi.apps.support.judge import IntentJudge
from luodi.config.support import SupportSettings
from luodi.embedding import Embedder
from luodi.errors import LuodiError

__all__ = ["IntentRecognizer"]

log = logging.getLogger(__name__)


class IntentRecognizer:
    """Classifies utterances for any assistant; the indexes are built on first use."""

    def __init__(
        self,
        settings: SupportSettings,
        embedder: Callable[[], Embedder | None],
        judge: Callable[[Assistant], IntentJudge | None],
        states: Callable[[Assistant], LayerStates | None] | None = None,
    ) -> None:
        self._settings = settings
        self._embedder = embedder
        self._judge = judge
        self._states = states
        self._models: dict[str, tuple[Assistant, IntentModel]] = {}
        self._lock = threading.Lock()

    def model_for(self, assistant: Assistant) -> IntentModel:
        """The assistant's index, built now if the file is new or changed (blocking)."""
        with self._lock:
            known = self._models.get(assistant.name)
            if known is not None and known[0] is assistant:
                return known[1]
            gloss = {"auto": None, "on": True, "off": False}[self._settings.chinese_gloss]
            model = IntentModel(
                assistant,
                self._embedder(),
                embedding_weight=self._settings.embedding_weight,
                gloss=gloss,
                glossary=default_glossary,
                states=self._states(assistant) if self._states is not None else None,
            )
            self._models[assistant.name] = (assistant, model)
            return model

    async def classify(
        self, assistant: Assistant, text: str, *, use_llm: bool = True, deadline: bool = True
    ) -> Classification:
        """The intent of ``text``: ``path`` says which layer decided.

        With ``deadline`` the model gets ``support.judge_timeout_ms`` to answer (the turn
        has a latency budget; a busy engine would spend it in its queue), after which the
        first layer's answer stands. The evaluation turns it off to score the model itself.
        """
        start = time.perf_counter()
        known = self._models.get(assistant.name)
        if known is not None and known[0] is assistant:
            model = known[1]  # built: no worker-thread hop (they queue under load)
        else:
            model = await asyncio.to_thread(self.model_for, assistant)
        knn, ranked = await asyncio.to_thread(model.classify_ranked, text)
        judge = self._judge(assistant) if use_llm and self._settings.llm_fallback else None
        if knn.confidence >= self._settings.accept_confidence or judge is None:
            knn.latency_ms = (time.perf_counter() - start) * 1000
            return knn
        candidates = [
            intent
            for name, _ in ranked
            if name != OUT_OF_SCOPE and (intent := assistant.intent(name)) is not None
        ][: self._settings.llm_candidates]
        limit = self._settings.judge_timeout_ms / 1000 if deadline else None
        try:
            chosen, said = await asyncio.wait_for(
                judge.choose(assistant, candidates, text), timeout=limit
            )
        except TimeoutError:  # cancelling the call aborts its request in the engine
            log.info("intent model over %.0f ms, the first layer decides", limit and limit * 1000)
            knn.latency_ms = (time.perf_counter() - start) * 1000
            return knn
        except LuodiError as exc:  # the model is busy or failing: the first layer answers
            log.warning("intent model failed, nearest examples decide: %s", exc.message)
            knn.latency_ms = (time.perf_counter() - start) * 1000
            return knn
        if said < 0.5 and chosen != knn.intent:
            # The model is less sure of its pick than of a coin toss (Gemma-3-270M nearly
            # always is): the nearest examples' answer stands.
            knn.latency_ms = (time.perf_counter() - start) * 1000
            return knn
        if chosen == knn.intent:
            # Two layers agree: the chance both are wrong is the product of their doubts.
            confidence = 1 - (1 - knn.confidence) * (1 - said)
        else:
            confidence = said * (1 - knn.confidence)
        others = [(n, s) for n, s in ranked if n != chosen][:3]
        total = sum(max(s, 0.0) for _, s in others) or 1.0
        alternatives = [(n, (1 - confidence) * max(s, 0.0) / total) for n, s in others]
        return Classification(
            chosen, confidence, alternatives, "llm", (time.perf_counter() - start) * 1000
        )
