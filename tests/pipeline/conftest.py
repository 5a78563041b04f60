"""Small real inputs, Chinese and English, and helpers to run a pipeline on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

EN = [
    "The river flooded the valley in the spring, and the farmers had to move their animals "
    "to the hills until the water went down.",
    "Most people who learn to cook start with simple dishes, and that is a good way to build "
    "confidence in the kitchen with the basics.",
    "The library will be closed on Monday for repairs to the roof, and the staff have asked "
    "readers to return their books by Friday.",
]
ZH = [
    "今天天气很好，我们一起去公园散步吧。公园里有很多人在锻炼身体，孩子们在草地上玩耍。",
    "这家餐厅的菜很有特色，服务员也非常热情。我们点了四个菜和一个汤，大家都吃得很满意。",
    "图书馆周一因屋顶维修闭馆，工作人员请读者在周五之前归还借阅的图书，给大家带来不便敬请谅解。",
]
ID_NUMBER = "11010519491231002X"  # GB 11643's published example; its check digit is valid


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_pipeline(folder: Path, stages: list[dict[str, Any]], **top: Any) -> Path:
    doc = {"input": "in.jsonl", "output": "out/kept.jsonl", "stages": stages, **top}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path
