"""REST routes of the knowledge bases: ``/v1/knowledge/...``.

Routes stay thin: parse, ask ``authorize`` for ``kb:<name>:read|write|download``
(which answers with the ``Caller`` the knowledge ACL applies to), call the
``KnowledgeService`` in a worker thread, shape the answer. Uploads are read from the
request stream by the route itself, after the permission check, with a hard cap.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from luodi.errors import InvalidRequestError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller

__all__ = ["Authorize", "UploadTooLargeError", "build_knowledge_router", "content_disposition"]

Authorize = Callable[[Request, str | None], Awaitable[Caller]]
"""``await authorize(request, "kb:faq:read")`` returns the caller or raises a luodi error;
``None`` only authenticates."""

# Room for the multipart boundaries, part headers and the small form fields.
_FORM_OVERHEAD = 64 * 1024
_MAX_FILES = 100


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "access": {
                            "type": "string",
                            "description": "comma-separated: tenant:<t>, role:<r>, public",
                        },
                        "metadata": {"type": "string", "description": "a JSON object"},
                    },
                }
            }
        },
    }
}
"""The upload's form, documented by hand: the route reads the stream itself."""


class UploadTooLargeError(InvalidRequestError):
    """An upload past ``knowledge.max_upload_mb``: refused with 413 before it is all read."""

    status_code = 413
    default_code = "upload_too_large"


class CreateCollection(BaseModel):
    """Body of ``POST /v1/knowledge``."""

    name: str
    description: str = ""
    shared: bool = False
    """Seen by every tenant's readers (each sees only documents its ACL allows);
    needs ``kb:<name>:publish``."""


class UpdateCollection(BaseModel):
    """Body of ``PATCH /v1/knowledge/{kb}``."""

    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    """Give the collection to a tenant (``kb:<name>:manage``); its documents indexed
    before tenancy become that tenant's."""
    shared: bool | None = None
    """Share or unshare it (``kb:<name>:publish``)."""


class SearchRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/search``."""

    query: str = Field(min_length=1, max_length=8192)
    top_k: int | None = Field(default=None, ge=1, le=50)
    filter: dict[str, str] = Field(default_factory=dict)


class EraseRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/erase``: documents whose metadata key equals value."""

    key: str = Field(min_length=1)
    value: str = Field(min_length=1)


class AccessUpdate(BaseModel):
    """Body of ``PATCH /v1/knowledge/{kb}/documents/{doc_id}``: the new access list."""

    access: list[str] = Field(max_length=64)
    """``tenant:<t>``, ``role:<r>`` or ``public``; empty: the owner's tenant only."""


class SyncRequest(BaseModel):
    """Body of ``POST /v1/knowledge/{kb}/sync``; no source: every source of the collection."""

    source_id: str | None = None
    background: bool = False
    """Run each source's sync as a background job: answer 202 with the jobs at once."""


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


def _collection(info: Any) -> dict[str, Any]:
    return {
        "object": "knowledge.collection",
        "name": info.name,
        "owner": info.owner,
        "tenant": info.tenant,
        "shared": info.shared,
        "description": info.description,
        "documents": info.documents,
        "chunks": info.chunks,
    }


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact name as RFC 5987 ``filename*``."""
    base = name.rsplit("/", 1)[-1] or "download"
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", base)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


async def _read_form(
    request: Request, max_bytes: int
) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """Files and text fields of a multipart upload, streamed to temporary files.

    The body is counted as it arrives and refused past ``max_bytes`` (plus the form's
    own overhead): a declared ``Content-Length`` over it is refused before any byte is
    read, a chunked body as soon as it crosses it.

    Raises:
        UploadTooLargeError: the body or one file is larger than ``max_bytes``.
        InvalidRequestError: not ``multipart/form-data``, or a malformed form.
    """
    limit = max_bytes + _FORM_OVERHEAD
    mb = max_bytes / (1024 * 1024)
    too_large = f"upload larger than knowledge.max_upload_mb ({mb:g} MB)"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError(too_large, param="files")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError("send the files as multipart/form-data", param="files")

    async def capped() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise UploadTooLargeError(too_large, param="files")
            yield chunk

    parser = MultiPartParser(request.headers, capped(), max_files=_MAX_FILES, max_fields=_MAX_FILES)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequestError(f"malformed upload: {exc.message}", param="files") from exc
    try:
        files: list[tuple[str, bytes]] = []
        fields: dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "files":
                    continue
                data = await value.read(max_bytes + 1)
                name = value.filename or "upload"
                if len(data) > max_bytes:
                    raise UploadTooLargeError(f"{name}: {too_large}", param="files")
                files.append((name, data))
            else:
                fields[key] = value
    finally:
        await form.close()
    if not files:
        raise InvalidRequestError("no files in the upload (field 'files')", param="files")
    return files, fields


def _epoch(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, datetime) else None


_RUNS_SHOWN = 5


def _source(source: Any, next_at: datetime | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": source.id,
        "object": "knowledge.source",
        "collection": source.collection,
        "locations": list(source.locations),
        "schedule": source.schedule,
        "access": list(source.access),
        "last_sync_at": _epoch(source.last_sync_at),
        "next_sync_at": _epoch(next_at),
        # The latest runs, newest first, as counts (a run's failures keep their reasons).
        "runs": [_run(run) for run in reversed(runs[-_RUNS_SHOWN:])],
    }


def _run(run: dict[str, Any]) -> dict[str, Any]:
    def count(value: Any) -> int:
        return value if isinstance(value, int) else len(value or ())

    return {
        "trigger": run.get("trigger"),
        "started_at": _epoch(run.get("started_at")),
        **{k: count(run.get(k)) for k in ("added", "updated", "unchanged", "deleted", "chunks")},
        "failed": dict(run.get("failed") or {}),
    }


def _job(status: Any) -> dict[str, Any]:
    """A background job as the API shows it (``GET /v1/knowledge/{kb}/jobs/{id}``)."""
    failed = [{"name": n, "error": e} for n, e in status.failed.items()]
    return {
        "object": "knowledge.job",
        "id": status.id,
        "kind": status.kind,
        "knowledge_base": status.collection,
        "state": status.state,
        "files": {"done": status.files_done, "total": status.files_total},
        "chunks": {"done": status.chunks_done, "total": status.chunks_total},
        "failed": failed,
        "report": None if status.report is None else {**status.report, "failed": failed},
        "error": status.error,
        "created_at": int(status.created_at.timestamp()),
        "started_at": int(status.started_at.timestamp()) if status.started_at else None,
        "finished_at": int(status.finished_at.timestamp()) if status.finished_at else None,
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
        caller = await authorize(request, f"kb:{body.name}:write")
        if body.shared:
            caller = await authorize(request, f"kb:{body.name}:publish")
        info = await run_in_threadpool(
            lambda: service.create_collection(
                body.name, description=body.description, caller=caller, shared=body.shared
            )
        )
        return _collection(info)

    @router.get("")
    async def list_collections(request: Request) -> dict[str, Any]:
        caller = await authorize(request, None)
        infos = await run_in_threadpool(service.list_collections, caller)
        # Collections the caller may not read are not listed.
        data = [_collection(i) for i in infos if caller.may(f"kb:{i.name}:read")]
        return {"object": "list", "data": data}

    @router.patch("/{kb}")
    async def update_collection(
        kb: str, body: UpdateCollection, request: Request
    ) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:read")
        if body.tenant is not None:
            caller = await authorize(request, f"kb:{kb}:manage")
        if body.shared is not None:
            caller = await authorize(request, f"kb:{kb}:publish")
        info = await run_in_threadpool(
            lambda: service.update_collection(
                kb, caller=caller, tenant=body.tenant, shared=body.shared
            )
        )
        return _collection(info)

    @router.post("/{kb}/documents", openapi_extra=_UPLOAD_BODY)
    async def upload(
        kb: str, request: Request, response: Response, background: bool = False
    ) -> dict[str, Any]:
        """Ingest the uploaded files; ``?background=true``: as a job, answered 202 at once
        (follow it at ``GET /v1/knowledge/{kb}/jobs/{id}``)."""
        caller = await authorize(request, f"kb:{kb}:write")
        max_bytes = int(service.settings.max_upload_mb * 1024 * 1024)
        items, fields = await _read_form(request, max_bytes)
        try:
            meta = json.loads(fields.get("metadata", "{}"))
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"metadata is not JSON: {exc}", param="metadata") from exc
        if not isinstance(meta, dict):
            raise InvalidRequestError("metadata must be a JSON object", param="metadata")
        tags = [t.strip() for t in fields.get("access", "").split(",") if t.strip()]
        if background:
            job = await run_in_threadpool(
                lambda: service.submit_ingest(
                    kb,
                    items,
                    access=tags,
                    meta={k: str(v) for k, v in meta.items()},
                    caller=caller,
                )
            )
            response.status_code = 202
            return _job(job)
        report = await run_in_threadpool(
            lambda: service.ingest(
                kb,
                items,
                access=tags,
                meta={k: str(v) for k, v in meta.items()},
                caller=caller,
            )
        )
        return {"object": "knowledge.ingest", **_report(report)}

    @router.get("/{kb}/documents")
    async def list_documents(kb: str, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:read")
        docs = await run_in_threadpool(service.list_documents, kb, caller)
        return {"object": "list", "data": [_doc(d) for d in docs]}

    @router.get("/{kb}/documents/{doc_id}")
    async def get_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:read")
        return _doc(await run_in_threadpool(service.get_document, kb, doc_id, caller))

    @router.patch("/{kb}/documents/{doc_id}")
    async def set_access(
        kb: str, doc_id: str, body: AccessUpdate, request: Request
    ) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        info = await run_in_threadpool(
            lambda: service.set_access(kb, doc_id, body.access, caller=caller)
        )
        return _doc(info)

    @router.get("/{kb}/documents/{doc_id}/file")
    async def download(kb: str, doc_id: str, request: Request) -> Response:
        caller = await authorize(request, f"kb:{kb}:download")
        name, data = await run_in_threadpool(service.original, kb, doc_id, caller)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": content_disposition(name)},
        )

    @router.delete("/{kb}/documents/{doc_id}")
    async def delete_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        await run_in_threadpool(
            lambda: service.delete_document(kb, doc_id, actor=caller.user, caller=caller)
        )
        return {"object": "knowledge.document.deleted", "id": doc_id, "deleted": True}

    @router.post("/{kb}/erase")
    async def erase(kb: str, body: EraseRequest, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        n = await run_in_threadpool(
            lambda: service.erase(
                body.key, body.value, collections=[kb], actor=caller.user, caller=caller
            )
        )
        return {"object": "knowledge.erasure", "documents_deleted": n}

    @router.post("/{kb}/search")
    async def search(kb: str, body: SearchRequest, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:read")
        hits = await run_in_threadpool(
            lambda: service.search([kb], body.query, body.top_k, principal=caller, meta=body.filter)
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

    @router.get("/{kb}/sources")
    async def list_sources(kb: str, request: Request) -> dict[str, Any]:
        """The collection's sync sources in the caller's scope, with their latest runs."""
        caller = await authorize(request, f"kb:{kb}:write")

        def read() -> list[dict[str, Any]]:
            return [
                _source(s, service.next_sync_at(s), service.sync_reports(s.id))
                for s in service.sources(kb, caller)
            ]

        return {"object": "list", "data": await run_in_threadpool(read)}

    @router.post("/{kb}/sync")
    async def sync(
        kb: str, request: Request, response: Response, body: SyncRequest | None = None
    ) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        sources = [s.id for s in await run_in_threadpool(service.sources, kb, caller)]
        if body is not None and body.source_id is not None:
            if body.source_id not in sources:
                raise InvalidRequestError(
                    f"source {body.source_id!r} is not a source of {kb!r}", param="source_id"
                )
            sources = [body.source_id]
        if body is not None and body.background:
            jobs = [
                await run_in_threadpool(lambda s=source_id: service.submit_sync(s, trigger="api"))
                for source_id in sources
            ]
            response.status_code = 202
            return {"object": "knowledge.sync", "jobs": [_job(j) for j in jobs]}
        reports = {}
        for source_id in sources:
            report = await run_in_threadpool(lambda s=source_id: service.sync(s, trigger="api"))
            reports[source_id] = _report(report)
        return {"object": "knowledge.sync", "sources": reports}

    @router.post("/{kb}/reembed", status_code=202)
    async def reembed(kb: str, request: Request) -> dict[str, Any]:
        """Re-embed every chunk with the served embedding model, as a background job
        (after ``embeddings.model`` changed; every tenant's documents: ``kb:<name>:manage``)."""
        await authorize(request, f"kb:{kb}:manage")
        return _job(await run_in_threadpool(service.submit_reembed, kb))

    @router.get("/{kb}/jobs")
    async def list_jobs(kb: str, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        jobs = await run_in_threadpool(service.jobs, kb, caller)
        return {"object": "list", "data": [_job(j) for j in jobs]}

    @router.get("/{kb}/jobs/{job_id}")
    async def get_job(kb: str, job_id: str, request: Request) -> dict[str, Any]:
        caller = await authorize(request, f"kb:{kb}:write")
        return _job(await run_in_threadpool(service.job, kb, job_id, caller))

    @router.delete("/{kb}/jobs/{job_id}")
    async def cancel_job(kb: str, job_id: str, request: Request) -> dict[str, Any]:
        """Stop a job at its next batch; documents it finished stay indexed."""
        caller = await authorize(request, f"kb:{kb}:write")
        return _job(await run_in_threadpool(service.cancel_job, kb, job_id, caller))

    return router
