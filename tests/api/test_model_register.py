"""A model registered while serving (a new version, a fine-tuned file) serves at once."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from luodi.security import Gateway
from tests.api.test_model_pool import serve_pool
from tests.conftest import default_gguf, make_key

pytestmark = pytest.mark.model


def models_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    os.link(default_gguf(), folder / "v2.gguf")  # the same file, as a new version would be
    (folder / "notes.gguf").write_text("not a model")
    return folder


async def test_a_registered_model_is_listed_and_loads_on_its_first_request(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path
) -> None:
    folder = models_folder(tmp_path)
    async with serve_pool(tmp_path, live_gateway, [], model_dir=folder) as srv:
        resp = await srv.http.post(
            "/admin/models", json={"name": "gemma-v2", "path": "v2.gguf", "aliases": ["v2"]}
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["state"] == "unloaded"
        cards = await srv.cards()
        assert cards["gemma-v2"]["state"] == "unloaded" and cards["gemma-v2"]["aliases"] == ["v2"]
        answer = await srv.complete("v2")
        assert answer.status_code == 200, answer.text
        assert (await srv.cards())["gemma-v2"]["state"] == "loaded"

        again = await srv.http.post("/admin/models", json={"name": "gemma-v2", "path": "v2.gguf"})
        assert again.status_code == 400 and "already served" in again.json()["error"]["message"]


async def test_registration_reads_only_gguf_files_inside_model_dir(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path
) -> None:
    folder = models_folder(tmp_path)
    async with serve_pool(tmp_path, live_gateway, [], model_dir=folder) as srv:
        outside = await srv.http.post(
            "/admin/models", json={"name": "x", "path": str(default_gguf())}
        )
        assert outside.status_code == 400
        assert "outside engine.pool.model_dir" in outside.json()["error"]["message"]
        climbing = await srv.http.post("/admin/models", json={"name": "x", "path": "../x.gguf"})
        assert climbing.status_code == 400
        junk = await srv.http.post("/admin/models", json={"name": "x", "path": "notes.gguf"})
        assert junk.status_code == 400 and junk.json()["error"]["param"] == "path"
        assert "x" not in await srv.cards()

        developer = make_key(live_gateway, f"dev-{uuid.uuid4().hex[:6]}", ["developer"])
        refused = await srv.http.post(
            "/admin/models",
            json={"name": "y", "path": "v2.gguf"},
            headers={"Authorization": f"Bearer {developer}"},
        )
        assert refused.status_code == 403


async def test_registration_is_off_without_a_model_dir(
    tmp_path: Path, live_gateway: Gateway, model_cache: Path
) -> None:
    async with serve_pool(tmp_path, live_gateway, []) as srv:
        resp = await srv.http.post("/admin/models", json={"name": "x", "path": "v2.gguf"})
    assert resp.status_code == 403
    assert "engine.pool.model_dir" in resp.json()["error"]["message"]
