"""Kept records into their output shape: as they are, or SFT chat, with provenance."""

from __future__ import annotations

import hashlib
from typing import Any

from luodi.pipeline.records import LINE, SOURCE_HASH, public
from luodi.pipeline.spec import PipelineSpec
from luodi.pipeline.stage import Batch, Rejection

__all__ = ["export_batch"]


def _provenance(record: dict[str, Any], spec: PipelineSpec, run: str) -> dict[str, Any]:
    return {
        "source": spec.input.name,
        "line": record.get(LINE),
        "source_sha256": record.get(SOURCE_HASH),
        "sha256": hashlib.sha256(record["text"].encode()).hexdigest(),
        "stages": [s.stage for s in spec.stages],
        "pipeline": run,
    }


def export_batch(batch: Batch, spec: PipelineSpec, run: str) -> tuple[Batch, list[Rejection]]:
    """Rows to write for ``batch``, and records that cannot take the shape (no prompt).

    Args:
        batch: kept records, still holding the reader's private keys.
        spec: the pipeline (format, chat options, provenance).
        run: the pipeline's fingerprint, recorded in provenance.
    """
    rows: Batch = []
    bad: list[Rejection] = []
    for record in batch:
        fields = public(record)
        if spec.format == "chat":
            prompt = record.get(spec.chat.prompt_field)
            if not isinstance(prompt, str) or not prompt.strip():
                bad.append(Rejection(record, "no_prompt", f"no {spec.chat.prompt_field} field"))
                continue
            messages = [{"role": "system", "content": spec.chat.system}] if spec.chat.system else []
            messages += [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": record["text"]},
            ]
            meta = {k: v for k, v in fields.items() if k not in ("text", spec.chat.prompt_field)}
            row: dict[str, Any] = {"messages": messages, "metadata": meta}
        else:
            row = fields
        if spec.provenance:
            row["provenance"] = _provenance(record, spec, run)
        rows.append(row)
    return rows, bad
