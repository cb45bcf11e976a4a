from types import SimpleNamespace

from crm_events.daphne_integration import WRITE_BUFFER_EXTENSION, _with_write_buffer, pending_bytes


def test_pending_bytes_counts_both_twisted_buffers_and_a_tls_wrapper():
    tcp = SimpleNamespace(dataBuffer=b"x" * 100, offset=30, _tempDataLen=50, transport=None)
    tls = SimpleNamespace(dataBuffer=b"", offset=0, _tempDataLen=7, transport=tcp)
    assert pending_bytes(tcp) == 120
    assert pending_bytes(tls) == 127


def test_http_scopes_get_the_write_buffer_extension():
    tcp = SimpleNamespace(dataBuffer=b"abc", offset=0, _tempDataLen=0, transport=None)
    protocol = SimpleNamespace(channel=SimpleNamespace(transport=tcp))
    seen = {}

    def create_application(server, protocol, scope):
        seen.update(scope)
        return "queue"

    create = _with_write_buffer(create_application)
    assert create(object(), protocol, {"type": "http"}) == "queue"
    assert seen["extensions"][WRITE_BUFFER_EXTENSION]() == 3
    seen.clear()
    create(object(), protocol, {"type": "websocket"})
    assert "extensions" not in seen
