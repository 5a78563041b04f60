"""--executor ray on a local Ray started by the test: same output as the local runner."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from luodi.cli.pipeline import app, privacy_scrubber
from luodi.pipeline import LocalRunner, StageContext, load_pipeline
from tests.pipeline.conftest import write_jsonl, write_pipeline
from tests.pipeline.test_runner import STAGES, corpus

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'luodi[ray]')")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_executor_matches_the_local_runner(tmp_path: Path, local_ray: Any) -> None:
    stages = [*STAGES, {"stage": "language"}, {"stage": "pii", "action": "redact"}]
    for name in ("local", "ray"):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "in.jsonl", corpus(120))
        write_pipeline(tmp_path / name, stages, shard_size=15)
    ctx = StageContext(scrubber_factory=functools.partial(privacy_scrubber, None))
    LocalRunner(load_pipeline(tmp_path / "local" / "pipeline.yaml"), ctx, workers=1).run()
    result = CliRunner().invoke(
        app,
        ["run", str(tmp_path / "ray" / "pipeline.yaml"), "--executor", "ray", "--workers", "2"],
    )
    assert result.exit_code == 0, result.output
    for name in ("kept.jsonl", "rejected.jsonl"):
        ours = (tmp_path / "ray" / "out" / name).read_text()
        assert ours == (tmp_path / "local" / "out" / name).read_text()
    assert local_ray.is_initialized()  # the pool used the test's Ray and left it running
