"""Keys and body limits are checked from the headers, before the body is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import AuditFilter, Gateway
from tests.conftest import make_key, served

pytestmark = pytest.mark.model


@dataclass
class Gated:
    url: str
    gateway: Gateway
    admin: str
    developer: str


@pytest.fixture(scope="module")
async def gated(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gated]:
    """The API with a 1 MB body limit (4 MB on embeddings) and a 2 MB upload limit."""
    from luodi.api.app import create_app
    from luodi.config import KnowledgeSettings, ServerSettings, Settings

    settings = Settings(
        server=ServerSettings(max_body_mb=1, body_limits_mb={"/v1/embeddings": 4}),
        knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("kb-gate"), max_upload_mb=2),
    )
    app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
    admin = make_key(live_gateway, "gate-admin", ["admin"])
    developer = make_key(live_gateway, "gate-dev", ["developer"])
    async with served(app) as url:
        yield Gated(url, live_gateway, admin, developer)


async def _raw_head(url: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send only a request head (no body) and read the answer: it must come unprompted."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    head_part, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(
        line.decode().split(": ", 1) for line in head_part.split(b"\r\n") if b": " in line
    )
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _head(path: str, length: int, key: str | None = None, ctype: str = "application/json") -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n"
    )


async def test_a_64_mb_body_without_a_key_is_refused_before_it_is_sent(gated: Gated) -> None:
    status, _, _ = await _raw_head(gated.url, _head("/v1/chat/completions", 64 * 1024 * 1024))
    assert status == 413  # the size is known from the header: no need to look further


async def test_a_body_within_limits_without_a_key_gets_401_before_the_body(gated: Gated) -> None:
    status, headers, body = await _raw_head(gated.url, _head("/v1/chat/completions", 900_000))
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert json.loads(body)["error"]["type"] == "authentication_error"


async def test_an_upload_without_a_key_is_refused_before_it_is_spooled(gated: Gated) -> None:
    status, _, _ = await _raw_head(
        gated.url, _head("/v1/knowledge/docs/documents", 1_500_000, ctype="multipart/form-data")
    )
    assert status == 401


async def test_an_oversized_body_with_a_key_gets_413_naming_the_limit(gated: Gated) -> None:
    status, _, body = await _raw_head(
        gated.url, _head("/v1/chat/completions", 2 * 1024 * 1024, key=gated.developer)
    )
    assert status == 413
    assert "1 MB" in json.loads(body)["error"]["message"]


async def test_per_route_limits_apply(gated: Gated) -> None:
    padded = json.dumps({"model": "m", "input": 1, "pad": "a" * (3 * 1024 * 1024)})
    async with httpx.AsyncClient(base_url=gated.url, timeout=60) as http:
        embeddings = await http.post(
            "/v1/embeddings",
            content=padded,
            headers={
                "Authorization": f"Bearer {gated.developer}",
                "Content-Type": "application/json",
            },
        )
    upload, _, _ = await _raw_head(
        gated.url,
        _head("/v1/knowledge/docs/documents", 4 * 1024 * 1024, gated.developer, "multipart/x"),
    )
    assert embeddings.status_code == 400  # read and parsed: 4 MB are allowed there
    assert upload == 413  # 2 MB upload limit + 1 MB of multipart framing


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    yield b'{"model": "m", "messages": [{"role": "user", "content": "'
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}]}'


async def test_a_chunked_body_is_cut_at_the_limit(gated: Gated) -> None:
    async with httpx.AsyncClient(base_url=gated.url, timeout=30) as http:
        try:
            resp = await http.post(
                "/v1/chat/completions",
                content=_chunks(3 * 1024 * 1024),
                headers={
                    "Authorization": f"Bearer {gated.developer}",
                    "Content-Type": "application/json",
                },
            )
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            return  # the server answered and closed while the client still sent: refused
    assert resp.status_code == 413


async def test_failed_authentication_is_audited_on_every_path(gated: Gated) -> None:
    async with httpx.AsyncClient(base_url=gated.url, timeout=30) as http:
        bad = {"Authorization": "Bearer sk-luodi-not-a-key"}
        codes = [
            (await http.get("/admin/users", headers=bad)).status_code,
            (await http.get("/v1/models")).status_code,
            (await http.get("/v1/no-such-route")).status_code,
        ]
    assert codes == [401, 401, 401]  # unknown routes are not revealed without a key
    denied = [
        r["endpoint"]
        for r in gated.gateway.audit_log.query(AuditFilter(), limit=10_000)
        if r["user"] is None and r["decision"] == "denied"
    ]
    assert {"/admin/users", "/v1/models", "/v1/no-such-route"} <= set(denied)


async def test_health_is_a_bare_probe_without_a_key(gated: Gated) -> None:
    async with httpx.AsyncClient(base_url=gated.url, timeout=30) as http:
        bare = await http.get("/health")
        full = await http.get("/health", headers={"Authorization": f"Bearer {gated.developer}"})
    assert bare.status_code == 200 and bare.json() == {"status": "ok"}
    assert full.status_code == 200 and full.json()["models"]


async def test_metrics_and_docs_need_a_key(gated: Gated) -> None:
    async with httpx.AsyncClient(base_url=gated.url, timeout=30) as http:
        anonymous = [(await http.get(p)).status_code for p in ("/metrics", "/openapi.json")]
        dev = {"Authorization": f"Bearer {gated.developer}"}
        admin = {"Authorization": f"Bearer {gated.admin}"}
        dev_metrics = await http.get("/metrics", headers=dev)
        admin_metrics = await http.get("/metrics", headers=admin)
        docs = await http.get("/openapi.json", headers=dev)
    assert anonymous == [401, 401]
    assert dev_metrics.status_code == 403 and "metrics:read" in dev_metrics.text
    assert admin_metrics.status_code == 200 and "luodi_" in admin_metrics.text
    assert docs.status_code == 200


async def test_operators_can_open_metrics_and_docs(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path: Path
) -> None:
    from luodi.api.app import create_app
    from luodi.config import KnowledgeSettings, ServerSettings, Settings

    settings = Settings(
        server=ServerSettings(open_metrics=True, open_docs=True),
        knowledge=KnowledgeSettings(data_dir=tmp_path),
    )
    app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        codes = [(await http.get(p)).status_code for p in ("/metrics", "/openapi.json", "/docs")]
        models = await http.get("/v1/models")
    assert codes == [200, 200, 200]
    assert models.status_code == 401


async def test_every_authenticated_request_leaves_exactly_one_record(gated: Gated) -> None:
    user = "gate-audited"
    key = make_key(gated.gateway, user, ["developer"])
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gated.url, headers=auth, timeout=60) as http:
        listed = await http.get("/v1/models")
        invalid = await http.post("/v1/chat/completions", json={"model": "m"})
        kbs = await http.get("/v1/knowledge")
        served = await http.post(
            "/v1/completions",
            json={"model": listed.json()["data"][0]["id"], "prompt": "Hi", "max_tokens": 1},
        )
    assert (listed.status_code, invalid.status_code, served.status_code) == (200, 400, 200)
    records = gated.gateway.audit_log.query(AuditFilter(user=user), limit=100)
    by_endpoint = sorted((r["endpoint"], r["decision"]) for r in records)
    assert by_endpoint == sorted(
        [
            ("/v1/models", "allowed"),
            ("/v1/chat/completions", "denied"),
            ("/v1/knowledge", "allowed" if kbs.status_code < 400 else "denied"),
            ("/v1/completions", "allowed"),
        ]
    )
    refused = next(r for r in records if r["endpoint"] == "/v1/chat/completions")
    assert "messages" in refused["reason"]


async def test_metrics_scrapes_are_not_audited(gated: Gated) -> None:
    before = len(gated.gateway.audit_log.query(AuditFilter(user="gate-admin"), limit=10_000))
    async with httpx.AsyncClient(base_url=gated.url, timeout=30) as http:
        for _ in range(3):
            resp = await http.get("/metrics", headers={"Authorization": f"Bearer {gated.admin}"})
            assert resp.status_code == 200
    after = len(gated.gateway.audit_log.query(AuditFilter(user="gate-admin"), limit=10_000))
    assert after == before
