"""Background ingest and sync jobs over real HTTP: 202 at once, progress, cancel, tenancy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from luodi.api.errors import install_error_handlers
from luodi.api.knowledge import build_knowledge_router
from luodi.config.knowledge import KnowledgeSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.errors import PermissionDeniedError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller
from tests.conftest import served

FIXTURES = Path(__file__).parent.parent / "fixtures" / "knowledge"
TENANT_OF = {"alice": "acme", "bob": "globex", "reader": "acme"}


async def authorize(request: Request, permission: str | None) -> Caller:
    user = request.headers.get("x-user", "alice")
    if user == "reader" and permission is not None and not permission.endswith(":read"):
        raise PermissionDeniedError(f"{user} lacks {permission}")
    return Caller(TENANT_OF[user], frozenset({"staff"}), user, lambda p: not p.endswith("manage"))


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
async def http(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    service = KnowledgeService(KnowledgeSettings(data_dir=tmp_path, embed_batch=4), embedder)
    service.create_collection("faq", shared=True)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_knowledge_router(service, authorize))
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client
    service.close()


def fixture_files() -> list[tuple[str, tuple[str, bytes]]]:
    return [
        ("files", (p.name, p.read_bytes()))
        for p in sorted(FIXTURES.iterdir())
        if p.name != "LICENSE.md"
    ]


async def finished(http: httpx.AsyncClient, url: str, user: str = "alice") -> dict[str, Any]:
    for _ in range(6000):
        job = (await http.get(url, headers={"x-user": user})).json()
        if job["state"] in ("done", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.02)  # the job runs in a worker thread: nothing to await
    raise AssertionError("job did not finish")


async def test_background_upload_answers_202_and_the_job_shows_progress_to_done(
    http: httpx.AsyncClient,
) -> None:
    files = [*fixture_files(), ("files", ("bad.pdf", b"garbage"))]
    sent = await http.post("/v1/knowledge/faq/documents?background=true", files=files)
    assert sent.status_code == 202, sent.text
    job = sent.json()
    assert job["object"] == "knowledge.job" and job["state"] in ("queued", "running")
    assert job["files"]["total"] == 5
    done = await finished(http, f"/v1/knowledge/faq/jobs/{job['id']}")
    assert done["state"] == "done"
    assert done["files"] == {"done": 5, "total": 5}
    assert done["chunks"]["done"] == done["chunks"]["total"] == done["report"]["chunks"] > 0
    assert [f["name"] for f in done["failed"]] == ["bad.pdf"]
    listed = (await http.get("/v1/knowledge/faq/jobs")).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]
    hits = await http.post("/v1/knowledge/faq/search", json={"query": "营业时间", "top_k": 1})
    assert hits.json()["data"][0]["document"] == "faq_cn.md"


async def test_the_synchronous_upload_is_unchanged(http: httpx.AsyncClient) -> None:
    sent = await http.post("/v1/knowledge/faq/documents", files=fixture_files()[:1])
    assert sent.status_code == 200
    assert sent.json()["object"] == "knowledge.ingest" and sent.json()["added"]


async def test_a_job_is_cancelled_and_other_tenants_and_readers_do_not_see_it(
    http: httpx.AsyncClient,
) -> None:
    body = " ".join(f"Clause {i} of the card terms explains the fees." for i in range(80))
    files = [("files", (f"terms-{k}.txt", f"Terms {k}. {body}".encode())) for k in range(10)]
    job = (await http.post("/v1/knowledge/faq/documents?background=true", files=files)).json()
    url = f"/v1/knowledge/faq/jobs/{job['id']}"
    other = await http.get(url, headers={"x-user": "bob"})
    assert other.status_code == 404 and other.json()["error"]["message"]
    assert (await http.get(url, headers={"x-user": "reader"})).status_code == 403
    assert (await http.delete(url, headers={"x-user": "bob"})).status_code == 404
    cancelled = await http.delete(url)
    assert cancelled.status_code == 200
    done = await finished(http, url)
    assert done["state"] == "cancelled" and done["files"]["done"] < 10
    assert (await http.get("/v1/knowledge/faq/jobs/nope")).status_code == 404


async def test_background_sync_answers_202_with_one_job_per_source(
    http: httpx.AsyncClient,
) -> None:
    sent = await http.post("/v1/knowledge/faq/sync", json={"background": True})
    assert sent.status_code == 202 and sent.json() == {"object": "knowledge.sync", "jobs": []}
