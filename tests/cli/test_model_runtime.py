"""``luodi model ps|load|unload`` against a real server's admin API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from luodi.cli.model_runtime import register
from luodi.security import Gateway
from tests.api.test_model_pool import on_demand, serve_pool
from tests.conftest import make_key

pytestmark = pytest.mark.model


def model_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


async def test_ps_load_and_unload_through_the_admin_api(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path
) -> None:
    runner, app = CliRunner(), model_app()
    async with serve_pool(tmp_path, live_gateway, [on_demand("alpha", aliases=["a"])]) as srv:
        key = srv.http.headers["Authorization"].removeprefix("Bearer ")

        def run(*args: str) -> tuple[int, str]:
            result = runner.invoke(app, [*args, "--url", srv.url, "--api-key", key])
            return result.exit_code, result.output

        code, out = await asyncio.to_thread(run, "ps")
        assert code == 0, out
        assert out.splitlines()[0].split()[:3] == ["NAME", "STATE", "MEMORY"]
        alpha = next(line for line in out.splitlines() if line.startswith("alpha"))
        assert "unloaded" in alpha and "a" in alpha.split()
        assert "budget" in out.splitlines()[-1]

        code, out = await asyncio.to_thread(run, "load", "a")
        assert code == 0 and out.startswith("alpha: loaded"), out
        code, out = await asyncio.to_thread(run, "unload", "alpha")
        assert code == 0 and out.strip() == "alpha: unloaded", out

        code, out = await asyncio.to_thread(run, "load", "nope")
        assert code == 1
        assert out.startswith("error: 404") and len(out.strip().splitlines()) == 1


async def test_a_key_without_models_manage_is_refused_in_one_line(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path
) -> None:
    runner, app = CliRunner(), model_app()
    async with serve_pool(tmp_path, live_gateway, [on_demand("alpha")]) as srv:
        key = make_key(live_gateway, "cli-model-developer", ["developer"])
        result = await asyncio.to_thread(
            runner.invoke, app, ["load", "alpha", "--url", srv.url, "--api-key", key]
        )
        assert result.exit_code == 1
        assert result.output.startswith("error: 403")
