"""The Stage protocol: one step of the gateway pipeline, one method."""

from __future__ import annotations

from typing import Protocol

from luodi.api.pipeline.exchange import Exchange

__all__ = ["Stage"]


class Stage(Protocol):
    """One step a request passes before any engine sees it.

    ``run`` reads what earlier stages left on the exchange and leaves its own; it
    refuses a request by raising a ``LuodiError`` (the pipeline audits it as denied).
    A stage never reaches around another.
    """

    name: str

    async def run(self, exchange: Exchange) -> None: ...
