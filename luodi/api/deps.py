"""FastAPI dependencies: the typed doors from a route to the server's parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from luodi.api.state import AppState

__all__ = ["StateDep", "get_state"]


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.luodi
    return state


StateDep = Annotated[AppState, Depends(get_state)]
