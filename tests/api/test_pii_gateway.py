"""PII in the request path: the model sees pseudonyms, the caller gets values back."""

from __future__ import annotations

import json

import httpx
import pytest

from luodi.security import AuditFilter
from tests.conftest import LiveServer, make_key

pytestmark = pytest.mark.model

ID_CARD = "11010519491231002X"  # valid GB 11643 check digit
PHONE = "13812345678"


async def test_prompt_pii_is_pseudonymized_and_counted_in_audit(live_server: LiveServer) -> None:
    key = make_key(live_server.gateway, "pii-user", ["developer"])
    prompt = f"客户身份证号 {ID_CARD}，手机 {PHONE}。请重复：身份证号"
    async with httpx.AsyncClient(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        resp = await http.post(
            "/v1/completions",
            json={
                "model": live_server.model,
                "prompt": prompt,
                "max_tokens": 24,
                "temperature": 0,
                "echo": True,
            },
        )
    assert resp.status_code == 200, resp.text
    text = resp.json()["choices"][0]["text"]
    assert text.startswith(prompt)  # echo returns the caller's own prompt
    assert "<ID_CARD" not in text and "<PHONE" not in text  # pseudonyms never leak out
    record = live_server.gateway.audit_log.query(AuditFilter(user="pii-user"))[0]
    findings = json.loads(record["pii_json"])
    assert findings == {"ID_CARD": 1, "PHONE": 1}  # types and counts only
    assert ID_CARD not in str(record) and PHONE not in str(record)


async def test_pii_api_analyzes_text(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        resp = await http.post("/v1/pii/analyze", json={"text": f"手机 {PHONE}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["counts"] == {"PHONE": 1}
    assert [(f["entity_type"], f["start"], f["end"]) for f in body["findings"]] == [
        ("PHONE", 3, 14)
    ]
