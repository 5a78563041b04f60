"""Parallel segments on Ray Data: the same stage objects, in ``map_batches`` actors.

``RayPool`` is a ``SegmentPool``. Each window of shards becomes a Ray dataset with one
row per shard; ``Dataset.map_batches`` runs a callable class over it on an actor pool of
``workers`` actors, each of which builds the pipeline's stages once (Ray Data's way to
hold state per worker), so a stage runs on Ray exactly as in the local process pool.
Records travel pickled in a binary column: they are free-form dicts, which Arrow would
force into one schema per block. The runner is unchanged: it still streams shards,
runs the dedup stages in the driver in input order (their state is the run's, not a
worker's) and checkpoints after each window, so resume works the same.

Connect to a cluster with ``address`` (``ray://head:10001`` or ``auto``); without one, an
already initialised Ray is used, else a local one is started. The nodes need luodi and
its dependencies installed (the same image), since the actors import ``luodi.pipeline``.
Needs the ``ray`` extra: ``pip install 'luodi[ray]'``.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

from luodi.errors import ConfigError
from luodi.pipeline.registry import StageContext, build_stages
from luodi.pipeline.runner import PoolFactory, SegmentResult, Step, run_segment
from luodi.pipeline.spec import PipelineSpec
from luodi.pipeline.stage import Batch

__all__ = ["RayPool", "ray_pool"]


class _SegmentMapper:
    """A ``map_batches`` callable class: one copy of the stages per Ray Data actor."""

    def __init__(self, spec: PipelineSpec, ctx: StageContext) -> None:
        self.stages = build_stages(spec, ctx)

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        results = []
        for payload in rows["payload"]:
            steps, batch = pickle.loads(payload)
            results.append(pickle.dumps(run_segment(self.stages, steps, batch)))
        return {"index": rows["index"], "result": results}


class RayPool:
    """Runs each window's shards through Ray Data on ``workers`` actors (results in order)."""

    def __init__(
        self, spec: PipelineSpec, ctx: StageContext, workers: int, address: str | None = None
    ) -> None:
        try:
            # Through importlib: ray is an optional extra, absent where mypy runs in CI.
            ray: Any = importlib.import_module("ray")
            self._data: Any = importlib.import_module("ray.data")
        except ImportError as exc:
            raise ConfigError(
                "--executor ray needs the ray extra: pip install 'luodi[ray]'"
            ) from exc
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._spec, self._ctx, self._workers = spec, ctx, workers
        context = self._data.DataContext.get_current()
        context.enable_progress_bars = False  # the runner draws its own, per stage

    def map(self, steps: list[Step], batches: list[Batch]) -> list[SegmentResult]:
        if not batches:
            return []
        rows = [
            {"index": i, "payload": pickle.dumps((steps, batch))} for i, batch in enumerate(batches)
        ]
        dataset = self._data.from_items(rows, override_num_blocks=len(rows))
        mapped = dataset.map_batches(
            _SegmentMapper,
            fn_constructor_args=(self._spec, self._ctx),
            batch_size=1,
            concurrency=min(self._workers, len(rows)),
            num_cpus=1,
        )
        out = sorted(mapped.take_all(), key=lambda row: int(row["index"]))
        return [pickle.loads(row["result"]) for row in out]

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def ray_pool(address: str | None) -> PoolFactory:
    """A ``PoolFactory`` for ``LocalRunner(pool=...)`` connecting to ``address``."""

    def make(spec: PipelineSpec, ctx: StageContext, workers: int) -> RayPool:
        return RayPool(spec, ctx, workers, address)

    return make
