"""LangChain's ChatOpenAI, unchanged, against a live luodi server."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer

langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai not installed")

pytestmark = pytest.mark.model


def chat_model(server: LiveServer, max_tokens: int = 8) -> object:
    return langchain_openai.ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key=server.api_key,
        model=server.model,
        temperature=0,
        max_tokens=max_tokens,
        max_retries=0,
    )


async def test_chatopenai_invoke_and_stream_agree(live_server: LiveServer) -> None:
    llm = chat_model(live_server)
    whole = await llm.ainvoke("Say hello.")  # type: ignore[attr-defined]
    parts = [chunk.content async for chunk in llm.astream("Say hello.")]  # type: ignore[attr-defined]
    assert isinstance(whole.content, str) and whole.content
    assert "".join(parts) == whole.content
    assert whole.usage_metadata["output_tokens"] > 0


async def test_chatopenai_structured_output_with_json_schema(live_server: LiveServer) -> None:
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str = Field(max_length=20)
        country: str = Field(max_length=20)

    llm = chat_model(live_server, max_tokens=60).with_structured_output(  # type: ignore[attr-defined]
        City, method="json_schema"
    )
    city = await llm.ainvoke("Paris is a city in which country? Answer as JSON.")
    assert isinstance(city, City)
