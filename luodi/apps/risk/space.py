"""The numeric matrix the classical learners see, learned from the training cases.

Numbers stay numbers (a missing one takes the training median); a string feature
becomes one column per value seen in training (``channel=web``), mapped back to its
feature id when a contribution is reported. Columns are standardised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from luodi.apps.risk.case import Case, FeatureValue
from luodi.apps.risk.features import feature_table

__all__ = ["FeatureSpace"]


def _is_number(value: FeatureValue) -> bool:
    return isinstance(value, int | float)


@dataclass
class FeatureSpace:
    """Columns learned from training cases: ``columns[i]`` belongs to ``owners[i]``."""

    columns: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    fill: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    scale: NDArray[np.float64] = field(default_factory=lambda: np.ones(0))

    @classmethod
    def fit(cls, cases: Sequence[Case]) -> FeatureSpace:
        """Learn the columns, fill values and scaling from ``cases``."""
        tables = [feature_table(c) for c in cases]
        numeric: dict[str, list[float]] = {}
        categories: dict[str, set[str]] = {}
        for table in tables:
            for fid, value in table.items():
                if _is_number(value):
                    numeric.setdefault(fid, []).append(float(value))
                else:
                    categories.setdefault(fid, set()).add(str(value))
        space = cls()
        fills: list[float] = []
        for fid in sorted(numeric):
            space.columns.append(fid)
            space.owners.append(fid)
            fills.append(float(np.median(numeric[fid])))
        for fid in sorted(categories):
            for value in sorted(categories[fid]):
                space.columns.append(f"{fid}={value}")
                space.owners.append(fid)
                fills.append(0.0)
        space.fill = np.asarray(fills, dtype=np.float64)
        raw = space._raw(tables)
        space.mean = raw.mean(axis=0) if len(raw) else np.zeros(len(fills))
        std = raw.std(axis=0) if len(raw) else np.ones(len(fills))
        space.scale = np.where(std > 1e-12, std, 1.0)
        return space

    def _raw(self, tables: Sequence[dict[str, FeatureValue]]) -> NDArray[np.float64]:
        index = {c: i for i, c in enumerate(self.columns)}
        out = np.tile(self.fill, (len(tables), 1))
        for row, table in enumerate(tables):
            for fid, value in table.items():
                if _is_number(value):
                    col = index.get(fid)
                    if col is not None:
                        out[row, col] = float(value)
                else:
                    col = index.get(f"{fid}={value}")
                    if col is not None:
                        out[row, col] = 1.0
        return out

    def matrix(self, cases: Sequence[Case]) -> NDArray[np.float64]:
        """The standardised matrix of ``cases``, one row each."""
        return (self._raw([feature_table(c) for c in cases]) - self.mean) / self.scale

    def by_feature(self, row: NDArray[np.float64]) -> dict[str, float]:
        """Per-column values summed per feature id (contributions back to the case's ids)."""
        totals: dict[str, float] = {}
        for owner, value in zip(self.owners, row.tolist(), strict=True):
            totals[owner] = totals.get(owner, 0.0) + float(value)
        return totals
