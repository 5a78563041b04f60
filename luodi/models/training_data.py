"""Fine-tuning records: JSONL from the data pipeline's export, read into training texts.

Each line is one of
- an SFT conversation, ``{"messages": [{"role": ..., "content": ...}, ...]}`` (the
  pipeline's ``format: chat`` export), rendered with the model's own chat template;
- a plain record, ``{"text": "..."}`` (the pipeline's plain export, knowledge-base
  chunks), trained on as it is.

Other keys (``metadata``, ``provenance``) are ignored. The held-out share is chosen
by a seeded shuffle, so one file always splits the same way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luodi.errors import ConfigError

__all__ = ["Record", "load_records", "split_records"]


@dataclass(frozen=True, slots=True)
class Record:
    """One training example: a conversation to render, or a text as it is."""

    line: int
    text: str | None = None
    messages: tuple[tuple[str, str], ...] = ()


def _record(line: int, row: Any, path: Path) -> Record:
    where = f"{path}:{line}"
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: a record must be a JSON object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ConfigError(f"{where}: messages must be a non-empty list")
        turns: list[tuple[str, str]] = []
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise ConfigError(f"{where}: each message needs a role and a string content")
            turns.append((str(message.get("role", "user")), message["content"]))
        return Record(line, messages=tuple(turns))
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: a record needs 'messages' or a non-empty 'text'")
    return Record(line, text=text)


def load_records(path: Path) -> list[Record]:
    """Every record of a JSONL file; ConfigError naming the line if one is malformed."""
    if not path.is_file():
        raise ConfigError(f"training data {path} not found")
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from None
            records.append(_record(number, row, path))
    if not records:
        raise ConfigError(f"{path} holds no records")
    return records


def split_records(
    records: list[Record], held_out: float, *, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """(train, held-out): a seeded shuffle, then the last ``held_out`` share held out."""
    if not 0.0 < held_out < 1.0:
        raise ConfigError(f"the held-out share must be between 0 and 1, not {held_out}")
    order = list(records)
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(order) * held_out))
    if n_held >= len(order):
        raise ConfigError(f"{len(order)} records are too few to hold {held_out:.0%} out")
    return order[:-n_held], order[-n_held:]
