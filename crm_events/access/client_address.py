"""Which address a request comes from: the socket's, or X-Forwarded-For behind trusted proxies.

X-Forwarded-For is a list any client can write to; only the entries appended by
our own proxies can be believed. So the header is read only when the socket peer
is a trusted proxy, from the right, skipping trusted proxies: the first address
that is not one of ours is the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address

from django.http import HttpRequest

from crm_events.config import Network

UNKNOWN = "unknown"


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, proxies: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request: HttpRequest, trusted_proxies: tuple[Network, ...]) -> str:
    """The client's IP address as text, or `unknown` (a Unix socket, a garbled header)."""
    peer = request.META.get("REMOTE_ADDR") or ""
    if not trusted_proxies or not _trusted(_parse(peer), trusted_proxies):
        return peer or UNKNOWN
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return UNKNOWN  # a forged or broken entry: do not look further left
        if not _trusted(address, trusted_proxies):
            return str(address)
    return hops[0] if hops else peer  # every hop is ours: the request started inside


def address_in(address: str, networks: Iterable[Network]) -> bool:
    return _trusted(_parse(address), networks)
