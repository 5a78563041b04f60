"""Property-based fuzzing of the OpenAPI schema: no request makes the server answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from luodi.evaluation.server_process import ServerProcess, create_key

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[str, str]]:
    """A real ``luodi serve`` with a tiny context, so valid random requests finish fast."""
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        "LUODI_ENGINE__CACHE_DIR": str(model_cache),
        "LUODI_ENGINE__N_CTX": "1024",
        "LUODI_ENGINE__MAX_MODEL_LEN": "48",
        "LUODI_ENGINE__MAX_BATCH_SIZE": "4",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp / 'luodi.db'}",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }
    key = create_key(env, "fuzzer", "admin")
    with ServerProcess(env) as server:
        yield server.url, key


@pytest.fixture(scope="module")
def api_schema(fuzz_server: tuple[str, str]) -> object:
    url, key = fuzz_server
    return schemathesis.openapi.from_url(
        f"{url}/openapi.json", headers={"Authorization": f"Bearer {key}"}
    ).include(path_regex="^/v1/")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: object, fuzz_server: tuple[str, str]) -> None:
    url, key = fuzz_server
    response = case.call(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)  # type: ignore[attr-defined]
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    )  # type: ignore[attr-defined]
