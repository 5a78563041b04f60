"""The local runner: shards streamed through a process pool, resumable shard by shard.

The input is read ``workers`` shards at a time (memory stays bounded by
``workers × shard_size`` records). The stage list is cut into segments: runs of
stateless stages execute on the pool, one shard per task; each stateful stage (dedup)
runs in this process over the window's shards in input order, so its hashes and LSH
index see every record of the run, across shards, in the same order on every run.

After each window the shards' kept and rejected records are written as part files
under ``<output>.work/`` and a checkpoint (finished shard count, per-stage totals and
the dedup state) replaces the previous one atomically. A killed run resumes after the
last checkpoint: parts of a window that was not checkpointed are simply written again.
At the end the parts are joined into the output and rejected files, ``summary.json`` is
written beside the output and the work folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luodi.errors import ConfigError
from luodi.pipeline.export import export_batch
from luodi.pipeline.records import (
    LINE,
    DocumentLoader,
    append_file,
    input_format,
    read_shards,
    rejection_line,
    write_jsonl,
    write_parquet,
)
from luodi.pipeline.registry import StageContext, build_stages
from luodi.pipeline.report import render_html
from luodi.pipeline.spec import PipelineSpec
from luodi.pipeline.stage import Batch, Outcome, Stage
from luodi.pipeline.stages import EVIDENCE, Compliance

__all__ = [
    "LocalRunner",
    "PoolFactory",
    "ProcessPool",
    "SegmentPool",
    "StageTotals",
    "default_workers",
]

_EXAMPLES = 3
_CLUSTERS = 20
"""Duplicate clusters listed in the summary and report, largest first."""


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class StageTotals:
    """One stage's counts over the whole run."""

    name: str
    records_in: int = 0
    records_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Any]] = field(default_factory=dict)
    """Reason → the first few dropped records' ids or input lines (never their text)."""
    clusters: dict[str, list[Any]] = field(default_factory=dict)
    """Kept record → [duplicates dropped, the first few of their ids or input lines]."""

    def add(self, n_in: int, outcome: Outcome) -> None:
        self.records_in += n_in
        self.records_out += len(outcome.kept)
        self.stats.update(outcome.stats)
        for r in outcome.rejected:
            self.dropped[r.reason] += 1
            ref = r.record.get("id", r.record.get(LINE))
            seen = self.examples.setdefault(r.reason, [])
            if len(seen) < _EXAMPLES:
                seen.append(ref)
            if r.duplicate_of is not None:
                cluster = self.clusters.setdefault(r.duplicate_of, [0, []])
                cluster[0] += 1
                if len(cluster[1]) < _EXAMPLES:
                    cluster[1].append(ref)

    def largest_clusters(self, n: int = _CLUSTERS) -> list[dict[str, Any]]:
        """The ``n`` largest duplicate clusters: the kept record, its size, some members."""
        ranked = sorted(self.clusters.items(), key=lambda kv: (-kv[1][0], str(kv[0])))
        return [
            {"kept": kept, "duplicates": size, "examples": members}
            for kept, (size, members) in ranked[:n]
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.records_in,
            "out": self.records_out,
            "dropped": dict(self.dropped.most_common()),
            "examples": self.examples,
            "stats": dict(sorted(self.stats.items())),
            "clusters": len(self.clusters),
            "largest_clusters": self.largest_clusters(),
        }


# (kept, [(stage index, records in, outcome)]) for one shard through one segment.
SegmentResult = tuple[Batch, list[tuple[int, int, Outcome]]]

Step = tuple[int, bool]
"""(stage index, prepare?): run the stage, or only its stateless ``prepare`` half."""


def run_segment(stages: list[Stage], steps: list[Step], batch: Batch) -> SegmentResult:
    """Run each step over one batch, in order."""
    done: list[tuple[int, int, Outcome]] = []
    for i, prepare in steps:
        if prepare:
            batch = stages[i].prepare(batch)  # type: ignore[attr-defined]
            continue
        outcome = stages[i](batch)
        done.append((i, len(batch), outcome))
        batch = outcome.kept
    return batch, done


# Worker processes build their stages once, in the pool's initializer; a pool task only
# carries a shard. This global exists only inside pool workers.
_worker_stages: list[Stage] = []


_PARENT_POLL_S = 1.0


def _init_worker(spec: PipelineSpec, ctx: StageContext) -> None:
    global _worker_stages
    _exit_with_parent(os.getppid())
    _worker_stages = build_stages(spec, ctx)


def _exit_with_parent(parent: int) -> None:
    """End this worker within a second of the run that started it (killed, crashed).

    A killed run's workers otherwise wait forever on a task queue whose write end they
    hold themselves, each keeping its stages' memory (hundreds of MB with the PII stage).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="luodi-parent-watch", daemon=True).start()


def _worker_segment(steps: list[Step], batch: Batch) -> SegmentResult:
    return run_segment(_worker_stages, steps, batch)


class SegmentPool(Protocol):
    """Where parallel segments run: one shard per task, results in the shards' order."""

    def map(self, steps: list[Step], batches: list[Batch]) -> list[SegmentResult]: ...

    def close(self) -> None: ...


PoolFactory = Callable[[PipelineSpec, StageContext, int], SegmentPool]
"""(spec, context, workers) → a pool whose workers have built the pipeline's stages."""


class ProcessPool:
    """The local pool: ``workers`` processes, each building its stages once."""

    def __init__(self, spec: PipelineSpec, ctx: StageContext, workers: int) -> None:
        self._executor = ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(spec, ctx)
        )

    def map(self, steps: list[Step], batches: list[Batch]) -> list[SegmentResult]:
        return list(self._executor.map(_worker_segment, [steps] * len(batches), batches))

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)


def _segments(stages: list[Stage]) -> list[tuple[bool, list[Step]]]:
    """[(parallel?, steps)]: stateless stages grouped, each stateful stage alone.

    A stateful stage with a stateless ``prepare`` half (near-dup signatures) has that half
    run in the latest parallel segment before it. Stateful stages only drop records and
    never change one, so a prepare step may move back past them: near-dup signatures are
    then computed in the same pool round trip as normalize, before exact dedup.
    """
    out: list[tuple[bool, list[Step]]] = []
    for i, stage in enumerate(stages):
        if not stage.stateful:
            if out and out[-1][0]:
                out[-1][1].append((i, False))
            else:
                out.append((True, [(i, False)]))
            continue
        if hasattr(stage, "prepare"):
            parallel = [seg for seg in out if seg[0]]
            if parallel:
                parallel[-1][1].append((i, True))
            else:
                out.append((True, [(i, True)]))
        out.append((False, [(i, False)]))
    return out


def _fingerprint(spec: PipelineSpec) -> str:
    """The pipeline and its input file's size and time: resume only the same run."""
    data = spec.model_dump(mode="json", exclude={"workers"})
    try:
        stat = spec.input.stat()
        data["_input"] = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        pass  # the reader names the missing input
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass
class _Checkpoint:
    fingerprint: str
    shards_done: int = 0
    read_rejects: StageTotals = field(default_factory=lambda: StageTotals("input"))
    export_rejects: StageTotals = field(default_factory=lambda: StageTotals("export"))
    totals: list[StageTotals] = field(default_factory=list)
    states: dict[int, object] = field(default_factory=dict)
    elapsed_s: float = 0.0


Progress = Callable[[int, list[StageTotals]], None]
"""Called after each finished shard with its index and the totals so far."""


class LocalRunner:
    """Runs a pipeline on this machine. ``run()`` returns the summary it wrote."""

    def __init__(
        self,
        spec: PipelineSpec,
        ctx: StageContext | None = None,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        pipeline_file: Path | None = None,
        pool: PoolFactory | None = None,
        document_loader: DocumentLoader | None = None,
    ) -> None:
        """``pool``: where parallel segments run (default: a process pool of ``workers``,
        or this process alone when ``workers`` is 1); ``RayPool`` runs them on Ray."""
        self.spec = spec
        self.ctx = ctx or StageContext()
        self.workers = workers or spec.workers or default_workers()
        self.progress = progress
        self.pipeline_file = pipeline_file
        self.pool_factory = pool
        self.document_loader = document_loader
        self.work = spec.output.with_name(spec.output.name + ".work")

    # -- checkpoint -------------------------------------------------------------------

    @property
    def _checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pkl"

    def _load_checkpoint(self, stages: list[Stage]) -> _Checkpoint:
        fp = _fingerprint(self.spec)
        if not self._checkpoint_path.exists():
            return _Checkpoint(fp, totals=[StageTotals(s.name) for s in stages])
        with self._checkpoint_path.open("rb") as f:
            # Our own file, written by this runner under the output folder.
            cp: _Checkpoint = pickle.load(f)
        if cp.fingerprint != fp:
            raise ConfigError(
                f"{self.work} holds a run of a different pipeline; remove it to start over"
            )
        for i, state in cp.states.items():
            stages[i].load_state(state)  # type: ignore[attr-defined]
        return cp

    def _save_checkpoint(self, cp: _Checkpoint, stages: list[Stage]) -> None:
        cp.states = {i: s.state() for i, s in enumerate(stages) if s.stateful}  # type: ignore[attr-defined]
        tmp = self._checkpoint_path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(cp, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self._checkpoint_path)

    # -- the run ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        spec = self.spec
        started = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        stages = build_stages(spec, self.ctx)
        cp = self._load_checkpoint(stages)
        segments = _segments(stages)
        pool: SegmentPool | None = None
        if self.pool_factory is not None:
            pool = self.pool_factory(spec, self.ctx, self.workers)
        elif self.workers > 1:
            pool = ProcessPool(spec, self.ctx, self.workers)
        try:
            shards = read_shards(
                spec.input,
                spec.shard_size,
                skip=cp.shards_done,
                fmt=input_format(spec.input, spec.input_format),
                text_field=spec.text_field,
                document_loader=self.document_loader,
            )
            while True:
                window = [s for _, s in zip(range(self.workers), shards, strict=False)]
                if not window:
                    break
                self._run_window(window, stages, segments, pool, cp)
                cp.elapsed_s += time.monotonic() - started
                started = time.monotonic()
                self._save_checkpoint(cp, stages)
        finally:
            if pool is not None:
                pool.close()
        cp.elapsed_s += time.monotonic() - started
        return self._finish(cp, stages)

    def _run_window(
        self,
        window: list[tuple[int, Batch, list[Any]]],
        stages: list[Stage],
        segments: list[tuple[bool, list[Step]]],
        pool: SegmentPool | None,
        cp: _Checkpoint,
    ) -> None:
        batches = [batch for _, batch, _ in window]
        rejected: list[list[dict[str, Any]]] = [
            [rejection_line("input", r) for r in bad] for _, _, bad in window
        ]
        for _, _, bad in window:
            cp.read_rejects.add(len(bad), Outcome(kept=[], rejected=bad))
        for parallel, steps in segments:
            if parallel and pool is not None:
                results = pool.map(steps, batches)
            else:
                results = [run_segment(stages, steps, b) for b in batches]
            for n, (kept, done) in enumerate(results):
                batches[n] = kept
                for i, n_in, outcome in done:
                    cp.totals[i].add(n_in, outcome)
                    rejected[n] += [rejection_line(stages[i].name, r) for r in outcome.rejected]
        for n, (index, _, _) in enumerate(window):
            rows, bad = export_batch(batches[n], self.spec, cp.fingerprint[:12])
            cp.export_rejects.add(len(batches[n]), Outcome(kept=rows, rejected=bad))
            rejected[n] += [rejection_line("export", r) for r in bad]
            write_jsonl(self.work / f"kept-{index:06d}.jsonl", rows)
            write_jsonl(self.work / f"rejected-{index:06d}.jsonl", rejected[n])
            cp.shards_done = index + 1
            if self.progress is not None:
                self.progress(index, cp.totals)

    def _finish(self, cp: _Checkpoint, stages: list[Stage]) -> dict[str, Any]:
        spec = self.spec
        spec.output.parent.mkdir(parents=True, exist_ok=True)
        for target, prefix in ((spec.output, "kept"), (spec.rejected_path, "rejected")):
            tmp = target.with_name(target.name + ".tmp")
            parts = [self.work / f"{prefix}-{index:06d}.jsonl" for index in range(cp.shards_done)]
            if prefix == "kept" and spec.writes_parquet:
                write_parquet(tmp, parts)
            else:
                with tmp.open("w", encoding="utf-8") as out:
                    for part in parts:
                        append_file(out, part)
            if prefix == "rejected":
                os.chmod(tmp, 0o600)  # rejected records may still hold personal data
            os.replace(tmp, target)
        summary = self._summary(cp, stages)
        tmp = spec.summary_path.with_name("summary.json.tmp")
        tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, spec.summary_path)
        report = spec.summary_path.with_name("report.html")
        report.write_text(render_html(summary), encoding="utf-8")
        shutil.rmtree(self.work)
        return summary

    def _summary(self, cp: _Checkpoint, stages: list[Stage]) -> dict[str, Any]:
        spec = self.spec
        first = cp.totals[0].records_in if cp.totals else 0
        last = cp.export_rejects.records_out  # what was written, after the export shape
        read = first + cp.read_rejects.records_in
        return {
            "pipeline": str(self.pipeline_file) if self.pipeline_file else None,
            "input": str(spec.input),
            "output": str(spec.output),
            "rejected": str(spec.rejected_path),
            "records_in": read,
            "records_out": last,
            "records_rejected": read - last,
            "unreadable_lines": dict(cp.read_rejects.dropped),
            "export_rejected": dict(cp.export_rejects.dropped),
            "format": spec.format,
            "shards": cp.shards_done,
            "shard_size": spec.shard_size,
            "workers": self.workers,
            "elapsed_s": round(cp.elapsed_s, 3),
            "records_per_s": round(read / cp.elapsed_s, 1) if cp.elapsed_s > 0 else None,
            "stages": [t.to_dict() for t in cp.totals],
            "compliance": _evidence(stages, cp.totals),
        }


def _evidence(stages: list[Stage], totals: list[StageTotals]) -> list[dict[str, Any]]:
    """The compliance table: each check that ran, its counts, the articles and controls."""
    rows: list[dict[str, Any]] = []
    for stage, total in zip(stages, totals, strict=True):
        if isinstance(stage, Compliance):
            for check in stage.checks():
                rows.append(
                    {
                        "check": check,
                        "stage": stage.name,
                        "checked": total.stats.get(f"checked:{check}", 0),
                        "failed": total.stats.get(f"failed:{check}", 0),
                        **EVIDENCE[check],
                    }
                )
        elif stage.name == "pii":
            removed = sum(n for k, n in total.stats.items() if k.startswith("removed:"))
            residue = sum(n for k, n in total.stats.items() if k.startswith("residue:"))
            rows.append(
                {
                    "check": "pii",
                    "stage": stage.name,
                    "checked": total.records_in,
                    "failed": total.records_in - total.records_out,
                    "removed": removed,
                    "residue_quarantined": residue,
                    **EVIDENCE["pii"],
                }
            )
    return rows
