import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_events.core.tokens import (
    TOKEN_CHECKSUM,
    TOKEN_NOT_BASE64,
    TOKEN_TRUNCATED,
    TOKEN_UNKNOWN_TOPIC,
    ResumeTokenError,
    token_decode,
    token_encode,
)

TOPICS = ("aetherlink.events", "crm.audit")


def test_round_trip_of_every_partition_of_every_topic():
    positions = {("aetherlink.events", 0): 0, ("aetherlink.events", 2): 123_456_789, ("crm.audit", 1): 7}
    assert token_decode(token_encode(positions), TOPICS) == positions


def test_tokens_are_short_and_url_safe():
    positions = {("aetherlink.events", p): 1_000_000 + p for p in range(3)}
    token = token_encode(positions)
    assert len(token) <= 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _flip_last_body_byte(token: str) -> str:
    raw = _raw(token)
    raw[-4] ^= 0x01
    return _token(raw)


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda t: _token(_raw(t)[:-2]), TOKEN_CHECKSUM),
        (lambda t: _token(_raw(t)[:3]), TOKEN_TRUNCATED),
        (lambda t: t[:-6], TOKEN_NOT_BASE64),
        (_flip_last_body_byte, TOKEN_CHECKSUM),
        (lambda t: t + "!", TOKEN_NOT_BASE64),
        (lambda t: "A" + t, "resume token version 0 is not supported (this server speaks versions 1 to 4)"),
        (lambda t: "", TOKEN_TRUNCATED),
    ],
)
def test_damaged_tokens_are_rejected_with_a_reason(make_bad, message):
    token = token_encode({("aetherlink.events", 0): 42, ("aetherlink.events", 1): 7})
    with pytest.raises(ResumeTokenError) as caught:
        token_decode(make_bad(token), TOPICS)
    assert str(caught.value) == message


def test_wrong_version_is_named():
    token = token_encode({("aetherlink.events", 0): 1})
    raw = _raw(token)
    raw[0] = 9
    bad = _token(raw)
    with pytest.raises(ResumeTokenError, match="version 9 is not supported"):
        token_decode(bad, TOPICS)


def test_a_topic_this_stream_does_not_serve_is_rejected():
    token = token_encode({("secret.payroll", 0): 1})
    with pytest.raises(ResumeTokenError) as caught:
        token_decode(token, TOPICS)
    assert str(caught.value) == TOKEN_UNKNOWN_TOPIC


@given(st.text(max_size=200))
def test_any_text_decodes_or_fails_cleanly(text):
    with contextlib.suppress(ResumeTokenError):
        token_decode(text, TOPICS)


@given(st.binary(max_size=120))
def test_any_bytes_decode_or_fail_cleanly(raw):
    with contextlib.suppress(ResumeTokenError):
        token_decode(base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), TOPICS)


@given(
    st.dictionaries(
        st.tuples(st.sampled_from(TOPICS), st.integers(0, 1000)), st.integers(0, 2**63 - 1), max_size=20
    )
)
def test_round_trip_property(positions):
    assert token_decode(token_encode(positions), TOPICS) == positions
