"""LoRA adapters over HTTP: ``model:adapter`` names, run-time adds, unknown ones, RBAC."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from luodi.config.models import AdapterSettings
from luodi.security import Gateway
from tests.api.test_model_pool import Served, on_demand, serve_pool
from tests.conftest import default_gguf, make_key
from tests.engine.llamacpp.lora_gguf import write_random_lora

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    write_random_lora(default_gguf(), folder / "terse.gguf", seed=1)
    write_random_lora(default_gguf(), folder / "verbose.gguf", seed=2)
    return folder


async def first_logprob(srv: Served, model: str, **extra: Any) -> float:
    resp = await srv.http.post(
        "/v1/completions",
        json={
            "model": model,
            "prompt": "The capital of France is",
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": 1,
            **extra,
        },
    )
    assert resp.status_code == 200, resp.text
    return float(resp.json()["choices"][0]["logprobs"]["token_logprobs"][0])


async def test_model_colon_adapter_runs_the_model_under_its_adapter(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path, adapter_dir: Path
) -> None:
    terse = AdapterSettings(name="terse", path=adapter_dir / "terse.gguf")
    models = [on_demand("alpha", aliases=["a"], adapters=[terse])]
    async with serve_pool(tmp_path, live_gateway, models) as srv:
        cards = await srv.cards()
        assert cards["alpha:terse"]["parent"] == "alpha"
        assert cards["alpha:terse"]["adapter"] == "terse"
        assert cards["alpha"]["adapters"] == [{"name": "terse", "scale": 1.0}]
        base = await first_logprob(srv, "alpha")
        tuned = await first_logprob(srv, "a:terse")  # an alias takes adapters too
        assert abs(base - tuned) > 0.05
        assert srv.pool.get("alpha").loads == 1  # one model in memory for both names

        missing = await srv.http.post(
            "/v1/completions", json={"model": "alpha:nope", "prompt": "Hi", "max_tokens": 1}
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"


async def test_an_adapter_added_through_the_admin_api_serves_at_once(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path, adapter_dir: Path
) -> None:
    models = [on_demand("alpha")]
    async with serve_pool(tmp_path, live_gateway, models, adapter_dir=adapter_dir) as srv:
        resp = await srv.http.post(
            "/admin/models/alpha/adapters",
            json={"name": "verbose", "path": "verbose.gguf", "scale": 2.0},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["adapters"] == [{"name": "verbose", "scale": 2.0}]
        base = await first_logprob(srv, "alpha")
        assert abs(await first_logprob(srv, "alpha:verbose") - base) > 0.05

        outside = await srv.http.post(
            "/admin/models/alpha/adapters", json={"name": "x", "path": "../../etc/passwd"}
        )
        assert outside.status_code == 400
        not_lora = await srv.http.post(
            "/admin/models/alpha/adapters", json={"name": "y", "path": str(default_gguf())}
        )
        assert not_lora.status_code == 400


async def test_run_time_adapters_are_off_without_an_adapter_dir(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path, adapter_dir: Path
) -> None:
    async with serve_pool(tmp_path, live_gateway, [on_demand("alpha")]) as srv:
        resp = await srv.http.post(
            "/admin/models/alpha/adapters",
            json={"name": "terse", "path": str(adapter_dir / "terse.gguf")},
        )
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "adapters_disabled"


async def test_an_adapter_needs_its_models_invoke_right_and_allowed_models(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path, adapter_dir: Path
) -> None:
    terse = AdapterSettings(name="terse", path=adapter_dir / "terse.gguf")
    models = [on_demand("alpha", adapters=[terse]), on_demand("beta")]
    async with serve_pool(tmp_path, live_gateway, models) as srv:
        # An admin key ("*") limited to beta may not reach alpha through its adapter.
        key = make_key(
            live_gateway,
            f"adapter-admin-{uuid.uuid4().hex[:8]}",
            ["admin"],
            allowed_models=["beta"],
        )
        resp = await srv.http.post(
            "/v1/completions",
            json={"model": "alpha:terse", "prompt": "Hi", "max_tokens": 1},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status_code == 403, resp.text
        dev = make_key(live_gateway, f"adapter-dev-{uuid.uuid4().hex[:8]}", ["developer"])
        resp = await srv.http.post(
            "/v1/completions",
            json={"model": "alpha:terse", "prompt": "Hi", "max_tokens": 1},
            headers={"Authorization": f"Bearer {dev}"},
        )
        assert resp.status_code == 200, resp.text
