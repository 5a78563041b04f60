"""POST /v1/chat/completions (being completed with luodi.chat)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
