"""Listening with SO_REUSEPORT, from Daphne's endpoint descriptions."""

from __future__ import annotations

import socket

import pytest

from crm_events.server.reuse_port import TcpAddress, reuse_port_listen, reuse_port_socket, tcp_endpoint_parse


@pytest.mark.parametrize(("description", "address"), [
    ("tcp:port=9010:interface=0.0.0.0", TcpAddress("0.0.0.0", 9010, 4096)),
    ("tcp:port=9010:interface=127.0.0.1:backlog=50", TcpAddress("127.0.0.1", 9010, 50)),
    (r"tcp:port=8000:interface=\:\::backlog=7", TcpAddress("::", 8000, 7)),  # as Daphne escapes -b ::
    ("unix:/run/web.sock", None),
    ("fd:fileno=3", None),
])
def test_tcp_endpoint_parse(description, address):
    assert tcp_endpoint_parse(description, 4096) == address


def test_several_sockets_listen_on_one_port_and_share_its_connections():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reservation = reuse_port_socket("127.0.0.1", port)  # bound, not listening: takes no connection
    first = reuse_port_listen(TcpAddress("127.0.0.1", port, 256))
    second = reuse_port_listen(TcpAddress("127.0.0.1", port, 256))
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(64)]
    try:
        accepted = [accept_all(first), accept_all(second)]
        assert sum(accepted) == 64 and min(accepted) > 0, accepted
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # without SO_REUSEPORT: the port is taken
    finally:
        for sock in [*clients, first, second, reservation]:
            sock.close()


def accept_all(listener: socket.socket) -> int:
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1
