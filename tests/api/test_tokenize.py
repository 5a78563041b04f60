"""vLLM's /tokenize, /detokenize and /tokenizer_info: the model's tokenizer, behind the gateway."""

from __future__ import annotations

import uuid

import httpx

from luodi.engine.llamacpp.engine import LlamaCppEngine
from tests.conftest import LiveServer, make_key


def client(server: LiveServer, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60)


async def test_tokenize_gives_the_engines_own_ids_and_detokenize_inverts_them(
    live_server: LiveServer, engine: LlamaCppEngine
) -> None:
    text = "落地 means landing: The capital of France is"
    async with client(live_server) as c:
        r = await c.post("/tokenize", json={"prompt": text, "return_token_strs": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tokens"] == engine.tokenize(text) and body["count"] == len(body["tokens"])
        assert body["max_model_len"] == engine.info.context_length
        assert len(body["token_strs"]) == body["count"]
        bare = await c.post("/tokenize", json={"prompt": text, "add_special_tokens": False})
        assert bare.json()["tokens"] == engine.tokenize(text, add_special=False)
        back = await c.post("/detokenize", json={"tokens": bare.json()["tokens"]})
        assert back.json() == {"prompt": text}


async def test_chat_messages_tokenize_as_a_chat_request_would(live_server: LiveServer) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    async with client(live_server) as c:
        counted = await c.post("/tokenize", json={"model": live_server.model, "messages": messages})
        chat = await c.post(
            "/v1/chat/completions",
            json={"model": live_server.model, "messages": messages, "max_tokens": 1},
        )
    assert counted.json()["count"] == chat.json()["usage"]["prompt_tokens"]


async def test_tokenizer_info_names_the_special_tokens_and_template(
    live_server: LiveServer,
) -> None:
    async with client(live_server) as c:
        info = (await c.get("/tokenizer_info")).json()
    assert info["bos_token"] and info["eos_token"]
    assert "{%" in info["chat_template"]
    assert info["model_max_length"] > 0


async def test_bad_requests_are_clear_400s(live_server: LiveServer) -> None:
    async with client(live_server) as c:
        both = await c.post("/tokenize", json={"prompt": "a", "messages": [{"role": "user"}]})
        neither = await c.post("/tokenize", json={})
        outside = await c.post("/detokenize", json={"tokens": [1, 10**9]})
        unknown = await c.post("/tokenize", json={"model": "nope", "prompt": "a"})
    assert both.status_code == neither.status_code == 400
    assert outside.status_code == 400 and outside.json()["error"]["param"] == "tokens"
    assert "outside the vocabulary" in outside.json()["error"]["message"]
    assert unknown.status_code == 404


async def test_tokenizing_needs_a_key_allowed_to_use_the_model(live_server: LiveServer) -> None:
    other = make_key(live_server.gateway, "tok-other", ["developer"], allowed_models=["elsewhere"])
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as anonymous:
        assert (await anonymous.post("/tokenize", json={"prompt": "a"})).status_code == 401
    async with client(live_server, other) as c:
        refused = await c.post("/tokenize", json={"prompt": "a"})
    assert refused.status_code == 403


async def test_each_tokenize_call_is_audited(live_server: LiveServer) -> None:
    user = f"tok-audit-{uuid.uuid4().hex[:8]}"
    key = make_key(live_server.gateway, user, ["developer"])
    async with client(live_server, key) as c:
        assert (await c.post("/tokenize", json={"prompt": "audit me"})).status_code == 200
    async with client(live_server) as admin:
        records = (await admin.get("/admin/audit", params={"user": user})).json()
    rows = records if isinstance(records, list) else records.get("records", records.get("data"))
    assert [r.get("endpoint") for r in rows] == ["/tokenize"], rows
