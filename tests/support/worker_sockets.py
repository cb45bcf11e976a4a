"""Which process holds which TCP connection, read from /proc: how a test tells which worker of
`aetherlink-web --workers N` serves a stream, with nothing added to the server for it."""

from __future__ import annotations

import os
from pathlib import Path

ESTABLISHED = "01"
LISTEN = "0A"


def children(pid: int) -> list[int]:
    """The child processes of `pid` (the workers of a supervisor)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_table() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state, inode))
    return rows


def connection_owners(port: int, pids: list[int]) -> dict[int, int]:
    """{client port: pid of the process holding the server side} of connections to `port`."""
    owner_of = {inode: pid for pid in pids for inode in socket_inodes(pid)}
    return {
        remote: owner_of[inode] for local, remote, state, inode in tcp_table()
        if local == port and state == ESTABLISHED and inode in owner_of
    }


def listeners(port: int) -> int:
    """How many sockets listen on `port`."""
    return sum(1 for local, _, state, _ in tcp_table() if local == port and state == LISTEN)
