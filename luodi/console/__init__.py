"""The web console at ``/console``: server-rendered pages over the gateway's own logic.

Pages are Jinja2 templates (autoescaped) with plain JavaScript served from
``static/`` (no inline scripts, a strict Content-Security-Policy, nothing fetched
from a CDN). Sign-in opens a server-side session that acts as an API key; see
``luodi.security.console_sessions`` and docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from luodi.api.state import AppState
from luodi.console.pages import build_pages_router
from luodi.console.rendering import Pages
from luodi.console.signin import build_signin_router

__all__ = ["install_console"]


def install_console(app: FastAPI, state: AppState) -> None:
    """Mount the console's pages and static files (unless ``console.enabled`` is off)."""
    settings = state.settings.console
    if not settings.enabled:
        return
    pages = Pages()
    app.mount(
        "/console/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="console-static",
    )
    app.include_router(build_signin_router(state, pages, settings), prefix="/console")
    app.include_router(build_pages_router(state, pages), prefix="/console")
