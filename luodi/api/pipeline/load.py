"""Load: an on-demand model is brought into memory before Route plans with its tokenizer."""

from __future__ import annotations

from luodi.api.pipeline.exchange import Exchange
from luodi.engine.pool import OnDemand

__all__ = ["Load"]


class Load:
    """Awaits the model pool's load of the requested model (one load however many ask).

    It runs after Authorize, so only a caller allowed to invoke a model can make the
    server load it; a model that cannot fit the memory budget is refused here (507).
    """

    name = "load"

    async def run(self, exchange: Exchange) -> None:
        engine = exchange.engine
        if isinstance(engine, OnDemand):
            await engine.ensure_loaded()
