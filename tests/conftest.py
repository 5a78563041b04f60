"""Shared fixtures: the real default model, loaded once per test session."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from luodi.config import EngineSettings, SecuritySettings, StorageSettings
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.model import select_kernels
from luodi.security import Gateway
from luodi.security.client_address import UVICORN_PROXY_OPTIONS

if TYPE_CHECKING:
    from luodi.config import Settings

# The session engine is batch-invariant, and ggml fixes its kernels at the first matmul
# of any model in the process (an embedding GGUF test may run first).
select_kernels(batch_invariant=True)

# Nothing a test starts may write into the checkout or the user's home: every server,
# CLI run and subprocess inherits these unless a test sets its own.
_SCRATCH = Path(tempfile.mkdtemp(prefix="luodi-tests-"))
os.environ.setdefault("LUODI_KNOWLEDGE__DATA_DIR", str(_SCRATCH / "knowledge"))
os.environ.setdefault("LUODI_STORAGE__DATABASE_URL", f"sqlite:///{_SCRATCH / 'luodi.db'}")
# The default model is assembled into this cache once per session and every engine,
# server and CLI run of the session loads it from there; a CI may point it at a kept dir.
os.environ.setdefault("LUODI_ENGINE__CACHE_DIR", str(_SCRATCH / "engine"))
MODEL_CACHE = Path(os.environ["LUODI_ENGINE__CACHE_DIR"])

# It holds a copy of the model. (Tests import this file again as ``tests.conftest``,
# which makes a second, empty scratch dir: each copy removes its own.)
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


@functools.cache
def default_gguf() -> Path:
    """The default model's GGUF in the session cache, assembled on first use."""
    return default_model_path(MODEL_CACHE)


def engine_settings(tmp: Path, **overrides: object) -> EngineSettings:
    """Small, fast engine settings for tests; the default model, 2 threads."""
    base: dict[str, object] = {
        "n_ctx": 8192,
        "n_threads": 2,
        "max_batch_size": 32,
        "prefill_chunk": 256,
        "n_batch": 512,
        "cache_dir": tmp,
        "max_wait_ms": 5.0,
    }
    base.update(overrides)
    return EngineSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The session's engine cache dir, the default model already assembled in it.

    Assembling it here, in the test process, means no server a test starts races
    another process to write it.
    """
    default_gguf()
    return MODEL_CACHE


@pytest.fixture(scope="session")
async def engine(model_cache: Path) -> AsyncIterator[LlamaCppEngine]:
    """The embedded engine on the default model, shared by every test that reads only."""
    eng = LlamaCppEngine(engine_settings(model_cache))
    await eng.start()
    yield eng
    await eng.stop()


@dataclass
class LiveServer:
    """A real uvicorn server on loopback, in the test session's event loop."""

    url: str
    model: str
    app: object
    api_key: str
    gateway: Gateway

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served(
    app: object, uvicorn_options: dict[str, object] = UVICORN_PROXY_OPTIONS
) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free loopback port, in this event loop; yields its URL.

    ``uvicorn_options`` default to what ``luodi serve`` passes; ``{}`` is uvicorn's own.
    """
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options,  # type: ignore[arg-type]
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn has no awaitable for it
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """The security gateway (auth on) on a fresh SQLite file."""
    db = tmp_path_factory.mktemp("gateway") / "luodi.db"
    gateway = await Gateway.create(
        SecuritySettings(), StorageSettings(database_url=f"sqlite:///{db}")
    )
    yield gateway
    await gateway.close()


def make_key(gateway: Gateway, user: str, roles: list[str], **key_args: object) -> str:
    """A new user (in tenant "default") with a fresh key; returns the secret."""
    if "default" not in {t.name for t in gateway.directory.list_tenants()}:
        gateway.directory.create_tenant("default")
    gateway.directory.create_user(user, tenant="default", roles=roles)
    return gateway.keys.create(user, **key_args).secret  # type: ignore[arg-type]


def offsite_settings(database: Path, model: str, **backend: object) -> Settings:
    """luodi in api mode serving ``model`` from one off-premises backend (a stand-in)."""
    from luodi.config import Settings
    from luodi.config.routing import BackendSettings, ModelRoute, RoutingSettings

    route = ModelRoute(backends=[BackendSettings(location="cloud", **backend)])  # type: ignore[arg-type]
    return Settings(
        storage=StorageSettings(database_url=f"sqlite:///{database}"),
        routing=RoutingSettings(mode="api", models={model: route}),
    )


@pytest.fixture(scope="session")
async def live_server(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """The API over the shared engine, served by uvicorn on 127.0.0.1, auth on."""
    from luodi.api.app import create_app
    from luodi.config import KnowledgeSettings, Settings

    kb_dir = tmp_path_factory.mktemp("knowledge")
    settings = Settings(knowledge=KnowledgeSettings(data_dir=kb_dir))
    app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
    key = make_key(live_gateway, "test-admin", ["admin"])
    async with served(app) as url:
        yield LiveServer(url, engine.info.name, app, key, live_gateway)


def chromium_executable() -> str | None:
    """Debian's Chromium (the binary, not the /usr/bin wrapper script), or None."""
    override = os.environ.get("LUODI_TEST_CHROMIUM")
    if override:
        return override
    for candidate in ("/usr/lib/chromium/chromium", "chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


_NO_CHROMIUM = pytest.StashKey[str]()
"""Why the browser tests were skipped, for the line at the end of the run."""


@pytest.fixture(scope="session")
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """A headless Chromium driven by Playwright; skipped, saying why, where there is none.

    With ``LUODI_REQUIRE_BROWSER`` set (``.ci/run`` sets it) a missing Chromium fails
    the browser tests instead: CI must not pass by skipping them.
    """
    path = chromium_executable()
    if path is None:
        why = "no Chromium here: the browser tests need Debian's (sudo apt-get install -y chromium)"
        if os.environ.get("LUODI_REQUIRE_BROWSER"):
            pytest.fail(f"{why}; LUODI_REQUIRE_BROWSER is set, so they fail", pytrace=False)
        request.config.stash[_NO_CHROMIUM] = why
        pytest.skip(why)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say at the end why the browser tests were skipped (``-q`` shows only a count)."""
    why = config.stash.get(_NO_CHROMIUM, None)
    if why is not None:
        terminalreporter.write_line(f"browser tests skipped: {why}", yellow=True)
