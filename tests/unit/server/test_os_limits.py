"""The web process's open-files limit is raised to the hard limit at start, in one log line;
every listening socket Daphne opens itself gets the configured backlog."""

from __future__ import annotations

import logging
import resource

import pytest

from crm_events.server.daphne_server import AetherlinkServer
from crm_events.server.os_limits import NOFILE_KEPT, NOFILE_RAISED, backlog_add, nofile_raise


@pytest.fixture
def nofile():
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_soft_limit_is_raised_to_the_hard_limit_in_one_line(nofile, caplog):
    _, hard = nofile
    if hard == resource.RLIM_INFINITY or hard < 256:
        pytest.skip(f"a hard limit of {hard} leaves nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    with caplog.at_level(logging.INFO, logger="crm_events.server.os_limits"):
        assert nofile_raise() == hard
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    assert [record.getMessage() for record in caplog.records] == [NOFILE_RAISED % (128, hard)]


def test_a_limit_already_at_the_hard_limit_is_said_and_kept(nofile, caplog):
    _, hard = nofile
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with caplog.at_level(logging.INFO, logger="crm_events.server.os_limits"):
        assert nofile_raise() == hard
    assert [record.getMessage() for record in caplog.records] == [NOFILE_KEPT % hard]


def test_tcp_and_unix_endpoints_get_the_backlog_unless_they_name_one():
    endpoints = ["tcp:port=9010:interface=127.0.0.1", "unix:/run/web.sock", "fd:fileno=3",
                 "tcp:port=9011:interface=127.0.0.1:backlog=10"]
    assert backlog_add(endpoints, 4096) == [
        "tcp:port=9010:interface=127.0.0.1:backlog=4096", "unix:/run/web.sock:backlog=4096", "fd:fileno=3",
        "tcp:port=9011:interface=127.0.0.1:backlog=10",
    ]


def test_the_server_listens_with_the_configured_backlog(settings):
    settings.WEB_LISTEN_BACKLOG = 777
    server = AetherlinkServer(application=None, endpoints=["tcp:port=9010:interface=127.0.0.1"])
    assert server.endpoints == ["tcp:port=9010:interface=127.0.0.1:backlog=777"]
