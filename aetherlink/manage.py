"""`aetherlink`: Django's command line for this project (`aetherlink migrate`,
`aetherlink consume_events`, ...). A checkout's `manage.py` runs the same function.

A missing or invalid setting ends any command with one line on stderr and exit status 2,
never a traceback. Help (`help`, `--help`, `<command> --help`, no arguments at all) needs no
settings: it is what someone without a `.env` runs first, so when the settings cannot be
loaded it is shown anyway, with a minimal configuration, and one line saying why.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured

from crm_events.config import CONFIG_ERROR_EXIT, config_error_line, settings_load

HELP_WORDS = ("help", "-h", "--help", "version", "--version")
# Enough for Django to list every command and build each one's parser; nothing here is ever served.
# The same apps as aetherlink/settings.py (tests/unit/aetherlink/test_manage.py compares them).
HELP_ONLY_SETTINGS = {
    "SECRET_KEY": "help-only-never-serves-anything",
    "INSTALLED_APPS": [
        "daphne",
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "channels",
        "corsheaders",
        "crm_events",
    ],
}
HELP_NOTE = "{program}: help only; {error}"


def help_wanted(args: list[str]) -> bool:
    """Whether these arguments (after the program name) only ask for help or the version."""
    return not args or args[0] in HELP_WORDS or any(arg in ("-h", "--help") for arg in args[1:])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aetherlink.settings")
    program = os.path.basename(argv[0]) if argv else "aetherlink"
    try:
        settings_load()
    except ImproperlyConfigured as error:
        if not help_wanted(argv[1:]):
            _config_error_exit(program, error)
        _help_only_configure(program, error)
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(argv)
    except ImproperlyConfigured as error:  # raised later, by an app or a command, still a setting
        _config_error_exit(program, error)


def _help_only_configure(program: str, error: ImproperlyConfigured) -> None:
    from django.conf import settings

    sys.stderr.write(HELP_NOTE.format(program=program, error=config_error_line(error)) + "\n")
    settings.configure(**HELP_ONLY_SETTINGS)


def _config_error_exit(program: str, error: ImproperlyConfigured) -> None:
    sys.stderr.write(f"{program}: {config_error_line(error)}\n")
    sys.exit(CONFIG_ERROR_EXIT)
