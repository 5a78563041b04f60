"""A luodi task file as lm-evaluation-harness reads it: its task YAML, for the same items.

lm-eval's ``local-completions`` scores a server with the prompt this YAML gives
(``doc_to_text``) followed by ``target_delimiter`` and each choice, which is what
``TaskDefinition.context`` + ``continuation_of`` send, so the two tools score the same
text (tests/evaluation/test_lm_eval_agreement.py, benchmarks/eval.py).
"""

from __future__ import annotations

from typing import Any

import yaml  # type: ignore[import-untyped]

from luodi.errors import ConfigError
from luodi.evaluation.tasks import Task

__all__ = ["lm_eval_task_yaml"]

_FIELDS = ("question", "subject")


def lm_eval_task_yaml(task: Task, name: str) -> str:
    """The lm-eval task YAML of ``task`` (zero-shot, choices scored as text).

    Raises:
        ConfigError: the task uses what this translation does not cover (few-shot
            examples, a description, letter continuations, lettered choices in the
            template).
    """
    d = task.definition
    if d.fewshot or d.description or d.continuation != "text":
        raise ConfigError(
            f"{task.name}: only zero-shot tasks without a description, scoring choice text,"
            " translate to lm-eval here"
        )
    template = d.template
    if "{choices}" in template or "{{" in template or "}}" in template:
        raise ConfigError(f"{task.name}: the template's braces do not translate to lm-eval")
    for field in _FIELDS:
        template = template.replace("{" + field + "}", "{{" + field + "}}")
    doc: dict[str, Any] = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(task.path)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": template,
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    text: str = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    return text
