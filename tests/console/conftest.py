"""A served luodi with the console, on the real default model, and browser helpers."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, Settings, SupportSettings
from luodi.config.console import ConsoleSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.knowledge import KnowledgeService
from luodi.security import Gateway
from tests.conftest import make_key, served

DESK = """\
name: desk
persona: The front desk of a bank branch.
intents:
  - name: opening_hours
    description: When the branch is open
    examples: ["when are you open", "opening hours", "what time do you close",
               "are you open on saturday", "what are your hours"]
    action: {type: reply, text: "We are open from nine to five, Monday to Friday."}
  - name: parking
    description: Where visitors park
    examples: ["where can I park", "is there parking", "visitor car park",
               "where do I leave my car"]
    action: {type: reply, text: "Visitors park in the basement garage beside the lift."}
"""
"""A small assistant (``support/desk``) whose answers are fixed replies."""


@dataclass
class Console:
    """The server under test: its URL, model, an admin key and the gateway."""

    url: str
    model: str
    admin_key: str
    gateway: Gateway
    shots: Path
    knowledge: KnowledgeService

    async def sign_in(self, browser: Any, key: str, *, lang: str = "en") -> Any:
        """A new browser page signed in with ``key`` (its own cookie jar)."""
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        page.on("dialog", _no_dialogs)
        await page.goto(f"{self.url}/console/login?lang={lang}")
        await page.fill("#key-form input[name=api_key]", key)
        await page.click("#key-form button[type=submit]")
        await page.wait_for_url(re.compile(r".*/console/playground$"))
        return page

    async def shot(self, page: Any, name: str, *, full_page: bool = False) -> None:
        """A screenshot of the page (the window, or all of it), kept as a test artifact."""
        await page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full_page)


async def _no_dialogs(dialog: Any) -> None:
    await dialog.dismiss()
    raise AssertionError(f"a page opened a dialog: {dialog.message!r} (script injection?)")


@pytest.fixture(scope="session")
async def console(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """The console over the shared engine and gateway, served by uvicorn on loopback.

    Sign-in attempts per address are raised: every test signs in from 127.0.0.1.
    The assistant ``support/desk`` is served beside the model.
    """
    assistants = tmp_path_factory.mktemp("assistants")
    (assistants / "desk.yaml").write_text(DESK, encoding="utf-8")
    settings = Settings(
        knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("knowledge")),
        console=ConsoleSettings(sign_in_per_minute=1000, lockout_failures=3),
        support=SupportSettings(assistants_dir=assistants),
    )
    app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
    key = make_key(live_gateway, "console-admin", ["admin"])
    artifacts = os.environ.get("LUODI_TEST_ARTIFACTS")
    shots = Path(artifacts) if artifacts else tmp_path_factory.mktemp("console-shots")
    shots.mkdir(parents=True, exist_ok=True)
    async with served(app) as url:
        knowledge = app.state.luodi.knowledge
        assert knowledge is not None
        yield Console(url, engine.info.name, key, live_gateway, shots, knowledge)
