"""Editing from the console in headless Chromium: a key's quotas, roles and role grants,
tenants, a document's access list, sync sources, and per-key usage on the dashboard.

Each change is checked where it takes effect (the key's next request, the directory,
the knowledge base's search), not only on the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.conftest import make_key
from tests.console.conftest import Console

pytestmark = pytest.mark.model


async def _submit(page: Any, selector: str, where: str) -> None:
    """Post a form and wait for the page it redirects to (often the same URL)."""
    async with page.expect_navigation(url=re.compile(rf".*/console/{where}$")):
        await page.click(selector)


async def test_edit_a_keys_quotas_and_see_them_apply(console: Console, browser: Any) -> None:
    secret = make_key(console.gateway, "console-quota", ["developer"])
    key_id = (await console.gateway.authenticate(f"Bearer {secret}", "127.0.0.1")).key_id
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-keys")
    edit = f"#edit-{key_id}"
    await page.click(f"{edit} summary")
    await page.fill(f"{edit} input[name=rpm]", "9")
    await page.fill(f"{edit} input[name=tpd]", "12345")
    await page.select_option(f"{edit} select[name=priority]", "2")
    await page.fill(f"{edit} input[name=allowed_models]", f"{console.model}, qwen3-*")
    await page.fill(f"{edit} input[name=expires_days]", "30")
    await _submit(page, f"{edit} button[type=submit]", "keys")
    row = page.locator(f"#key-{key_id}")
    await expect(row).to_contain_text("9 / – / 12345")
    await expect(row).to_contain_text("qwen3-*")
    await page.click(f"{edit} summary")  # the form again, filled with the new values
    await console.shot(page, "keys-edit", full_page=True)
    principal = await console.gateway.authenticate(f"Bearer {secret}", "127.0.0.1")
    assert principal.key_limits.requests_per_minute == 9
    assert principal.key_limits.tokens_per_day == 12345
    assert principal.priority == 2 and principal.allowed_models == (console.model, "qwen3-*")
    assert console.gateway.keys.info(key_id).expires_us is not None
    # Emptied again: the key falls back to the defaults and any model.
    for field in ("rpm", "tpd", "allowed_models"):
        await page.fill(f"{edit} input[name={field}]", "")
    await page.check(f"{edit} input[name=never_expires]")
    await _submit(page, f"{edit} button[type=submit]", "keys")
    info = console.gateway.keys.info(key_id)
    assert info.limits.requests_per_minute is None and info.allowed_models is None
    assert info.expires_us is None
    await page.context.close()


async def test_manage_roles_grants_and_tenants(console: Console, browser: Any) -> None:
    directory = console.gateway.directory
    make_key(console.gateway, "console-reader", ["analyst"])
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-roles")
    await page.fill("#create-role input[name=name]", "console-readers")
    await page.fill("#create-role input[name=permissions]", "kb:faq:read model:*:invoke")
    await _submit(page, "#create-role button[type=submit]", "roles")
    assert directory.get_role("console-readers").permissions == ["kb:faq:read", "model:*:invoke"]
    role = page.locator("#role-console-readers")
    await role.locator("input[name=permissions]").fill("kb:faq:read")
    await _submit(page, "#role-console-readers .edit-role button", "roles")
    assert directory.get_role("console-readers").permissions == ["kb:faq:read"]
    # Built-in roles have no form: they cannot be changed.
    assert await page.locator("#role-admin form").count() == 0

    await page.fill("#create-tenant input[name=name]", "console-branch")
    await page.fill("#create-tenant input[name=rpm]", "30")
    await _submit(page, "#create-tenant button[type=submit]", "roles")
    tenant = page.locator("#tenant-console-branch")
    await tenant.locator("input[name=tpd]").fill("100000")
    await tenant.locator("input[name=pii_policy]").fill("strict")
    await _submit(page, "#tenant-console-branch .edit-tenant button", "roles")
    found = next(t for t in directory.list_tenants() if t.name == "console-branch")
    assert (found.limits.requests_per_minute, found.limits.tokens_per_day) == (30, 100000)
    assert found.pii_policy == "strict"
    await console.shot(page, "roles-edit", full_page=True)

    # Grant the role to a user, then take it back, from the users page.
    await page.click("#nav-users")
    row = page.locator("tr", has=page.locator("td.user-name", has_text="console-reader"))
    await row.locator(".grant-role select").select_option("console-readers")
    async with page.expect_navigation(url=re.compile(r".*/console/users$")):
        await row.locator(".grant-role button").click()
    reader = next(u for u in directory.list_users() if u.name == "console-reader")
    assert reader.roles == ["analyst", "console-readers"]
    await expect(row.locator(".role", has_text="console-readers")).to_have_count(1)
    await console.shot(page, "users-roles", full_page=True)
    async with page.expect_navigation(url=re.compile(r".*/console/users$")):
        await row.locator("form.tag", has_text="console-readers").locator("button").click()
    user = next(u for u in directory.list_users() if u.name == "console-reader")
    assert user.roles == ["analyst"]

    await page.click("#nav-roles")
    await _submit(page, "#role-console-readers .delete-role button", "roles")
    assert "console-readers" not in {r.name for r in directory.list_roles()}
    await page.context.close()


async def test_a_documents_access_and_the_sync_sources(
    console: Console, browser: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "vault.md").write_text("# Vault\n\nThe vault opens at ten with two keys.\n")
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-knowledge")
    await page.fill("#kb-name", "console-sync")
    await page.click("#create-kb button[type=submit]")
    await expect(page.locator("#kb")).to_have_value("console-sync", timeout=30_000)
    await expect(page.locator("#no-sources")).to_be_visible()
    source = console.knowledge.add_source("console-sync", [str(folder)], schedule="0 3 * * *")
    await page.reload()
    await page.select_option("#kb", "console-sync")
    row = page.locator(f"#source-{source}")
    await expect(row).to_contain_text("0 3 * * *", timeout=30_000)
    await expect(row).to_contain_text(str(folder))
    await row.locator("button").click()
    await expect(page.locator("#documents td", has_text="vault.md")).to_have_count(
        1, timeout=60_000
    )
    await expect(row.locator("td.runs")).to_contain_text("api: +1", timeout=30_000)

    # Narrow the document to auditors: a developer no longer finds it.
    access = page.locator("#documents tr", has_text="vault.md").locator(".access-form")
    await access.locator("input").fill("role:auditor")
    await access.locator("button").click()
    await expect(page.locator("#status")).to_have_text("✓", timeout=60_000)
    await expect(access.locator("input")).to_have_value("role:auditor")
    await console.shot(page, "knowledge-sources", full_page=True)
    doc = console.knowledge.list_documents("console-sync")[0]
    assert doc.access == ["role:auditor"]
    developer = make_key(console.gateway, "console-kb-dev", ["developer"])
    async with httpx.AsyncClient(base_url=console.url, timeout=60) as client:
        found = await client.post(
            "/v1/knowledge/console-sync/search",
            json={"query": "when does the vault open"},
            headers={"Authorization": f"Bearer {developer}"},
        )
    assert found.status_code == 200 and found.json()["data"] == []
    await page.context.close()


async def test_the_dashboard_shows_usage_per_key(console: Console, browser: Any) -> None:
    chat = {
        "model": console.model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
    }
    async with httpx.AsyncClient(base_url=console.url, timeout=120) as client:
        headers = {"Authorization": f"Bearer {console.admin_key}"}
        answered = await client.post("/v1/chat/completions", json=chat, headers=headers)
    assert answered.status_code == 200
    key_id = (await console.gateway.authenticate(f"Bearer {console.admin_key}", "1.1.1.1")).key_id
    page = await console.sign_in(browser, console.admin_key)
    await page.click("#nav-dashboard")
    row = page.locator(f"#usage-{key_id}")
    await expect(row).to_contain_text("console-admin", timeout=20_000)
    cells = await row.locator("td").all_text_contents()
    assert int(cells[3]) >= 1 and int(cells[6]) >= 1  # requests, completion tokens
    await page.select_option("#usage-hours", "1")
    await expect(row).to_be_visible()
    await console.shot(page, "dashboard-usage", full_page=True)
    await page.context.close()
    # A monitor reads the metrics but not who used how much.
    monitor = make_key(console.gateway, "console-monitor-2", ["monitor"])
    page = await console.sign_in(browser, monitor)
    await page.click("#nav-dashboard")
    assert await page.locator("#usage").count() == 0
    await page.context.close()
