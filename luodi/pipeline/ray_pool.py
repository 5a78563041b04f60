"""Parallel segments on Ray: the same stage objects, in actors on a Ray cluster.

``RayPool`` is a ``SegmentPool``: each of its ``workers`` actors builds the pipeline's
stages once and runs one shard's segment per call, so a stage runs on Ray exactly as in
the local process pool. The runner is unchanged: it still streams shards, runs the dedup
stages in the driver in input order (their state is the run's, not a worker's) and
checkpoints after each window, so resume works the same.

Connect to a cluster with ``address`` (``ray://head:10001`` or ``auto``); without one, an
already initialised Ray is used, else a local one is started. The nodes need luodi and
its dependencies installed (the same image), since actors import ``luodi.pipeline``.
Needs the ``ray`` extra: ``pip install 'luodi[ray]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

from luodi.errors import ConfigError
from luodi.pipeline.registry import StageContext, build_stages
from luodi.pipeline.runner import PoolFactory, SegmentResult, Step, run_segment
from luodi.pipeline.spec import PipelineSpec
from luodi.pipeline.stage import Batch

__all__ = ["RayPool", "ray_pool"]


class _StageActor:
    """Holds one copy of the stages; a Ray actor (wrapped with ``ray.remote`` at start)."""

    def __init__(self, spec: PipelineSpec, ctx: StageContext) -> None:
        self.stages = build_stages(spec, ctx)

    def run(self, steps: list[Step], batch: Batch) -> SegmentResult:
        return run_segment(self.stages, steps, batch)


class RayPool:
    """``workers`` stage actors behind a ``ray.util.ActorPool`` (results in order)."""

    def __init__(
        self, spec: PipelineSpec, ctx: StageContext, workers: int, address: str | None = None
    ) -> None:
        try:
            # Through importlib: ray is an optional extra, absent where mypy runs in CI.
            ray: Any = importlib.import_module("ray")
            actor_pool: Any = importlib.import_module("ray.util").ActorPool
        except ImportError as exc:
            raise ConfigError(
                "--executor ray needs the ray extra: pip install 'luodi[ray]'"
            ) from exc
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_cpus=1)(_StageActor)
        self._actors = [actor.remote(spec, ctx) for _ in range(workers)]
        self._pool = actor_pool(self._actors)

    def map(self, steps: list[Step], batches: list[Batch]) -> list[SegmentResult]:
        results: list[SegmentResult] = list(
            self._pool.map(lambda a, b: a.run.remote(steps, b), batches)
        )
        return results

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        if self._started:
            self._ray.shutdown()


def ray_pool(address: str | None) -> PoolFactory:
    """A ``PoolFactory`` for ``LocalRunner(pool=...)`` connecting to ``address``."""

    def make(spec: PipelineSpec, ctx: StageContext, workers: int) -> RayPool:
        return RayPool(spec, ctx, workers, address)

    return make
