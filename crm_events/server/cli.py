"""`aetherlink-web` (or `python -m crm_events.server`): Daphne's command line, serving
AetherLink's application with `AetherlinkServer`.

It takes every option of `daphne` (`-b`, `-p`, `-e`, `--proxy-headers`, ...) and no
application argument: it always serves `aetherlink.asgi:application`. Plain
`daphne aetherlink.asgi:application` works too, without the direct writes, the flow
control and the goodbye frames on shutdown (the first stream says so in the log).

A missing or invalid setting ends it with one line on stderr and exit status 2, as
`manage.py` does; `--help` needs no settings (Daphne answers it before loading the application).
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface
from django.core.exceptions import ImproperlyConfigured

from crm_events.config import CONFIG_ERROR_EXIT, config_error_line
from crm_events.server.daphne_server import AetherlinkServer

APPLICATION = "aetherlink.asgi:application"
PROGRAM = "aetherlink-web"  # also under `python -m crm_events.server`, whose argv[0] is __main__.py


class AetherlinkCommandLine(CommandLineInterface):
    server_class = AetherlinkServer


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        # The settings are imported with the application, after Daphne parsed the arguments.
        AetherlinkCommandLine().run([*args, APPLICATION])
    except ImproperlyConfigured as error:
        sys.stderr.write(f"{PROGRAM}: {config_error_line(error)}\n")
        sys.exit(CONFIG_ERROR_EXIT)
