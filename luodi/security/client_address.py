"""Who is on the other end: the client address behind explicitly trusted proxies only.

``X-Forwarded-For`` is whatever the sender wrote, so it names the client only when
the TCP peer is a proxy this deployment runs (``security.trusted_proxies``, empty by
default). Then the header is read from the right, skipping trusted hops, and the
first address not trusted is the client: a client cannot push its way past the
proxy by sending its own header, because the proxy appends the real peer after it.

The address decides IP allowlists and goes into the audit record, so nothing else
may read the header. uvicorn reads it too unless told not to (its default trusts
127.0.0.1): the server must run with ``proxy_headers=False``
(``UVICORN_PROXY_OPTIONS``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["UVICORN_PROXY_OPTIONS", "TrustedProxies", "client_address"]

UVICORN_PROXY_OPTIONS: dict[str, Any] = {"proxy_headers": False}
"""Keyword arguments for ``uvicorn.Config``: leave forwarded headers to luodi."""

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_ADDRESS = 64  # the audit column's width


class TrustedProxies:
    """The networks whose forwarded headers are believed."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(net, strict=False) for net in networks
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """True if ``address`` is inside one of the trusted networks."""
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def _forwarded_for(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    return [h for h in hops if h]


def client_address(scope: Mapping[str, Any], trusted: TrustedProxies) -> str:
    """The client's address for an ASGI ``scope`` (``request.scope`` in Starlette).

    Without trusted proxies, or when the peer is not one, it is the TCP peer and
    ``X-Forwarded-For`` is ignored. Behind trusted proxies it is the right-most
    forwarded address that is not itself a trusted proxy; an unparsable entry
    there is returned as written (it then matches no allowlist).
    """
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not trusted.trusts(peer):
        return peer
    address = peer
    for hop in reversed(_forwarded_for(scope.get("headers") or [])):
        address = hop[:_MAX_ADDRESS]
        if not trusted.trusts(hop):
            break
    return address
