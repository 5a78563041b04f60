"""``/v1/completions`` with ``echo`` and ``logprobs``: prompt scores, as lm-eval reads them."""

from __future__ import annotations

import json

import httpx

from tests.conftest import LiveServer

PROMPT = "The capital of France is"


async def complete(server: LiveServer, **body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as c:
        return await c.post("/v1/completions", json={"model": server.model, **body})


async def test_echo_with_logprobs_scores_every_prompt_token(live_server: LiveServer) -> None:
    r = await complete(live_server, prompt=PROMPT, echo=True, logprobs=1, max_tokens=0)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    n = r.json()["usage"]["prompt_tokens"]
    assert choice["text"] == PROMPT and choice["finish_reason"] == "length"
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"]) == n
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(v is not None and v <= 0 for v in lp["token_logprobs"][1:])
    assert all(len(top) == 1 for top in lp["top_logprobs"][1:])
    assert lp["text_offset"] == sorted(lp["text_offset"])
    assert "".join(lp["tokens"]) == PROMPT  # offsets index the echoed text


async def test_lm_eval_style_request_scores_prompt_then_one_token(live_server: LiveServer) -> None:
    # lm-eval's local-completions: token-id prompts, echo, logprobs, max_tokens 1.
    ids = (await complete(live_server, prompt=PROMPT, echo=True, logprobs=0, max_tokens=0)).json()
    n = ids["usage"]["prompt_tokens"]
    r = await complete(
        live_server, prompt=PROMPT, echo=True, logprobs=0, max_tokens=1, temperature=0
    )
    lp = r.json()["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == n + 1
    assert lp["token_logprobs"][:n] == ids["choices"][0]["logprobs"]["token_logprobs"]


async def test_streamed_echo_carries_the_prompt_scores_first(live_server: LiveServer) -> None:
    body = {
        "model": live_server.model,
        "prompt": PROMPT,
        "echo": True,
        "logprobs": 0,
        "max_tokens": 2,
        "stream": True,
    }
    client = httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers, timeout=60)
    async with client, client.stream("POST", "/v1/completions", json=body) as r:
        lines = [line async for line in r.aiter_lines() if line.startswith("data: {")]
    first = json.loads(lines[0][6:])["choices"][0]
    assert first["text"] == PROMPT
    assert first["logprobs"]["token_logprobs"][0] is None
    assert len(first["logprobs"]["tokens"]) > 1


async def test_max_tokens_zero_without_echo_is_a_clear_400(live_server: LiveServer) -> None:
    r = await complete(live_server, prompt=PROMPT, max_tokens=0)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "max_tokens"
