"""Where risk models live on disk: labelled sets, trained learners, decisions for replay.

Under ``risk.data_dir``::

    models/<model>/labelled/<version>.jsonl    every labelled set ever trained on
    models/<model>/learners/<learner>@<version>.joblib
    models/<model>/model.json                  current version, label counts, learner metrics
    decisions/<decision id>.json               the case and answer (``luodi risk explain``)

A labelled set's version is a digest of its cases, so the same set is the same
version on any machine. Files are written to a temporary name and renamed, so a
crash never leaves half a learner. Learners are joblib pickles: only load a data
dir you trust, as with any model file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib

from luodi.apps.risk.case import LabelledCase
from luodi.apps.risk.learners.base import Learner
from luodi.errors import InvalidRequestError, NotFoundError

__all__ = ["RiskStore", "labelled_version"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DECISION = re.compile(r"^dec-[0-9a-f]{32}$")


def labelled_version(cases: Sequence[LabelledCase]) -> str:
    """``ls-`` + 12 hex digits of the digest of the cases, sorted by id."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda c: c.id):
        digest.update(case.canonical().encode("utf-8"))
        digest.update(b"\n")
    return f"ls-{digest.hexdigest()[:12]}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RiskStore:
    """Risk models and decisions in a folder; safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._lock = threading.Lock()

    @staticmethod
    def check_name(model: str) -> str:
        """A model name safe as a folder name; 400 naming ``model`` otherwise."""
        if not _NAME.match(model):
            raise InvalidRequestError(
                f"risk model name {model!r} must be 1-64 letters, digits, '.', '_' or '-'",
                param="model",
            )
        return model

    def _dir(self, model: str) -> Path:
        return self.root / "models" / self.check_name(model)

    def models(self) -> list[str]:
        """Names of the risk models that have been trained."""
        base = self.root / "models"
        return (
            sorted(p.name for p in base.iterdir() if (p / "model.json").exists())
            if base.exists()
            else []
        )

    def meta(self, model: str) -> dict[str, Any]:
        """The model's description; 404 if it was never trained."""
        path = self._dir(model) / "model.json"
        if not path.exists():
            raise NotFoundError(f"risk model {model!r} has not been trained", param="model")
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def save_meta(self, model: str, meta: dict[str, Any]) -> None:
        """Replace the model's description."""
        text = json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False)
        _write(self._dir(model) / "model.json", text.encode("utf-8"))

    def labelled(self, model: str, version: str | None = None) -> list[LabelledCase]:
        """A labelled set (the current one by default); empty for an untrained model."""
        if version is None:
            try:
                version = str(self.meta(model)["labelled_set"])
            except NotFoundError:
                return []
        path = self._dir(model) / "labelled" / f"{version}.jsonl"
        if not path.exists():
            raise NotFoundError(f"labelled set {version} of {model!r} is not kept", param="version")
        with path.open(encoding="utf-8") as lines:
            return [LabelledCase.model_validate_json(line) for line in lines if line.strip()]

    def save_labelled(self, model: str, cases: Sequence[LabelledCase]) -> str:
        """Keep a labelled set; returns its version."""
        version = labelled_version(cases)
        body = "".join(c.canonical() + "\n" for c in sorted(cases, key=lambda c: c.id))
        _write(self._dir(model) / "labelled" / f"{version}.jsonl", body.encode("utf-8"))
        return version

    def _learner_path(self, model: str, learner: str, version: str) -> Path:
        return self._dir(model) / "learners" / f"{learner}@{version}.joblib"

    def save_learner(self, model: str, learner: Learner, version: str) -> None:
        """Keep a trained learner under the labelled set it learned from."""
        path = self._learner_path(model, learner.name, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            joblib.dump(learner, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_learner(self, model: str, learner: str, version: str) -> Learner:
        """A trained learner; 404 naming the learner when it was not trained on ``version``."""
        path = self._learner_path(model, learner, version)
        if not path.exists():
            raise NotFoundError(
                f"risk model {model!r} has no {learner!r} learner trained on {version}",
                param="learner",
            )
        loaded = joblib.load(path)
        assert isinstance(loaded, Learner)
        return loaded

    def save_decision(self, decision_id: str, record: dict[str, Any]) -> None:
        """Keep what ``explain`` needs to replay a decision."""
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        _write(self.root / "decisions" / f"{decision_id}.json", text.encode("utf-8"))

    def decision(self, decision_id: str) -> dict[str, Any]:
        """A kept decision; 404 if unknown."""
        if not _DECISION.match(decision_id):
            raise InvalidRequestError(f"{decision_id!r} is not a decision id", param="decision_id")
        path = self.root / "decisions" / f"{decision_id}.json"
        if not path.exists():
            raise NotFoundError(f"decision {decision_id} is not kept here", param="decision_id")
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
