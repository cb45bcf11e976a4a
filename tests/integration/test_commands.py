"""The command line as people meet it, in real processes: settings errors as one line and
exit status 2, help without settings, produce_events without Kafka, consume_events' status
line, smoke through TLS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import ROOT
from tests.unit.aetherlink.test_manage import INVALID_NUMBERS, NUMERIC

pytestmark = pytest.mark.integration

MANAGE = str(ROOT / "manage.py")
WEB = str(Path(sys.executable).parent / "aetherlink-web")
NO_SECRET = ("manage.py: configuration error: DJANGO_SECRET_KEY is not set. Set it to a long random "
             "string (or set DJANGO_DEBUG=true for local development).")
COMMANDS = ["consume_events", "produce_events", "smoke", "topics_create", "check", "migrate", "shell"]


def bare_env(**variables: str) -> dict[str, str]:
    """No DJANGO_*, no service variables: what a new user has before writing a .env."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **variables}


def run(argv: list[str], cwd: Path, timeout: float = 60, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=bare_env(**variables), capture_output=True, text=True,
                          timeout=timeout, check=False)


def manage(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess:
    return run([sys.executable, MANAGE, *args], cwd, **variables)


@pytest.mark.parametrize("args", [[], ["help"], ["--help"], ["help", "produce_events"],
                                  ["produce_events", "--help"], ["smoke", "-h"], ["migrate", "--help"]])
def test_help_needs_no_settings(args, tmp_path):
    done = manage(*args, cwd=tmp_path)  # an empty folder: no .env either
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # One line says why only help is on offer.
    assert done.stderr.splitlines() == ["manage.py: help only; configuration error: DJANGO_SECRET_KEY "
                                        "is not set. Set it to a long random string (or set "
                                        "DJANGO_DEBUG=true for local development)."]
    if not args or args[0] in ("help", "--help") and len(args) == 1:
        assert "[crm_events]" in done.stdout and "consume_events" in done.stdout  # ours, listed
    elif "produce_events" in args:
        assert "--count" in done.stdout
    else:
        assert "usage: manage.py" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_without_the_secret_key_says_so_in_one_line(command, tmp_path):
    done = manage(command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", NO_SECRET + "\n")


@pytest.mark.parametrize("argv", [[WEB, "-p", "0"], [sys.executable, "-m", "crm_events.server", "-p", "0"],
                                  [str(Path(sys.executable).parent / "aetherlink"), "consume_events"]])
def test_the_installed_entry_points_say_so_too(argv, tmp_path):
    done = run(argv, tmp_path)
    program = "aetherlink" if argv[0].endswith("/aetherlink") else "aetherlink-web"
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == NO_SECRET.replace("manage.py", program) + "\n"


def test_the_web_server_help_needs_no_settings(tmp_path):
    done = run([WEB, "--help"], tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("usage: aetherlink-web"), done.stderr


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NUMERIC), value=INVALID_NUMBERS)
def test_any_invalid_number_stops_every_entry_point_with_one_line(name, value, tmp_path):
    for argv in ([sys.executable, MANAGE, "consume_events"], [WEB, "-p", "0"]):
        done = run(argv, tmp_path, DJANGO_SECRET_KEY="k", **{name: value})
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and re.match(rf"^[\w.-]+: configuration error: {name} ", lines[0]), lines
