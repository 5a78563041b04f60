"""Generation tasks: a free answer scored by exact match and token F1 (SQuAD's rules).

Task JSONL: ``question`` and ``answer`` (a string, or a list of acceptable strings).
Each question goes to ``/v1/chat/completions`` greedy with a fixed seed; the answer is
normalised (lower case, punctuation and English articles dropped, whitespace collapsed)
and compared with each reference: exact match, and F1 over tokens (words; each CJK
character a token, as CMRC scores Chinese). The best reference counts.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luodi.evaluation.capability import CapabilityResult
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.tasks import TaskFileError

__all__ = [
    "DEFAULT_RUBRIC",
    "GenerationItem",
    "Judge",
    "exact_match",
    "f1",
    "load_generation_task",
    "run_generation",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_PUNCT = set(string.punctuation) | {"，", "。", "！", "？", "、", "；", "：", "“", "”", "（", "）"}
INSTRUCTION = "Answer with the answer alone, in as few words as possible."


@dataclass(frozen=True, slots=True)
class GenerationItem:
    question: str
    answers: tuple[str, ...]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for word in normalise(text).split():
        if _CJK.search(word):
            out.extend(ch for ch in word)
        else:
            out.append(word)
    return out


def exact_match(prediction: str, reference: str) -> bool:
    return normalise(prediction) == normalise(reference)


def f1(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def load_generation_task(path: Path) -> list[GenerationItem]:
    """Read a generation JSONL; a bad line names file and line."""
    if not path.is_file():
        raise TaskFileError(f"{path}: no such task file")
    items: list[GenerationItem] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("question"), str):
            raise TaskFileError(f"{where}: expected an object with a 'question' string")
        answer = raw.get("answer")
        answers = [answer] if isinstance(answer, str) else answer
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise TaskFileError(f"{where}: 'answer' must be a string or a list of strings")
        items.append(GenerationItem(raw["question"], tuple(answers)))
    if not items:
        raise TaskFileError(f"{path}: no items")
    return items


DEFAULT_RUBRIC = (
    "You grade answers to questions. Given the question, the reference answers and a"
    " candidate answer, decide whether the candidate answer means the same as one of the"
    " references (wording, language and extra politeness do not matter; a wrong or"
    ' missing fact does). Reply as JSON: {"correct": true|false, "reason": "..."}.'
)


class Judge:
    """LLM-as-judge: a rubric prompt to a judge endpoint, a JSON verdict per answer.

    The verdict is constrained by a ``response_format`` JSON schema; greedy, fixed seed.
    A judge is a model with its own errors: the report names it, and exact match and F1
    stay beside its figure.
    """

    def __init__(self, endpoint: Endpoint, *, rubric: str = DEFAULT_RUBRIC, seed: int = 1234):
        self.endpoint = endpoint
        self.rubric = rubric
        self.seed = seed

    async def verdict(self, item: GenerationItem, answer: str) -> tuple[bool, str]:
        refs = "\n".join(f"- {a}" for a in item.answers)
        reply = await self.endpoint.post(
            "/chat/completions",
            {
                "messages": [
                    {"role": "system", "content": self.rubric},
                    {
                        "role": "user",
                        "content": f"Question: {item.question}\nReference answers:\n{refs}\n"
                        f"Candidate answer: {answer}",
                    },
                ],
                "temperature": 0.0,
                "seed": self.seed,
                "max_tokens": 128,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "verdict",
                        "strict": True,
                        "schema": {
                            "type": "object",
                            "properties": {
                                "correct": {"type": "boolean"},
                                "reason": {"type": "string"},
                            },
                            "required": ["correct", "reason"],
                            "additionalProperties": False,
                        },
                    },
                },
            },
        )
        text = ((reply.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return False, f"unreadable verdict: {text[:200]}"
        if not isinstance(value, dict) or not isinstance(value.get("correct"), bool):
            return False, f"unreadable verdict: {text[:200]}"
        return bool(value["correct"]), str(value.get("reason", ""))


async def run_generation(
    path: Path,
    endpoint: Endpoint,
    *,
    limit: int | None = None,
    seed: int = 1234,
    max_tokens: int = 32,
    on_item: Callable[[], None] | None = None,
    judge: Judge | None = None,
) -> CapabilityResult:
    """Ask every question; ``acc`` is exact match, ``f1`` the mean token F1.

    With a ``judge``, each answer also gets its verdict; ``judge`` in the result names
    the judge and holds its accuracy.
    """
    items = load_generation_task(path)[:limit]
    started = time.perf_counter()

    async def one(item: GenerationItem) -> dict[str, Any]:
        answer = await endpoint.post(
            "/chat/completions",
            {
                "messages": [{"role": "user", "content": f"{item.question}\n{INSTRUCTION}"}],
                "temperature": 0.0,
                "seed": seed,
                "max_tokens": max_tokens,
            },
        )
        text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        row: dict[str, Any] = {
            "text": text,
            "answers": list(item.answers),
            "em": max(exact_match(text, a) for a in item.answers),
            "f1": max(f1(text, a) for a in item.answers),
        }
        if judge is not None:
            row["judge_correct"], row["judge_reason"] = await judge.verdict(item, text)
        if on_item is not None:
            on_item()
        return row

    rows = await asyncio.gather(*(one(it) for it in items))
    n = len(rows)
    verdicts = None
    if judge is not None:
        verdicts = {
            "endpoint": judge.endpoint.base_url,
            "model": judge.endpoint.model,
            "rubric": judge.rubric,
            "accuracy": sum(bool(r["judge_correct"]) for r in rows) / n,
        }
    return CapabilityResult(
        task=path.stem,
        mode="generation",
        endpoint=endpoint.base_url,
        model=endpoint.model,
        n=n,
        acc=sum(bool(r["em"]) for r in rows) / n,
        f1=sum(float(r["f1"]) for r in rows) / n,
        judge=verdicts,
        predictions=[int(bool(r["em"])) for r in rows],
        scorer="exact_match+f1",
        seed=seed,
        wall_s=time.perf_counter() - started,
        requests_sent=endpoint.requests_sent,
        cache_hits=endpoint.cache.hits if endpoint.cache else 0,
        items=list(rows),
    )
