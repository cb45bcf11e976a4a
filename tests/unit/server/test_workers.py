"""`--workers N`: its count, the one address its workers share, and each worker's command."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from crm_events.exceptions import WorkersError
from crm_events.server.workers import (
    WORKERS_BINDING,
    WORKERS_COUNT_INVALID,
    WORKERS_PORT_ZERO,
    worker_command,
    workers_address,
    workers_count_parse,
)


def test_workers_count_parse():
    assert workers_count_parse("3") == 3
    assert workers_count_parse("auto") == len(os.sched_getaffinity(0))
    for text in ("0", "-1", "two", ""):
        with pytest.raises(ValueError) as raised:
            workers_count_parse(text)
        assert str(raised.value) == WORKERS_COUNT_INVALID.format(text=text)


def binding(**given) -> argparse.Namespace:
    fields = {"host": None, "port": None, "unix_socket": None, "file_descriptor": None, "socket_strings": []}
    return argparse.Namespace(**{**fields, **given})


def test_workers_address_follows_daphnes_defaults():
    assert workers_address(binding()) == ("127.0.0.1", 8000)
    assert workers_address(binding(host="0.0.0.0")) == ("0.0.0.0", 8000)
    assert workers_address(binding(port=9010)) == ("127.0.0.1", 9010)
    assert workers_address(binding(host="[::]", port=9010)) == ("::", 9010)


@pytest.mark.parametrize(("given", "message"), [
    ({"unix_socket": "/run/web.sock"}, WORKERS_BINDING),
    ({"file_descriptor": 3}, WORKERS_BINDING),
    ({"socket_strings": ["tcp:9010"]}, WORKERS_BINDING),
    ({"port": 0}, WORKERS_PORT_ZERO),
])
def test_workers_address_refuses_what_workers_cannot_share(given, message):
    with pytest.raises(WorkersError) as raised:
        workers_address(binding(**given))
    assert str(raised.value) == message


def test_worker_command_is_this_command_for_one_worker_with_reuse_port():
    args = ["-b", "0.0.0.0", "-p", "9010", "--workers", "4", "aetherlink.asgi:application"]
    assert worker_command(args) == [
        sys.executable, "-m", "crm_events.server", "-b", "0.0.0.0", "-p", "9010", "--workers", "4",
        "--workers", "1", "--reuse-port",
    ]
