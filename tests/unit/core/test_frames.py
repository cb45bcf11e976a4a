import pytest

from crm_events.core.frames import comment_encode, frame_encode, retry_encode


def test_frame_is_data_line_and_blank_line():
    assert frame_encode('{"a":1}') == b'data: {"a":1}\n\n'


def test_frame_with_event_and_id_in_order():
    assert frame_encode("x", event="gap", event_id="t1") == b"event: gap\nid: t1\ndata: x\n\n"


@pytest.mark.parametrize("data", ["a\nb", "a\rb", "a\r\nb"])
def test_line_breaks_in_data_become_separate_data_lines(data):
    assert frame_encode(data) == b"data: a\ndata: b\n\n"


def test_injected_blank_line_cannot_end_the_frame_early():
    assert frame_encode("a\n\nevent: evil") == b"data: a\ndata: \ndata: event: evil\n\n"


@pytest.mark.parametrize("field", ["event", "event_id"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_single_line_fields_reject_line_breaks(field, value):
    with pytest.raises(ValueError):
        frame_encode("x", **{field: value})


def test_unicode_data_is_utf8():
    assert frame_encode("é✓") == "data: é✓\n\n".encode()


def test_comment_and_retry():
    assert comment_encode("heartbeat") == b": heartbeat\n\n"
    assert comment_encode("a\nb") == b": a\n: b\n\n"
    assert retry_encode(3000) == b"retry: 3000\n\n"
    with pytest.raises(ValueError):
        retry_encode(-1)
