"""Settings errors as one line, and help without settings: the pieces, in this process.
tests/integration/test_commands.py runs the real entry points."""

from __future__ import annotations

import os
import re
import runpy
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from aetherlink import manage
from crm_events.config import config_error_line
from tests.support.processes import ROOT

SETTINGS_FILE = ROOT / "aetherlink" / "settings.py"
# Every numeric setting, as settings.py reads it: a new one is covered without editing this test.
NUMERIC_READ = re.compile(r'(?:_positive_int|_positive_float|_non_negative_float|_port|env\.int|env\.float)'
                          r'\(\s*"([A-Z0-9_]+)"')
NUMERIC = sorted(set(NUMERIC_READ.findall(SETTINGS_FILE.read_text())))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Values no numeric setting accepts: not a number at all, not finite, or negative. Not starting
# with `$`: django-environ reads `$NAME` as "the value of NAME" (left as it is, see the report).
env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
INVALID_NUMBERS = st.one_of(
    env_text.filter(lambda text: not _is_number(text) and not text.startswith("$")),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400"]),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr),
    st.integers(max_value=-1).map(str),
)


def settings_run(**variables: str) -> None:
    """Execute settings.py afresh with only these variables (and no .env) in the environment."""
    with mock.patch.dict(os.environ, {"PATH": os.environ["PATH"], **variables}, clear=True):
        runpy.run_path(str(SETTINGS_FILE))


def test_numeric_settings_are_found():
    expected = {"SSE_RETRY_MS", "CANARY_INTERVAL", "CONSUMER_METRICS_PORT", "CONSUMER_STATUS_INTERVAL"}
    assert expected <= set(NUMERIC)


def test_the_control_loads():
    settings_run(DJANGO_SECRET_KEY="k")


@given(name=st.sampled_from(NUMERIC), value=INVALID_NUMBERS)
def test_any_invalid_number_is_one_line_naming_the_setting(name, value):
    with pytest.raises(ImproperlyConfigured) as raised:
        settings_run(DJANGO_SECRET_KEY="k", **{name: value})
    line = config_error_line(raised.value)
    assert "\n" not in line and name in line


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SSE_RETRY_MS", "abc", "SSE_RETRY_MS must be an integer, got 'abc'."),
    ("CANARY_INTERVAL", "nan", "CANARY_INTERVAL must be a finite number, got 'nan'."),
    ("DJANGO_DEBUG", "ture", "DJANGO_DEBUG must be true or false, got 'ture'."),
    ("CONSUMER_METRICS_PORT", "70000",
     "CONSUMER_METRICS_PORT must be a port number from 0 (off) to 65535, got 70000."),
    # The URL holds a password: the message says why, never what.
    ("DATABASE_URL", "postgres://u:hunter2@db:port/x",
     "DATABASE_URL cannot be read: Port could not be cast to integer value as 'port'."),
])
def test_unreadable_values_say_which_and_why(name, value, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        settings_run(DJANGO_SECRET_KEY="k", **{name: value})
    assert str(raised.value) == message


@pytest.mark.parametrize("value", ["true", "False", "1", "0", "yes", "off", ""])
def test_flags_in_every_usual_spelling_load(value):
    settings_run(DJANGO_SECRET_KEY="k", DJANGO_SECURE_SSL_REDIRECT=value)


def test_help_only_settings_list_the_real_apps():
    assert manage.HELP_ONLY_SETTINGS["INSTALLED_APPS"] == settings.INSTALLED_APPS


@pytest.mark.parametrize(("args", "wanted"), [
    ([], True), (["help"], True), (["--help"], True), (["help", "consume_events"], True),
    (["consume_events", "--help"], True), (["produce_events", "-h"], True), (["--version"], True),
    (["consume_events"], False), (["check", "--deploy"], False), (["migrate", "help"], False),
])
def test_help_wanted(args, wanted):
    assert manage.help_wanted(args) is wanted
