"""The web console in headless Chromium against a real server on the default model.

Each test signs in through the login page like a person would, and screenshots
the pages it visits (``LUODI_TEST_ARTIFACTS``, else a pytest temp dir).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from luodi.security.passwords import PasswordStore
from tests.conftest import make_key
from tests.console.conftest import Console

pytestmark = pytest.mark.model

XSS = "<script>alert(1)</script>"


async def _csrf(page: Any) -> str:
    token: str = await page.get_attribute('meta[name="csrf-token"]', "content")
    return token


async def test_sign_in_with_a_key_and_stream_a_chat(console: Console, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{console.url}/console/playground")  # not signed in: sent to sign in
    assert page.url.endswith("/console/login")
    csp = (await page.request.get(f"{console.url}/console/login")).headers[
        "content-security-policy"
    ]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    await console.shot(page, "login")
    await page.close()

    page = await console.sign_in(browser, console.admin_key)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "luodi_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert await page.text_content("#who") == "console-admin"
    await page.wait_for_selector(f'#model option[value="{console.model}"]', state="attached")
    await page.fill("#message", "Count from one to twenty in words.")
    await page.fill("#max-tokens", "48")
    await page.click("#send")
    lengths: list[int] = []
    deadline = time.monotonic() + 180  # a loaded CPU box: generous
    while time.monotonic() < deadline:  # tokens arrive one by one: the text grows meanwhile
        text = await page.text_content("#output") or ""
        if not lengths or len(text) != lengths[-1]:
            lengths.append(len(text))
        if await page.text_content("#status") == "✓":
            break
        await asyncio.sleep(0.02)
    assert await page.text_content("#status") == "✓", lengths
    growing = [n for n in lengths if n > 0]
    assert len(growing) >= 3, f"the answer did not arrive in pieces: {lengths}"
    assert "curl" in (await page.text_content("#curl") or "")
    python = await page.text_content("#python") or ""
    assert "from openai import OpenAI" in python and "max_tokens=48" in python
    await console.shot(page, "playground")

    # JSON-schema mode: the schema goes out as response_format, enforced while sampling.
    await page.check("#json-mode")
    schema = '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}'
    await page.fill("#schema", schema)
    await page.fill("#message", "Which city is the capital of France?")
    await page.click("#send")
    await expect(page.locator("#status")).to_have_text("✓", timeout=180_000)
    assert '"json_schema"' in (await page.text_content("#curl") or "")
    assert "city" in json.loads(await page.text_content("#output") or "")
    await page.context.close()


async def test_create_a_user_and_a_key_then_revoke_it(console: Console, browser: Any) -> None:
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-users")
    await page.fill("#create-user input[name=name]", XSS)
    await page.check('#create-user input[name=roles][value="developer"]')
    async with page.expect_navigation(url=re.compile(r".*/console/users$")):
        await page.click("#create-user button[type=submit]")
    # The name is text in a cell, not markup: no dialog opened (see _no_dialogs).
    cell = page.locator("td.user-name", has_text=XSS)
    assert await cell.count() == 1
    assert await page.locator("td.user-name script").count() == 0
    await console.shot(page, "users")

    await page.click("#nav-keys")
    await page.fill("#create-key input[name=user]", XSS)
    await page.fill("#create-key input[name=name]", "from the console")
    await page.click("#create-key button[type=submit]")
    secret = (await page.text_content("#new-key") or "").strip()
    assert secret.startswith("sk-luodi-")
    await console.shot(page, "keys")
    async with httpx.AsyncClient(base_url=console.url) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        assert (await client.get("/v1/models", headers=auth)).status_code == 200
        await page.goto(f"{console.url}/console/keys")  # the key is shown once only
        assert await page.locator("#new-key").count() == 0
        row = page.locator("tr", has_text="from the console")
        async with page.expect_navigation(url=re.compile(r".*/console/keys$")):
            await row.locator("button.danger").click()
        assert await page.locator("tr", has_text="from the console").locator(".revoked").count()
        refused = await client.get("/v1/models", headers=auth)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]
    await page.context.close()


async def test_the_audit_page_verifies_the_chain(console: Console, browser: Any) -> None:
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-audit")
    assert await page.locator("#audit tbody tr").count() > 0
    await page.click("#verify")
    status = page.locator("#chain-status")
    assert "Chain verified" in (await status.text_content() or "")
    assert await status.get_attribute("class") == "ok"
    await page.fill("#audit-filter input[name=user]", "console-admin")
    await page.click("#audit-filter button[type=submit]")
    users = await page.locator("#audit tbody tr td:nth-child(3)").all_text_contents()
    assert users and set(users) == {"console-admin"}
    # The first page of a busy log holds older records: the user's own show their sign-in.
    assert await page.locator("#audit td", has_text="console.login").count() > 0
    await console.shot(page, "audit")
    await page.locator("#audit tbody a").first.click()  # one record's every field
    assert re.search(r"/console/audit/\d+$", page.url)
    assert await page.locator("#record th", has_text="hash").count() >= 1
    await page.click("#nav-roles")
    assert await page.locator("#roles td", has_text="auditor").count() == 1
    assert await page.locator("#tenants td", has_text="default").count() >= 1
    await console.shot(page, "roles")
    await page.context.close()


async def test_switch_the_language(console: Console, browser: Any) -> None:
    page = await console.sign_in(browser, console.admin_key)
    assert await page.text_content("#nav-playground") == "Playground"
    await page.click("#lang-switch")
    assert await page.text_content("#nav-playground") == "对话测试"
    await page.click("#nav-audit")  # the choice is remembered (cookie)
    assert await page.text_content("h1") == "审计"
    await console.shot(page, "audit-zh")
    await page.click("#lang-switch")
    assert await page.text_content("h1") == "Audit"
    await page.context.close()


async def test_a_non_admin_sees_no_admin_pages_and_is_refused(
    console: Console, browser: Any
) -> None:
    key = make_key(console.gateway, "console-dev", ["developer"])
    page = await console.sign_in(browser, key)
    for name in ("users", "roles", "keys", "audit"):
        assert await page.locator(f"#nav-{name}").count() == 0
    assert await page.locator("#nav-playground").count() == 1
    response = await page.goto(f"{console.url}/console/users")
    assert response is not None and response.status == 403
    await console.shot(page, "forbidden")
    csrf = await _csrf(page)
    posted = await page.request.post(
        f"{console.url}/console/users", form={"name": "sneaky", "tenant": "default", "csrf": csrf}
    )
    assert posted.status == 403
    posted = await page.request.post(
        f"{console.url}/console/audit/verify", form={"csrf": csrf}, max_redirects=0
    )
    assert posted.status == 403
    assert "sneaky" not in {u.name for u in console.gateway.directory.list_users()}
    await page.context.close()


async def test_a_post_without_the_csrf_token_is_refused(console: Console, browser: Any) -> None:
    page = await console.sign_in(browser, console.admin_key)
    posted = await page.request.post(
        f"{console.url}/console/users", form={"name": "no-csrf", "tenant": "default"}
    )
    assert posted.status == 403
    assert "CSRF" in (await posted.json())["error"]["message"]
    wrong = await page.request.post(
        f"{console.url}/console/users",
        form={"name": "no-csrf", "tenant": "default", "csrf": "guess"},
    )
    assert wrong.status == 403
    # The API accepts the session cookie only with the token in a header.
    chat = {"model": console.model, "messages": [{"role": "user", "content": "hi"}]}
    api = await page.request.post(f"{console.url}/v1/chat/completions", data=chat)
    assert api.status == 403
    assert "no-csrf" not in {u.name for u in console.gateway.directory.list_users()}
    await page.context.close()


async def test_password_sign_in_locks_out_and_signs_out(console: Console, browser: Any) -> None:
    make_key(console.gateway, "console-pw", ["developer"])
    await asyncio.to_thread(PasswordStore(console.gateway.db).set, "console-pw", "right horse 42")
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()

    async def attempt(password: str) -> str:
        await page.goto(f"{console.url}/console/login")
        await page.fill("#password-form input[name=username]", "console-pw")
        await page.fill("#password-form input[name=password]", password)
        await page.click("#password-form button[type=submit]")
        await page.wait_for_load_state()
        return page.url

    assert (await attempt("right horse 42")).endswith("/console/playground")
    assert await page.text_content("#who") == "console-pw"
    minted = [k for k in console.gateway.keys.list_keys(user="console-pw") if k.name]
    assert [k.name for k in minted] == ["console session"]
    await page.click("#sign-out")
    await page.wait_for_url(re.compile(r".*/console/login$"))
    await page.goto(f"{console.url}/console/playground")
    assert page.url.endswith("/console/login")  # the session is gone
    assert console.gateway.keys.info(minted[0].id).revoked_us is not None

    for _ in range(2):
        await attempt("wrong horse")
        assert "Wrong username or password" in (await page.text_content("#error") or "")
    await attempt("wrong horse")  # the third failure locks (lockout_failures=3)
    assert "locked" in (await page.text_content("#error") or "")
    await attempt("right horse 42")  # even the right password, while locked
    assert "locked" in (await page.text_content("#error") or "")
    await console.shot(page, "login-locked")
    await context.close()


async def test_the_privacy_tester_masks_through_the_live_policy(
    console: Console, browser: Any
) -> None:
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-privacy")
    await page.fill("#pii-text", "Call Zhang Wei at 13812345678 or mail zhang.wei@example.com")
    await page.click("#mask")
    # (wait_for_function would evaluate a string: the page's CSP forbids eval, rightly)
    await expect(page.locator("#status")).to_have_text("✓", timeout=60_000)
    masked = await page.text_content("#masked") or ""
    assert "13812345678" not in masked and "zhang.wei@example.com" not in masked
    assert await page.locator("#findings tbody tr").count() >= 2
    await page.click("#reload")  # admin holds privacy:manage
    await expect(page.locator("#status")).to_contain_text(":", timeout=30_000)
    await console.shot(page, "privacy")
    await page.context.close()


async def test_the_dashboard_reads_the_servers_metrics(console: Console, browser: Any) -> None:
    monitor = make_key(console.gateway, "console-monitor", ["monitor"])
    page = await console.sign_in(browser, monitor)
    assert await page.locator("#nav-dashboard").count() == 1
    assert await page.locator("#nav-privacy").count() == 0  # monitor may not use pii
    await page.click("#nav-dashboard")
    # Two polls (2 s apart) give the first rates; the gauges are numbers then.
    await expect(page.locator("#value-queue")).not_to_have_text("–", timeout=20_000)
    assert float(await page.text_content("#value-queue") or "x") >= 0
    chat = {
        "model": console.model,
        "messages": [{"role": "user", "content": "Name three rivers."}],
        "max_tokens": 32,
    }
    async with httpx.AsyncClient(base_url=console.url, timeout=120) as client:
        headers = {"Authorization": f"Bearer {console.admin_key}"}
        answered = await client.post("/v1/chat/completions", json=chat, headers=headers)
    assert answered.status_code == 200
    # The next poll after the chat shows the tokens it generated, as a rate.
    await expect(page.locator("#value-throughput")).not_to_have_text("0.00", timeout=20_000)
    await console.shot(page, "dashboard")
    response = await page.goto(f"{console.url}/console/privacy")
    assert response is not None and response.status == 403
    await page.context.close()


async def test_upload_a_document_and_find_it_in_search(console: Console, browser: Any) -> None:
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-knowledge")
    await page.fill("#kb-name", "console-kb")
    await page.click("#create-kb button[type=submit]")
    await expect(page.locator("#kb")).to_have_value("console-kb", timeout=30_000)
    text = (
        "# Opening hours\n\nThe Pudong branch opens at nine and closes at five.\n\n"
        "# Parking\n\nVisitors park in the basement garage beside the lift.\n"
    )
    await page.set_input_files(
        "#files",
        files=[{"name": "branch.md", "mimeType": "text/markdown", "buffer": text.encode()}],
    )
    await expect(page.locator("#documents tbody tr")).to_have_count(1, timeout=60_000)
    assert await page.locator("#documents td", has_text="branch.md").count() == 1
    assert await page.get_attribute("#progress", "value") == "100"
    await page.fill("#query", "where can visitors park the car?")
    await page.click("#search")
    first = page.locator("#hits tbody tr").first
    await expect(first).to_contain_text("garage", timeout=30_000)
    assert float(await first.locator("td").first.text_content() or "x") > 0
    await console.shot(page, "knowledge")

    # The playground grounds a chat in it: the citations link to the document.
    await page.click("#nav-playground")
    await page.wait_for_selector('#kbs option[value="console-kb"]', state="attached")
    await page.select_option("#kbs", "console-kb")
    await page.fill("#message", "Where do visitors park?")
    await page.fill("#max-tokens", "24")
    await page.click("#send")
    citation = page.locator("#citations li a").first
    await expect(citation).to_contain_text("branch.md", timeout=180_000)
    assert "/v1/knowledge/console-kb/documents/" in (await citation.get_attribute("href") or "")
    await console.shot(page, "playground-citations")

    await page.click("#nav-knowledge")
    await expect(page.locator("#documents tbody tr")).to_have_count(1, timeout=30_000)
    await page.locator("#documents button.danger").click()
    await expect(page.locator("#documents tbody tr")).to_have_count(0, timeout=30_000)
    await page.context.close()
