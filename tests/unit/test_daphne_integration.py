import socket
from types import SimpleNamespace

from crm_events.server.daphne_integration import (
    BODY_WRITE_EXTENSION,
    WRITE_BUFFER_EXTENSION,
    _with_stream_extensions,
    pending_bytes,
    send_buffer_set,
)


def test_pending_bytes_counts_both_twisted_buffers_and_a_tls_wrapper():
    tcp = SimpleNamespace(dataBuffer=b"x" * 100, offset=30, _tempDataLen=50, transport=None)
    tls = SimpleNamespace(dataBuffer=b"", offset=0, _tempDataLen=7, transport=tcp)
    assert pending_bytes(tcp) == 120
    assert pending_bytes(tls) == 127


def test_http_scopes_get_the_write_buffer_and_body_write_extensions():
    tcp = SimpleNamespace(dataBuffer=b"abc", offset=0, _tempDataLen=0, transport=None)
    replies = []

    class Protocol:  # hashable, as Daphne's protocols are (they key `server.connections`)
        channel = SimpleNamespace(transport=tcp)
        handle_reply = staticmethod(replies.append)

    protocol = Protocol()
    server = SimpleNamespace(connections={protocol: {}})
    seen = {}

    def create_application(server, protocol, scope):
        seen.update(scope)
        return "queue"

    create = _with_stream_extensions(create_application)
    assert create(server, protocol, {"type": "http"}) == "queue"
    assert seen["extensions"][WRITE_BUFFER_EXTENSION]() == 3
    seen["extensions"][BODY_WRITE_EXTENSION](b"data: x\n\n")
    assert replies == [{"type": "http.response.body", "body": b"data: x\n\n", "more_body": True}]
    server.connections[protocol]["disconnected"] = True
    seen["extensions"][BODY_WRITE_EXTENSION](b"late")
    assert len(replies) == 1, "nothing is written to a connection Daphne knows is gone"
    seen.clear()
    create(server, protocol, {"type": "websocket"})
    assert "extensions" not in seen


def test_the_send_buffer_is_set_on_the_tcp_socket_under_a_tls_wrapper():
    with socket.socket() as sock:
        tls = SimpleNamespace(transport=SimpleNamespace(socket=sock))
        send_buffer_set(tls, 65536)
        # Linux doubles the value for its bookkeeping; either way it is no longer autotuned.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (65536, 131072)
