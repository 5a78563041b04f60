"""Who may see and change which knowledge base and document: the knowledge-base ACL.

Three rules carry it:

* A **collection** belongs to one tenant (``CollectionRow.tenant``) unless it is declared
  *shared*; a caller of another tenant cannot see it at all (404, the same answer as for a
  name that does not exist). A collection with no tenant that is not shared (one made
  before tenancy, or by the CLI without ``--owner``) is seen only by managers.
* A **document** is owned by the scope of the tenant that uploaded it (``tenant:acme``)
  and is keyed by (collection, name, owner): an upload never matches, replaces or
  compares itself with another scope's document. Its access list says who of the
  collection's readers see it: ``tenant:<t>``, ``role:<r>`` (holders of the role in the
  owner's tenant) or ``*`` (every reader of the collection: "public"). An upload without
  an access list gets its uploader's tenant; ``*`` and other tenants need
  ``kb:<name>:publish``.
* **Writes** (replace, delete, erase) reach only documents the caller can read *and*
  whose owner scope is the caller's; ``kb:<name>:manage`` reaches every document and
  collection of that name, whatever its tenant.

The gateway's RBAC still decides ``kb:<name>:read|write|download`` first; this module
narrows what those permissions reach. It knows nothing of the security package: a
``Caller`` carries the tenant, the roles and a permission predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from luodi.errors import InvalidRequestError, PermissionDeniedError
from luodi.knowledge.types import PUBLIC_TAG, Principal

__all__ = [
    "Caller",
    "as_caller",
    "document_tags",
    "stored_access",
]


def _deny(_permission: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Caller:
    """Someone acting on the knowledge bases, as the ACL sees them.

    Attributes:
        tenant: the caller's tenant; documents it uploads are owned by ``tenant:<tenant>``.
        roles: the caller's role names (``role:<r>`` tags of its tenant's documents).
        user: who acts, for the audit log.
        may: whether a permission is granted (``kb:<name>:publish``, ``kb:<name>:manage``);
            the API wires the gateway's RBAC in; the default grants nothing.
    """

    tenant: str | None
    roles: frozenset[str] = frozenset()
    user: str = ""
    may: Callable[[str], bool] = field(default=_deny, compare=False)

    @property
    def scope(self) -> str:
        """The owner scope of what this caller uploads: ``tenant:<tenant>``."""
        if not self.tenant:
            raise PermissionDeniedError(
                f"user {self.user!r} has no tenant and cannot own knowledge-base documents"
            )
        return f"tenant:{self.tenant}"

    def manages(self, collection: str) -> bool:
        """Holds ``kb:<collection>:manage``: every tenant's documents of that collection."""
        return self.may(f"kb:{collection}:manage")

    def publishes(self, collection: str) -> bool:
        """Holds ``kb:<collection>:publish``: may make documents public or share them."""
        return self.may(f"kb:{collection}:publish")

    def reads(self, collection: str, owner: str, access: Sequence[str]) -> bool:
        """May read a document (``owner``, ``access``) of a collection it can see."""
        if self.manages(collection):
            return True
        return bool(document_tags(owner, access) & self.read_tags())

    def writes(self, collection: str, owner: str, access: Sequence[str]) -> bool:
        """May replace or delete it: reads it and its tenant owns it (or manages)."""
        if self.manages(collection):
            return True
        mine = self.tenant is not None and owner == f"tenant:{self.tenant}"
        return mine and self.reads(collection, owner, access)

    def read_tags(self) -> frozenset[str]:
        """Document tags this caller reads in a collection it can see."""
        tags = {PUBLIC_TAG}
        if self.tenant:
            tags.add(f"tenant:{self.tenant}")
            tags.update(f"tenant:{self.tenant}/role:{r}" for r in self.roles)
        # Bare role tags exist only on documents indexed before tenancy, and only in
        # collections an administrator assigned to one tenant or declared shared.
        tags.update(f"role:{r}" for r in self.roles)
        return frozenset(tags)


def as_caller(principal: Principal | Caller) -> Caller:
    """A ``Caller`` for a principal; one that is not a ``Caller`` gets no extra permission."""
    if isinstance(principal, Caller):
        return principal
    return Caller(
        tenant=principal.tenant or None,
        roles=frozenset(principal.roles),
        user=str(getattr(principal, "user", "") or ""),
    )


def document_tags(owner: str, access: Sequence[str]) -> frozenset[str]:
    """Index tags of a document owned by ``owner`` with access list ``access``.

    ``role:<r>`` is narrowed to the owner's tenant (``tenant:acme/role:hr``). An empty
    list (only documents indexed before tenancy have one) reads as ``*``.
    """
    if not access:
        return frozenset({PUBLIC_TAG})
    tags = set()
    for tag in access:
        if tag.startswith("role:") and owner:
            tags.add(f"{owner}/{tag}")
        else:
            tags.add(tag)
    return frozenset(tags)


def stored_access(
    requested: Sequence[str], *, caller: Caller | None, collection: str, default: str
) -> list[str]:
    """The access list to store for an upload that asked for ``requested``.

    Args:
        requested: tags from the client; ``public`` is a synonym of ``*``.
        caller: who uploads; None (the CLI, a sync run) is trusted as given.
        collection: where the document goes (``kb:<collection>:publish`` is checked there).
        default: the list used when ``requested`` is empty: the owner scope, or ``*``.

    Raises:
        InvalidRequestError: a tag that is not ``*``, ``public``, ``tenant:<t>`` or ``role:<r>``.
        PermissionDeniedError: ``*`` or another tenant without ``kb:<collection>:publish``.
    """
    tags: list[str] = []
    for raw in requested:
        tag = PUBLIC_TAG if raw == "public" else raw
        kind, _, value = tag.partition(":")
        if tag != PUBLIC_TAG and (kind not in ("tenant", "role") or not value):
            raise InvalidRequestError(
                f"access tag {raw!r} is not one of public, tenant:<name>, role:<name>",
                param="access",
            )
        if tag not in tags:
            tags.append(tag)
    if not tags:
        return [default]
    if caller is None:
        return tags
    own = f"tenant:{caller.tenant}"
    for tag in tags:
        if (tag == PUBLIC_TAG or (tag.startswith("tenant:") and tag != own)) and not (
            caller.publishes(collection)
        ):
            raise PermissionDeniedError(
                f"access {tag!r} reaches beyond tenant {caller.tenant!r}: "
                f"it needs permission 'kb:{collection}:publish'"
            )
    return tags
