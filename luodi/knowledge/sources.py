"""Enumerate a sync source's documents: folders, single files, URLs on the local network."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from luodi.errors import InvalidRequestError
from luodi.knowledge.types import Block

__all__ = ["SourceItem", "SourceListingError", "iter_source"]


class SourceListingError(InvalidRequestError):
    """A source location that cannot be listed; a sync then deletes nothing."""

    default_code = "source_unavailable"


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One document of a source: its stable name and a way to read it."""

    name: str
    read: Callable[[], bytes]


def _check_host(url: str, allow_public: bool) -> None:
    host = urlparse(url).hostname
    if not host:
        raise SourceListingError(f"{url}: no host")
    if allow_public:
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise SourceListingError(f"{url}: cannot resolve {host}: {exc}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_private or ip.is_loopback or ip.is_link_local):
            raise SourceListingError(
                f"{url}: {host} is not on the local network "
                f"(set knowledge.allow_public_urls to allow it)"
            )


def iter_source(
    locations: Sequence[str],
    loaders: Mapping[str, Callable[[bytes], list[Block]]],
    *,
    allow_public_urls: bool = False,
    timeout_s: float = 30.0,
) -> Iterator[SourceItem]:
    """Items of every location; folders are walked for files with a known suffix.

    Raises:
        SourceListingError: a location is missing or not allowed.
    """
    for location in locations:
        if location.startswith(("http://", "https://")):
            _check_host(location, allow_public_urls)

            def fetch(url: str = location) -> bytes:
                response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
                response.raise_for_status()
                return response.content

            yield SourceItem(location, fetch)
            continue
        path = Path(location).expanduser().resolve()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() in loaders:
                    yield SourceItem(str(file), file.read_bytes)
        elif path.is_file():
            yield SourceItem(str(path), path.read_bytes)
        else:
            raise SourceListingError(f"{location}: no such file or folder")
