"""Custom PII rules change without a restart; a bad one is refused and changes nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from luodi.api.app import create_app
from luodi.config import load_settings
from luodi.security import Gateway
from tests.conftest import make_key

RULE = """
privacy:
  custom_rules:
    - name: EMPLOYEE_ID
      regex: "EMP-\\\\d{5}"
      score: 0.9
"""
BAD_RULE = """
privacy:
  custom_rules:
    - name: BROKEN
      regex: "EMP-(\\\\d{5}"
"""


async def test_reload_adds_a_rule_and_refuses_a_broken_one(
    live_gateway: Gateway, tmp_path: Path
) -> None:
    config = tmp_path / "luodi.yaml"
    config.write_text(f"knowledge:\n  data_dir: {tmp_path / 'kb'}\n")
    app = create_app(load_settings(config), engines={}, gateway=live_gateway, config_path=config)
    key = make_key(live_gateway, "privacy-admin", ["admin"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http,
    ):

        async def found() -> list[str]:
            resp = await http.post(
                "/v1/pii/analyze",
                json={"text": "工号 EMP-12345 已登记", "entities": ["EMPLOYEE_ID", "CN_MOBILE"]},
            )
            return [f["entity_type"] for f in resp.json()["findings"]]

        assert "EMPLOYEE_ID" not in await found()
        config.write_text(config.read_text() + RULE)
        ok = await http.post("/admin/privacy/reload")
        assert ok.status_code == 200, ok.text
        assert "EMPLOYEE_ID" in await found()
        config.write_text(config.read_text().replace(RULE, BAD_RULE))
        bad = await http.post("/admin/privacy/reload")
        assert bad.status_code == 400 and "BROKEN" in bad.json()["error"]["message"]
        assert "EMPLOYEE_ID" in await found()  # the rules in force stayed
