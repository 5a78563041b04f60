"""Enumerate a sync source's documents: folders, single files, URLs on the local network.

A folder is confined to itself: files are found without following symbolic links to
folders, and a file whose real path lies outside the folder (a link to a secret
elsewhere) is skipped; names are shown relative to the folder (``<folder>/<path>``).
URLs go only to private and loopback addresses unless ``allow_public_urls``; link-local
and cloud metadata addresses stay refused even then, unless ``allow_metadata_urls``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from luodi.errors import InvalidRequestError

__all__ = ["SourceItem", "SourceListingError", "iter_source"]


class SourceListingError(InvalidRequestError):
    """A source location that cannot be listed; a sync then deletes nothing."""

    default_code = "source_unavailable"


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One document of a source: its stable name and a way to read it."""

    name: str
    read: Callable[[], bytes]


_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128")
)
"""Link-local networks and the cloud metadata services (AWS, GCP, Azure, Alibaba Cloud)."""


def _check_host(url: str, allow_public: bool, allow_metadata: bool) -> None:
    host = urlparse(url).hostname
    if not host:
        raise SourceListingError(f"{url}: no host")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise SourceListingError(f"{url}: cannot resolve {host}: {exc}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not allow_metadata and any(ip in net for net in _METADATA_NETWORKS):
            raise SourceListingError(
                f"{url}: {host} is a link-local or cloud metadata address "
                f"(set knowledge.allow_metadata_urls to allow it)"
            )
        if not allow_public and not (ip.is_private or ip.is_loopback or ip.is_link_local):
            raise SourceListingError(
                f"{url}: {host} is not on the local network "
                f"(set knowledge.allow_public_urls to allow it)"
            )


def _confined_reader(root: Path, file: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        real = file.resolve()
        if not real.is_relative_to(root):
            raise OSError(f"{file} now points outside {root}")
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as stream:
            return stream.read()

    return read


def _walk(root: Path, suffixes: Collection[str]) -> Iterator[SourceItem]:
    """Files under ``root`` with a known suffix whose real path stays inside it."""
    found = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in names:
            file = Path(folder) / name
            if file.suffix.lower() not in suffixes:
                continue
            real = file.resolve()
            if real.is_relative_to(root) and real.is_file():
                found.append(file)
    for file in sorted(found):
        label = f"{root.name}/{file.relative_to(root).as_posix()}"
        yield SourceItem(label, _confined_reader(root, file))


def iter_source(
    locations: Sequence[str],
    suffixes: Collection[str],
    *,
    allow_public_urls: bool = False,
    allow_metadata_urls: bool = False,
    timeout_s: float = 30.0,
) -> Iterator[SourceItem]:
    """Items of every location; folders are walked for files with a known suffix.

    Raises:
        SourceListingError: a location is missing or not allowed.
    """
    for location in locations:
        if location.startswith(("http://", "https://")):
            _check_host(location, allow_public_urls, allow_metadata_urls)

            def fetch(url: str = location) -> bytes:
                response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
                response.raise_for_status()
                return response.content

            yield SourceItem(location, fetch)
            continue
        path = Path(location).expanduser().resolve()
        if path.is_dir():
            yield from _walk(path, suffixes)
        elif path.is_file():
            yield SourceItem(path.name, path.read_bytes)
        else:
            raise SourceListingError(f"{location}: no such file or folder")
