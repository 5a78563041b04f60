"""The official openai client, unchanged, against a live luodi server."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.model


def sync_client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0)


def async_client(server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0)


async def test_models_lists_the_served_model_with_its_limits(live_server: LiveServer) -> None:
    models = await async_client(live_server).models.list()
    card = models.data[0].model_dump()
    assert card["id"] == live_server.model
    assert card["context_length"] > 0 and card["quantization"] == "Q4_K_M"
    assert "chat" in card["capabilities"]


async def test_sync_client_completion_and_stream_agree(live_server: LiveServer) -> None:
    def work() -> tuple[str, str, object]:
        client = sync_client(live_server)
        done = client.completions.create(
            model=live_server.model, prompt="The capital of France is", max_tokens=12, temperature=0
        )
        chunks = client.completions.create(
            model=live_server.model,
            prompt="The capital of France is",
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts, usage = [], None
        for chunk in chunks:
            if chunk.choices:
                parts.append(chunk.choices[0].text)
            if chunk.usage:
                usage = chunk.usage
        return done.choices[0].text, "".join(parts), usage

    whole, streamed, usage = await asyncio.to_thread(work)
    assert whole == streamed and whole
    assert usage is not None and usage.completion_tokens == 12  # type: ignore[attr-defined]


async def test_async_chat_completion_streams_in_openai_chunks(live_server: LiveServer) -> None:
    client = async_client(live_server)
    stream = await client.chat.completions.create(
        model=live_server.model,
        messages=[{"role": "user", "content": "Say hello in Chinese."}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    roles, text, reasons = [], "", []
    async for chunk in stream:
        delta = chunk.choices[0].delta
        if delta.role:
            roles.append(delta.role)
        text += delta.content or ""
        if chunk.choices[0].finish_reason:
            reasons.append(chunk.choices[0].finish_reason)
    assert roles == ["assistant"]
    assert reasons and reasons[-1] in {"stop", "length"}
    whole = await client.chat.completions.create(
        model=live_server.model,
        messages=[{"role": "user", "content": "Say hello in Chinese."}],
        max_tokens=16,
        temperature=0,
    )
    assert whole.choices[0].message.content == text
    assert whole.usage is not None and whole.usage.prompt_tokens > 5


async def test_n_choices_and_logprobs(live_server: LiveServer) -> None:
    client = async_client(live_server)
    done = await client.completions.create(
        model=live_server.model,
        prompt="Hello",
        max_tokens=4,
        n=3,
        temperature=1.0,
        seed=7,
        logprobs=2,
    )
    assert [c.index for c in done.choices] == [0, 1, 2]
    lp = done.choices[0].logprobs
    assert lp is not None and len(lp.tokens) == len(lp.token_logprobs) == 4  # type: ignore[arg-type]
    assert all(len(t) == 2 for t in lp.top_logprobs)  # type: ignore[union-attr]


async def test_json_schema_output_parses_and_validates(live_server: LiveServer) -> None:
    import json

    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "level": {"type": "string", "enum": ["low", "high"]},
            "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
        "required": ["city", "level", "tags"],
        "additionalProperties": False,
    }
    done = await async_client(live_server).chat.completions.create(
        model=live_server.model,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        max_tokens=80,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    jsonschema.validate(json.loads(done.choices[0].message.content or ""), schema)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "no-such-model", "prompt": "x"}, 404, "model"),
        ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
        ({"prompt": "x", "max_tokens": 10_000_000}, 400, "max_tokens"),
        ({"prompt": "x", "temperature": 3}, 400, "temperature"),
        ({"prompt": "x", "best_of": 3}, 400, "best_of"),
        ({"prompt": "x", "suffix": "y"}, 400, "suffix"),
        ({"prompt": []}, 400, "prompt"),
    ],
)
async def test_bad_completion_requests_get_openai_errors(
    live_server: LiveServer, body: dict[str, object], status: int, param: str
) -> None:
    body = {"model": live_server.model, **body}
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        resp = await http.post("/v1/completions", json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and error["message"]


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"model=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
        (b'{"model": "m", "messages": []}', {"content-type": "application/json"}, 400),
        (
            b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}',
            {"content-type": "application/json"},
            400,
        ),
    ],
)
async def test_malformed_chat_bodies_are_rejected_not_crashed(
    live_server: LiveServer, content: bytes, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        resp = await http.post("/v1/chat/completions", content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


async def test_health_and_prometheus_metrics(live_server: LiveServer) -> None:
    # A first request on a fresh engine can outlast httpx's 5 s default on a busy box.
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=60
    ) as http:
        await http.post(
            "/v1/completions",
            json={"model": live_server.model, "prompt": "Hi", "max_tokens": 3},
        )
        health = await http.get("/health")
        metrics = await http.get("/metrics")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200
    for family in (
        "luodi_request_queue_time_seconds_bucket",
        "luodi_time_to_first_token_seconds_bucket",
        "luodi_inter_token_latency_seconds_bucket",
        "luodi_e2e_request_latency_seconds_bucket",
        "luodi_batch_size_bucket",
        "luodi_num_requests_running",
        "luodi_num_requests_waiting",
        "luodi_prompt_tokens_total",
        "luodi_generation_tokens_total",
        "luodi_prefix_cache_hit_tokens_total",
    ):
        assert family in metrics.text, family


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}},
            "required": ["city"],
        },
    },
}


async def test_forced_tool_call_comes_back_as_openai_tool_calls(live_server: LiveServer) -> None:
    import json

    client = async_client(live_server)
    done = await client.chat.completions.create(
        model=live_server.model,
        messages=[{"role": "user", "content": "What is the weather in Beijing?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60,
        temperature=0,
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    stream = await client.chat.completions.create(
        model=live_server.model,
        messages=[{"role": "user", "content": "What is the weather in Beijing?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=60,
        temperature=0,
        stream=True,
    )
    names, reasons = [], []
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
        if chunk.choices[0].finish_reason:
            reasons.append(chunk.choices[0].finish_reason)
    # "required" admits several calls; this small model may keep calling until max_tokens.
    assert names and set(names) == {"get_weather"}
    assert reasons and reasons[-1] in {"tool_calls", "length"}


async def test_template_that_cannot_render_tool_turns_gives_a_clear_400(
    live_server: LiveServer,
) -> None:
    """Gemma's own template refuses role "tool"; Qwen3's renders it (tests/chat)."""
    with pytest.raises(openai.BadRequestError) as info:
        await async_client(live_server).chat.completions.create(
            model=live_server.model,
            messages=[
                {"role": "user", "content": "Weather in Beijing?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
            ],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            max_tokens=8,
        )
    assert "alternate" in str(info.value)


async def test_embeddings_float_and_base64_agree(live_server: LiveServer) -> None:
    import base64

    import numpy as np

    client = async_client(live_server)
    models = {m.id: m.model_dump() for m in (await client.models.list()).data}
    name = next(k for k, v in models.items() if "embedding" in v["capabilities"])
    texts = ["The bank opens at nine.", "银行九点开门。", "Cats sleep a lot."]
    floats = await client.embeddings.create(model=name, input=texts)
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert floats.usage.prompt_tokens > 0
    vectors = np.array([d.embedding for d in floats.data], dtype=np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] - 0.5  # related texts stay close
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        resp = await http.post(
            "/v1/embeddings",
            json={"model": name, "input": texts[0], "encoding_format": "base64"},
        )
    raw = np.frombuffer(base64.b64decode(resp.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(raw, vectors[0], atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "input": "x"}, 404, "model"),
        ({"input": ""}, 400, "input"),
        ({"input": []}, 400, "input"),
        ({"input": "x", "dimensions": 7}, 400, "dimensions"),
    ],
)
async def test_bad_embedding_requests_get_openai_errors(
    live_server: LiveServer, body: dict[str, object], status: int, param: str
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        models = (await http.get("/v1/models")).json()["data"]
        name = next(m["id"] for m in models if "embedding" in m["capabilities"])
        resp = await http.post("/v1/embeddings", json={"model": name, **body})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


async def test_speculation_is_on_by_default_and_a_request_can_opt_out(
    live_server: LiveServer,
) -> None:
    # A completion whose answer copies its prompt: drafts are verified, the metrics count
    # them, and opting out gives the same text.
    passage = "one two three four five six seven eight nine ten eleven twelve"
    prompt = f"{passage}\n{passage}\n{passage}\none two"
    client = async_client(live_server)

    async def drafted() -> float:
        async with httpx.AsyncClient(headers=live_server.headers, timeout=60) as http:
            metrics = await http.get(f"{live_server.url}/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        lines = [ln for ln in text.splitlines() if ln.startswith("luodi_spec_decode_draft_tokens")]
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines if "_total" in ln)

    before = await drafted()
    opted_out = await client.completions.create(
        model=live_server.model,
        prompt=prompt,
        max_tokens=24,
        temperature=0,
        extra_body={"speculative": False},
    )
    assert await drafted() == before
    spec = await client.completions.create(
        model=live_server.model, prompt=prompt, max_tokens=24, temperature=0
    )
    assert spec.choices[0].text == opted_out.choices[0].text
    assert await drafted() > before
