"""The gateway as the shipped deployments run it.

``deploy/Dockerfile``'s install, run into a fresh virtual environment, must serve with the
storage and quota settings that ``deploy/compose.yaml`` and ``deploy/k8s`` give a replica:
PostgreSQL through ``postgresql+psycopg://`` and quota counters in Redis. Issue 23: the
image installed plain ``luodi``, without psycopg, and every replica failed at start.

The live test is slow (a fresh venv; pip's wheel cache keeps it to a few minutes) and
needs PostgreSQL and Redis on 127.0.0.1; the others read the files only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from luodi.evaluation.server_process import ServerProcess, create_key

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
LOCAL_PG = "postgres@127.0.0.1:5432"
LOCAL_REDIS = "127.0.0.1:6379"
# The Python package each database driver of a SQLAlchemy URL needs, by luodi extra.
EXTRA_OF_DRIVER = {"psycopg": "postgres"}


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[str] = []
    pending: list[str] = []
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        out.append(" ".join([*pending, line]))
        pending = []
    return out


def build_stage() -> list[str]:
    """Instructions of the first stage, the one that installs luodi."""
    steps = instructions((DEPLOY / "Dockerfile").read_text())
    starts = [i for i, step in enumerate(steps) if step.startswith("FROM ")]
    return steps[starts[0] : starts[1]]


def install_command() -> str:
    """The build stage's RUN that creates the image's virtual environment."""
    runs = [s.removeprefix("RUN ") for s in build_stage() if s.startswith("RUN ")]
    found = [r for r in runs if "-m venv " in r]
    assert len(found) == 1, runs
    return found[0]


def compose_gateway_env() -> dict[str, str]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return {k: str(v) for k, v in compose["services"]["gateway"]["environment"].items()}


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def k8s_one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def k8s_config() -> dict[str, Any]:
    config = k8s_one("ConfigMap", "luodi-config")["data"]["config.yaml"]
    return dict(yaml.safe_load(config))


def database_urls() -> dict[str, str]:
    """Every database URL a shipped deployment gives the gateway, by where it is set."""
    secret = k8s_one("Secret", "luodi-secrets")["stringData"]
    return {
        "compose": compose_gateway_env()["LUODI_STORAGE__DATABASE_URL"],
        "k8s secret": secret["database-url"],
    }


def scheme(url: str) -> str:
    return url.split("://", 1)[0]


def image_extras() -> set[str]:
    match = re.search(r"""pip install [^&]*['"]?\.\[([\w,-]+)\]""", install_command())
    assert match, f"the image installs no luodi extras: {install_command()}"
    return set(match.group(1).split(","))


def test_image_installs_the_extras_the_deployments_configure() -> None:
    needed = set()
    for where, url in database_urls().items():
        driver = scheme(url).partition("+")[2]
        assert driver, f"{where}: name the driver in {scheme(url)!r}"
        if driver in EXTRA_OF_DRIVER:
            needed.add(EXTRA_OF_DRIVER[driver])
    configs = [k8s_config()] + [
        yaml.safe_load(p.read_text()) for p in sorted((DEPLOY / "config").glob("*.yaml"))
    ]
    if any(c.get("knowledge", {}).get("vector_store") == "qdrant" for c in configs):
        needed.add("qdrant")
    assert needed == {"postgres"}  # what the manifests configure today
    assert needed <= image_extras()


def test_image_installs_from_the_constraints_file() -> None:
    copied = [s.split()[1:-1] for s in build_stage() if s.startswith("COPY ")]
    assert any("constraints.txt" in sources for sources in copied)
    assert "-c constraints.txt" in install_command()


def test_compose_and_k8s_configure_the_same_storage_and_quota_store() -> None:
    compose = compose_gateway_env()
    assert len({scheme(url) for url in database_urls().values()}) == 1, database_urls()
    security = k8s_config()["security"]
    assert security["quotas"]["store"] == compose["LUODI_SECURITY__QUOTAS__STORE"] == "redis"
    assert scheme(security["redis_url"]) == scheme(compose["LUODI_SECURITY__REDIS_URL"])
    gateway = k8s_one("Deployment", "luodi-gateway")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in gateway["containers"][0]["env"]}
    ref = env["LUODI_STORAGE__DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("luodi-secrets", "database-url")


def deployed_env(database: str, redis_prefix: str) -> dict[str, str]:
    """compose.yaml's storage and quota settings, pointed at this machine's services.

    A per-key limit is added so that every request really charges the Redis counters
    (with no limit set, the quota store is never asked).
    """
    compose = compose_gateway_env()
    pg = scheme(compose["LUODI_STORAGE__DATABASE_URL"])
    redis_url = urlsplit(compose["LUODI_SECURITY__REDIS_URL"])._replace(netloc=LOCAL_REDIS)
    return {
        "LUODI_STORAGE__DATABASE_URL": f"{pg}://{LOCAL_PG}/{database}",
        "LUODI_SECURITY__QUOTAS__STORE": compose["LUODI_SECURITY__QUOTAS__STORE"],
        "LUODI_SECURITY__REDIS_URL": redis_url.geturl(),
        "LUODI_SECURITY__QUOTAS__REDIS_PREFIX": redis_prefix,
        "LUODI_SECURITY__QUOTAS__PER_KEY__REQUESTS_PER_MINUTE": "1000",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """An empty PostgreSQL database on 127.0.0.1, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    name = f"luodi_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A quota key prefix of this test's own on the local Redis, cleared afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(f"redis://{LOCAL_REDIS}/0")
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis at {LOCAL_REDIS} unavailable: {exc}")
    prefix = f"luodi-deploy-test:{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


@pytest.fixture
def image_workdir(tmp_path: Path) -> Iterator[Path]:
    """Where the image's build is copied and its venv made; removed afterwards (~750 MB)."""
    workdir = tmp_path / "image"
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def install_like_the_image(workdir: Path) -> Path:
    """Copy what the build stage copies and run its install RUN; returns the venv."""
    src = workdir / "src"
    for step in build_stage():
        if not step.startswith("COPY "):
            continue
        *sources, dest = step.split()[1:]
        target = src / dest
        for name in sources:
            origin = ROOT / name
            if origin.is_dir():
                shutil.copytree(
                    origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / name)
    command = install_command()
    image_venv = re.search(r"-m venv (\S+)", command)
    assert image_venv
    venv = workdir / "venv"
    # The image's ENV (PIP_NO_CACHE_DIR, CMAKE_ARGS) is left out on purpose: pip's wheel
    # cache spares a recompile of llama.cpp. `python` is the interpreter running the tests.
    env = {k: v for k, v in os.environ.items() if k not in {"PIP_NO_CACHE_DIR", "VIRTUAL_ENV"}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command.replace(image_venv.group(1), str(venv))],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, (
        f"the image's install failed:\n{done.stdout[-3000:]}\n{done.stderr}"
    )
    return venv


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_image_install_serves_with_postgresql_and_redis(
    image_workdir: Path, scratch_database: str, redis_prefix: str
) -> None:
    import psycopg
    import redis

    venv = install_like_the_image(image_workdir)
    luodi = [str(venv / "bin" / "luodi")]
    env = deployed_env(scratch_database, redis_prefix)
    try:
        key = create_key(env, "deploy-check", "developer", luodi=luodi)
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr)
        command = " ".join(exc.cmd[1:])
        pytest.fail(f"`luodi {command}` failed in the image's venv:\n{stderr[-2000:]}")
    headers = {"Authorization": f"Bearer {key}"}

    with ServerProcess(env, luodi=luodi) as server:
        model = httpx.get(f"{server.url}/v1/models", headers=headers).json()["data"][0]["id"]
        body = {"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
        url = f"{server.url}/v1/completions"
        assert httpx.post(url, json=body).status_code == 401
        reply = httpx.post(url, headers=headers, json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 1

    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={scratch_database}") as db:
        keys = db.execute("SELECT count(*) FROM api_keys").fetchone()
        audited = db.execute("SELECT count(*) FROM audit_records").fetchone()
    assert keys == (1,)
    assert audited is not None and audited[0] >= 1
    with redis.Redis.from_url(f"redis://{LOCAL_REDIS}/0") as client:
        assert client.keys(f"{redis_prefix}:*"), "no quota counter reached Redis"
