"""FastAPI dependencies: the typed doors from a route to the server's parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from luodi.api.pipeline import Pipeline
from luodi.api.state import AppState

__all__ = ["PipelineDep", "StateDep", "get_pipeline", "get_state"]


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.luodi
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_pipeline(state: StateDep) -> Pipeline:
    """The gateway pipeline ``create_app`` assembled."""
    assert state.pipeline is not None  # create_app builds it before any route runs
    return state.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
