"""Qwen3 thinking in the playground, in headless Chromium, through a real gateway.

The bundled Gemma does not think, so the served model here is a Qwen3 stand-in
upstream (vLLM's streaming dialect: ``reasoning_content`` deltas when
``enable_thinking`` is on). The page's thinking switch must reach the upstream, and
the thinking must be shown folded, apart from the answer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from luodi.api.app import create_app
from tests.conftest import make_key, offsite_settings, served
from tests.console.conftest import Console
from tests.engine.standin import StandIn

MODEL = "qwen3-cloud"


@pytest.fixture
def upstream() -> Iterator[StandIn]:
    standin = StandIn("qwen3")
    standin.up()
    yield standin
    standin.down()


@pytest.fixture
async def qwen3_console(
    upstream: StandIn, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """A gateway whose only model is a Qwen3 stand-in vLLM off premises, with the console."""
    settings = offsite_settings(
        tmp_path / "console.db",
        MODEL,
        name="qwen3",
        kind="vllm",
        url=upstream.url,
        upstream_model="qwen3",
    )
    app = create_app(settings)
    artifacts = os.environ.get("LUODI_TEST_ARTIFACTS")
    shots = Path(artifacts) if artifacts else tmp_path_factory.mktemp("console-shots")
    shots.mkdir(parents=True, exist_ok=True)
    async with served(app) as url:
        gateway = app.state.luodi.gateway
        key = make_key(gateway, "console-admin", ["admin"])
        yield Console(url, MODEL, key, gateway, shots, app.state.luodi.knowledge)


async def _send(page: Any, text: str) -> None:
    await page.fill("#message", text)
    await page.click("#send")
    await expect(page.locator("#status")).to_have_text("✓", timeout=60_000)


async def test_thinking_is_switched_and_shown_folded(
    qwen3_console: Console, upstream: StandIn, browser: Any
) -> None:
    page = await qwen3_console.sign_in(browser, qwen3_console.admin_key)
    await page.wait_for_selector(f'#model option[value="{MODEL}"]', state="attached")
    await page.select_option("#thinking-mode", "on")
    await _send(page, "Which branch opens on Saturday?")
    assert upstream.received[-1]["chat_template_kwargs"] == {"enable_thinking": True}
    box = page.locator("#thinking-box")
    await expect(box).to_be_visible()
    assert await box.get_attribute("open") is None  # folded until the reader opens it
    assert await page.text_content("#thinking") == "Let me think. Done."
    output = await page.text_content("#output") or ""
    assert "Which branch opens on Saturday?" in output and "think" not in output
    assert '"enable_thinking": true' in (await page.text_content("#curl") or "")
    python = await page.text_content("#python") or ""
    assert 'extra_body={"chat_template_kwargs": {"enable_thinking": True}}' in python
    await page.click("#thinking-box summary")
    await expect(page.locator("#thinking")).to_be_visible()
    await qwen3_console.shot(page, "playground-thinking")

    # Off: the switch goes out as false, and the last answer's thinking is cleared.
    await page.select_option("#thinking-mode", "off")
    await _send(page, "And on Sunday?")
    assert upstream.received[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    await expect(box).to_be_hidden()
    assert await page.text_content("#thinking") == ""

    # The model's default: nothing is sent, the template decides.
    await page.select_option("#thinking-mode", "")
    await _send(page, "Thanks")
    assert "chat_template_kwargs" not in upstream.received[-1]
    await page.context.close()
