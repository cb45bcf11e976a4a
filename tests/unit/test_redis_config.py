"""REDIS_URL, read by `redis_url_parse`: one Redis by URL, or a master found through Sentinel."""

import string

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import example, given
from hypothesis import strategies as st

from crm_events.config import (
    REDIS_TLS_PAIR,
    REDIS_TLS_UNUSED,
    REDIS_URL_SCHEME,
    SENTINEL_BAD_ADDRESS,
    SENTINEL_BAD_DB,
    SENTINEL_BAD_MASTER,
    SENTINEL_EXTRA_PATH,
    SENTINEL_NO_HOSTS,
    SENTINEL_NO_MASTER,
    SENTINEL_PASSWORD_UNUSED,
    SENTINEL_QUERY,
    SENTINEL_URL_INVALID,
    RedisConfig,
    RedisTls,
    SentinelConfig,
    redis_url_parse,
)

SOCKETS = {"socket_timeout": 15.0, "socket_connect_timeout": 5.0}


def invalid(problem: str) -> str:
    return SENTINEL_URL_INVALID.format(problem=problem)


def test_a_plain_url_is_taken_as_it_is():
    assert redis_url_parse("redis://:secret@redis:6379/1") == RedisConfig(url="redis://:secret@redis:6379/1")
    options = redis_url_parse("redis://r/0").connection_options(**SOCKETS)
    assert options == {"address": "redis://r/0", **SOCKETS}


def test_the_fixed_form_with_credentials_and_two_sentinels():
    config = redis_url_parse("redis+sentinel://app:p%40ss%2Fw@s1:26379,10.0.0.2:26380/mymaster/2")
    assert config.sentinel == SentinelConfig(
        addresses=(("s1", 26379), ("10.0.0.2", 26380)), master_name="mymaster", db=2,
        username="app", password="p@ss/w",
    )
    assert config.sentinel.url() == "redis+sentinel://app:p%40ss%2Fw@s1:26379,10.0.0.2:26380/mymaster/2"


def test_defaults_ipv6_and_the_sentinels_own_password():
    config = redis_url_parse("rediss+sentinel://[::1],sentinel/m", sentinel_password="s3")
    assert config.sentinel == SentinelConfig(
        addresses=(("::1", 26379), ("sentinel", 26379)), master_name="m", db=0, tls=True,
        sentinel_password="s3",
    )


def test_sentinel_options_reach_the_master_and_the_sentinels_with_tls_and_passwords():
    tls = RedisTls(cafile="/ca.pem", certfile="/c.pem", keyfile="/k.pem")
    config = redis_url_parse("rediss+sentinel://:pw@s1:1,s2:2/m/3", sentinel_password="spw", tls_files=tls)
    files = {"ssl_ca_certs": "/ca.pem", "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    assert config.connection_options(**SOCKETS) == {
        "sentinels": [("s1", 1), ("s2", 2)], "master_name": "m", "db": 3, "password": "pw", **SOCKETS,
        "ssl": True, **files,
        "sentinel_kwargs": {
            "password": "spw", "socket_timeout": 5.0, "socket_connect_timeout": 5.0, "ssl": True, **files,
        },
    }


def test_passwords_never_show_in_a_repr():
    config = redis_url_parse("redis+sentinel://u:hunter2@s:1/m/0", sentinel_password="swordfish")
    assert "hunter2" not in repr(config) and "swordfish" not in repr(config)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", REDIS_URL_SCHEME),
        ("127.0.0.1:6379", REDIS_URL_SCHEME),
        ("sentinel://s:26379/m/0", REDIS_URL_SCHEME),
        ("redis+sentinel://", invalid(SENTINEL_NO_HOSTS)),
        ("redis+sentinel://user:pw@/m/0", invalid(SENTINEL_NO_HOSTS)),
        ("redis+sentinel://s:26379", invalid(SENTINEL_NO_MASTER)),
        ("redis+sentinel://s:26379/", invalid(SENTINEL_NO_MASTER)),
        ("redis+sentinel://s:26379/my master/0", invalid(SENTINEL_BAD_MASTER)),
        ("redis+sentinel://s:26379/m/x", invalid(SENTINEL_BAD_DB)),
        ("redis+sentinel://s:26379/m/-1", invalid(SENTINEL_BAD_DB)),
        ("redis+sentinel://s:26379/m/\uff11", invalid(SENTINEL_BAD_DB)),  # a full-width digit one
        ("redis+sentinel://s:26379/m/0/1", invalid(SENTINEL_EXTRA_PATH)),
        ("redis+sentinel://s:26379/m/0?ssl_cert_reqs=none", invalid(SENTINEL_QUERY)),
        ("redis+sentinel://s:0/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=1))),
        ("redis+sentinel://s:1,s:65536/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=2))),
        ("redis+sentinel://s:1,,s:2/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=2))),
        ("redis+sentinel://::1:26379/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=1))),
        ("redis+sentinel://[::g]:26379/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=1))),
        ("redis+sentinel://s:\u0661/m/0", invalid(SENTINEL_BAD_ADDRESS.format(index=1))),  # Arabic-Indic
    ],
)
def test_a_malformed_url_is_refused_with_what_is_wrong(url, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        redis_url_parse(url)
    assert str(raised.value) == message


def test_a_password_in_a_malformed_url_never_shows():
    # Unencoded, the `/` ends the sentinels early: `user:Zq` would be read as a host and a port.
    with pytest.raises(ImproperlyConfigured) as raised:
        redis_url_parse("redis+sentinel://user:Zq/x9@s:26379/m/0")
    assert "Zq" not in str(raised.value) and "x9" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "sentinel_password", "tls", "message"),
    [
        ("redis://r/0", "x", RedisTls(), SENTINEL_PASSWORD_UNUSED),
        ("redis://r/0", "", RedisTls(cafile="/ca"), REDIS_TLS_UNUSED),
        ("redis+sentinel://s/m/0", "", RedisTls(cafile="/ca"), REDIS_TLS_UNUSED),
        ("rediss+sentinel://s/m/0", "", RedisTls(certfile="/c"), REDIS_TLS_PAIR),
    ],
)
def test_settings_that_would_be_ignored_are_refused(url, sentinel_password, tls, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        redis_url_parse(url, sentinel_password=sentinel_password, tls_files=tls)
    assert str(raised.value) == message


KNOWN_PROBLEMS = [
    SENTINEL_NO_HOSTS, SENTINEL_NO_MASTER, SENTINEL_BAD_MASTER, SENTINEL_BAD_DB, SENTINEL_EXTRA_PATH,
    SENTINEL_QUERY, *(SENTINEL_BAD_ADDRESS.format(index=i) for i in range(1, 60)),
]
MESSAGES = {REDIS_URL_SCHEME, *(invalid(problem) for problem in KNOWN_PROBLEMS)}
URL_CHARACTERS = string.ascii_letters + string.digits + ":/@,.[]%?#-_ \u00e9\uff11"


@example("redis+sentinel://u:%ff%@[::ffff:1.2.3.4]:1,h/m/007")
@example("redis+sentinel://:@h/m")
@example("redis+sentinel://%3A:@h/m/")
@given(
    st.builds(
        str.__add__,
        st.sampled_from(["", "redis://", "rediss://", "REDIS+SENTINEL://", "redis+sentinel://", "rediss+sentinel://"]),
        st.text(URL_CHARACTERS) | st.text(),
    )
)
def test_any_string_is_refused_cleanly_or_parsed_to_a_config_that_round_trips(url):
    try:
        config = redis_url_parse(url)
    except ImproperlyConfigured as error:
        assert str(error) in MESSAGES
        return
    if config.sentinel is None:
        assert config.url == url
    else:
        assert redis_url_parse(config.sentinel.url()) == config


hosts = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True) | st.ip_addresses().map(str)
sentinels = st.builds(
    SentinelConfig,
    addresses=st.lists(st.tuples(hosts, st.integers(1, 65535)), min_size=1, max_size=4).map(tuple),
    master_name=st.from_regex(r"[A-Za-z0-9._-]+", fullmatch=True),
    db=st.integers(0, 999_999_999),
    tls=st.booleans(),
    username=st.text(),
    password=st.text(),
)


@given(sentinels)
def test_every_sentinel_config_survives_its_url(sentinel):
    assert redis_url_parse(sentinel.url()).sentinel == sentinel
