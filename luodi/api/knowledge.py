"""REST routes of the knowledge bases: ``/v1/knowledge/...``.

Routes stay thin: parse, ask ``authorize`` for ``kb:<name>:read|write|download``,
call the ``KnowledgeService`` in a worker thread, shape the answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from luodi.errors import InvalidRequestError, LuodiError
from luodi.knowledge import KnowledgeService, Principal

__all__ = ["Authorize", "build_knowledge_router"]

Authorize = Callable[[Request, str], Awaitable[Principal]]
"""``await authorize(request, "kb:faq:read")`` returns the principal or raises a luodi error."""


class CreateCollection(BaseModel):
    """Body of ``POST /v1/knowledge``."""

    name: str
    description: str = ""


class SearchRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/search``."""

    query: str = Field(min_length=1, max_length=8192)
    top_k: int | None = Field(default=None, ge=1, le=50)
    filter: dict[str, str] = Field(default_factory=dict)


class EraseRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/erase``: documents whose metadata key equals value."""

    key: str = Field(min_length=1)
    value: str = Field(min_length=1)


class SyncRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/sync``; no source: every source of the collection."""

    source_id: str | None = None


def _doc(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "knowledge.document",
        "name": info.name,
        "chunks": info.chunks,
        "content_hash": info.content_hash,
        "access": info.access,
        "metadata": info.meta,
        "updated_at": int(info.updated_at.timestamp())
        if isinstance(info.updated_at, datetime)
        else None,
    }


def _report(report: Any) -> dict[str, Any]:
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "failed": [{"name": n, "error": e} for n, e in report.failed.items()],
        "chunks": report.chunks,
    }


def build_knowledge_router(service: KnowledgeService, authorize: Authorize) -> APIRouter:
    """The ``/v1/knowledge`` routes over ``service``, guarded by ``authorize``."""
    router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])

    @router.post("")
    async def create_collection(body: CreateCollection, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{body.name}:write")
        owner = getattr(principal, "user", None) or principal.tenant or ""
        info = await run_in_threadpool(
            service.create_collection, body.name, str(owner), body.description
        )
        return {"object": "knowledge.collection", "name": info.name, "owner": info.owner}

    @router.get("")
    async def list_collections(request: Request) -> dict[str, Any]:
        data = []
        for info in await run_in_threadpool(service.list_collections):
            try:
                await authorize(request, f"kb:{info.name}:read")
            except LuodiError:
                continue  # collections the caller may not read are not listed
            data.append(
                {
                    "object": "knowledge.collection",
                    "name": info.name,
                    "owner": info.owner,
                    "description": info.description,
                    "documents": info.documents,
                    "chunks": info.chunks,
                }
            )
        return {"object": "list", "data": data}

    @router.post("/{kb}/documents")
    async def upload(
        kb: str,
        request: Request,
        files: Annotated[list[UploadFile], File()],
        access: Annotated[str, Form()] = "",
        metadata: Annotated[str, Form()] = "{}",
    ) -> dict[str, Any]:
        await authorize(request, f"kb:{kb}:write")
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"metadata is not JSON: {exc}", param="metadata") from exc
        if not isinstance(meta, dict):
            raise InvalidRequestError("metadata must be a JSON object", param="metadata")
        items: list[tuple[str, bytes]] = []
        for upload_file in files:
            max_bytes = int(service.settings.max_upload_mb * 1024 * 1024)
            data = await upload_file.read(max_bytes + 1)
            name = upload_file.filename or "upload"
            if len(data) > max_bytes:
                raise InvalidRequestError(
                    f"{name} is larger than {service.settings.max_upload_mb} MB", param="files"
                )
            items.append((name, data))
        tags = [t.strip() for t in access.split(",") if t.strip()]
        report = await run_in_threadpool(
            lambda: service.ingest(
                kb, items, access=tags, meta={k: str(v) for k, v in meta.items()}
            )
        )
        return {"object": "knowledge.ingest", **_report(report)}

    @router.get("/{kb}/documents")
    async def list_documents(kb: str, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{kb}:read")
        docs = await run_in_threadpool(service.list_documents, kb, principal)
        return {"object": "list", "data": [_doc(d) for d in docs]}

    @router.get("/{kb}/documents/{doc_id}")
    async def get_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{kb}:read")
        return _doc(await run_in_threadpool(service.get_document, kb, doc_id, principal))

    @router.get("/{kb}/documents/{doc_id}/file")
    async def download(kb: str, doc_id: str, request: Request) -> Response:
        principal = await authorize(request, f"kb:{kb}:download")
        name, data = await run_in_threadpool(service.original, kb, doc_id, principal)
        filename = name.rsplit("/", 1)[-1].replace('"', "")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.delete("/{kb}/documents/{doc_id}")
    async def delete_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{kb}:write")
        actor = str(getattr(principal, "user", "") or "")
        await run_in_threadpool(lambda: service.delete_document(kb, doc_id, actor=actor))
        return {"object": "knowledge.document.deleted", "id": doc_id, "deleted": True}

    @router.post("/{kb}/erase")
    async def erase(kb: str, body: EraseRequest, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{kb}:write")
        actor = str(getattr(principal, "user", "") or "")
        n = await run_in_threadpool(
            lambda: service.erase(body.key, body.value, collections=[kb], actor=actor)
        )
        return {"object": "knowledge.erasure", "documents_deleted": n}

    @router.post("/{kb}/search")
    async def search(kb: str, body: SearchRequest, request: Request) -> dict[str, Any]:
        principal = await authorize(request, f"kb:{kb}:read")
        hits = await run_in_threadpool(
            lambda: service.search(
                [kb], body.query, body.top_k, principal=principal, meta=body.filter
            )
        )
        return {
            "object": "list",
            "data": [
                {
                    "document_id": h.doc_id,
                    "document": h.document,
                    "chunk_id": h.chunk_id,
                    "position": h.position,
                    "heading": h.heading,
                    "score": h.score,
                    "text": h.text,
                }
                for h in hits
            ],
        }

    @router.post("/{kb}/sync")
    async def sync(kb: str, request: Request, body: SyncRequest | None = None) -> dict[str, Any]:
        await authorize(request, f"kb:{kb}:write")
        sources = [s.id for s in await run_in_threadpool(service.sources, kb)]
        if body is not None and body.source_id is not None:
            if body.source_id not in sources:
                raise InvalidRequestError(
                    f"source {body.source_id!r} is not a source of {kb!r}", param="source_id"
                )
            sources = [body.source_id]
        reports = {}
        for source_id in sources:
            report = await run_in_threadpool(lambda s=source_id: service.sync(s, trigger="api"))
            reports[source_id] = _report(report)
        return {"object": "knowledge.sync", "sources": reports}

    return router
