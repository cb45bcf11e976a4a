"""Listening with `SO_REUSEPORT` (`aetherlink-web --reuse-port`, which each worker of
`--workers N` runs with): every process binds a socket of its own to the same address, and the
kernel hashes each new connection to one of the listening sockets, so connections spread evenly
over the processes. One listening socket inherited by all of them (`--fd`) spreads nothing: the
kernel wakes every process and the quickest accepts them all. And a process that dies takes its
socket with it, so the kernel sends new connections only to the living ones.

Daphne describes `-b`/`-p` as a Twisted endpoint string (`tcp:port=...:interface=...`), and
Twisted's TCP endpoint cannot set the option: the server binds these sockets itself and hands
them to Twisted (`reactor.adoptStreamPort`, which keeps its own copy).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

TCP_PREFIX = "tcp:"
_UNESCAPED_COLON = re.compile(r"(?<!\\):")


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str
    port: int
    backlog: int


def tcp_endpoint_parse(description: str, default_backlog: int) -> TcpAddress | None:
    """The address of a `tcp:` endpoint description (as Daphne builds it from `-b`/`-p`), or None."""
    if not description.startswith(TCP_PREFIX):
        return None
    fields = dict(
        part.partition("=")[::2] for part in _UNESCAPED_COLON.split(description.removeprefix(TCP_PREFIX))
    )
    host = fields.get("interface", "0.0.0.0").replace("\\:", ":")
    return TcpAddress(host, int(fields["port"]), int(fields.get("backlog", default_backlog)))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with `SO_REUSEPORT`, not listening yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reuse_port_listen(address: TcpAddress) -> socket.socket:
    """A listening socket on `address` that other processes of this user may listen on too."""
    sock = reuse_port_socket(address.host, address.port)
    try:
        sock.listen(address.backlog)
    except BaseException:
        sock.close()
        raise
    return sock
