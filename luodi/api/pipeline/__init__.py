"""The gateway pipeline: small stages, each one method, assembled once by ``create_app``.

Routes parse a wire request into a ``Work``, then::

    exchange = pipeline.open(principal, request, model, work)
    async with pipeline.guarding(exchange):
        await pipeline.run(exchange)      # authorize … launch
    ...shape the answer, restoring with pipeline.answer(exchange)...
    await pipeline.finish(exchange)       # usage charged, one audit record

To add a stage: a class with ``name`` and ``async def run(self, exchange)`` that reads
and writes typed fields of ``Exchange`` (add one there if it needs to), placed in
``build_pipeline`` where its order is explained, and in docs/architecture.md.
"""

from luodi.api.pipeline.audit import Audit
from luodi.api.pipeline.authorize import Authorize
from luodi.api.pipeline.exchange import (
    ChatWork,
    CompletionWork,
    EmbeddingWork,
    Exchange,
    Primed,
    TokenizeWork,
    Work,
)
from luodi.api.pipeline.fit import Fit
from luodi.api.pipeline.ground import Ground
from luodi.api.pipeline.launch import Launch
from luodi.api.pipeline.limit import Limit
from luodi.api.pipeline.pipeline import Pipeline, build_pipeline, client_ip
from luodi.api.pipeline.protect import Protect
from luodi.api.pipeline.restore import AnswerRestorer, Restore
from luodi.api.pipeline.route import Route
from luodi.api.pipeline.stage import Stage

__all__ = [
    "AnswerRestorer",
    "Audit",
    "Authorize",
    "ChatWork",
    "CompletionWork",
    "EmbeddingWork",
    "Exchange",
    "Fit",
    "Ground",
    "Launch",
    "Limit",
    "Pipeline",
    "Primed",
    "Protect",
    "Restore",
    "Route",
    "Stage",
    "TokenizeWork",
    "Work",
    "build_pipeline",
    "client_ip",
]
