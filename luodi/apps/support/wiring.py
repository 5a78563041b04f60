"""``install_support``: the one call ``create_app`` makes to serve the assistants.

It loads the assistant files (a bad one fails start-up with ``file:line: problem``),
adds the Assist stage to the server's pipeline right after Authorize, names each
assistant in the model table and mounts the routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from luodi.api.pipeline import Authorize, Pipeline
from luodi.apps.support.catalog import AssistantCatalog
from luodi.apps.support.routes import build_support_router
from luodi.apps.support.service import SupportService
from luodi.apps.support.stage import Assist
from luodi.config import Settings

if TYPE_CHECKING:
    from luodi.api.state import AppState

__all__ = ["install_support", "with_stage"]


def with_stage(state: AppState, pipeline: Pipeline, stage: Assist) -> Pipeline:
    """``pipeline`` with ``stage`` placed right after Authorize."""
    stages = list(pipeline.stages)
    at = next((i + 1 for i, s in enumerate(stages) if isinstance(s, Authorize)), 0)
    stages.insert(at, stage)
    return Pipeline(state, stages, restore=pipeline.restore, audit=pipeline.audit)


def install_support(app: FastAPI, state: AppState, settings: Settings) -> SupportService | None:
    """Serve the assistants of ``support.assistants_dir`` (nothing when it is unset)."""
    folder = settings.support.assistants_dir
    if folder is None:
        return None
    catalog = AssistantCatalog(folder, check_every_s=settings.support.reload_check_s)
    service = SupportService(settings, state, catalog)
    assert state.pipeline is not None  # create_app builds it first
    state.pipeline = with_stage(state, state.pipeline, Assist(lambda: service))
    app.include_router(build_support_router(lambda: service))
    return service
