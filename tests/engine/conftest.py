"""Fixtures of the upstream and router tests: stand-in OpenAI servers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from standin import StandIn


@pytest.fixture
def standin() -> Iterator[Callable[[str], StandIn]]:
    """Start stand-in servers by name; every one is stopped after the test."""
    started: list[StandIn] = []

    def make(name: str) -> StandIn:
        server = StandIn(name)
        server.up()
        started.append(server)
        return server

    yield make
    for server in started:
        server.down()
