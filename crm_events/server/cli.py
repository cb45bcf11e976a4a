"""`aetherlink-web` (or `python -m crm_events.server`): Daphne's command line, serving
AetherLink's application with `AetherlinkServer`.

It takes every option of `daphne` (`-b`, `-p`, `-e`, `--proxy-headers`, ...) and no
application argument: it always serves `aetherlink.asgi:application`. Plain
`daphne aetherlink.asgi:application` works too, without the direct writes, the flow
control and the goodbye frames on shutdown (the first stream says so in the log).

Two options of its own: `--workers N` (or `WEB_WORKERS`; `auto`: the usable cores) runs N
web processes on the one `-b`/`-p` address under a supervisor (workers.py), and
`--reuse-port` listens with `SO_REUSEPORT`, as each of those workers does (reuse_port.py).

A missing or invalid setting ends it with one line on stderr and exit status 2, as
`manage.py` does; `--help` needs no settings (it is answered before they are loaded).
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import Any

from daphne.cli import CommandLineInterface
from django.core.exceptions import ImproperlyConfigured

from crm_events.config import CONFIG_ERROR_EXIT, config_error_line, server_config, settings_load
from crm_events.server.daphne_server import AetherlinkServer
from crm_events.server.workers import WorkersError, workers_count_parse, workers_run

APPLICATION = "aetherlink.asgi:application"
PROGRAM = "aetherlink-web"  # also under `python -m crm_events.server`, whose argv[0] is __main__.py


def workers_argument(text: str) -> int:
    try:
        return workers_count_parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class AetherlinkCommandLine(CommandLineInterface):
    def __init__(self) -> None:
        super().__init__()
        self.reuse_port = False
        self.parser.add_argument(
            "--workers", type=workers_argument, default=None, metavar="N",
            help="web processes on this one address, under a supervisor: a number or `auto` (the "
                 "usable cores); default WEB_WORKERS, 1",
        )
        self.parser.add_argument(
            "--reuse-port", action="store_true",
            help="listen on -b/-p with SO_REUSEPORT, so other processes may listen there too",
        )

    @property
    def server_class(self) -> Any:  # Daphne builds its server from this attribute
        return partial(AetherlinkServer, reuse_port=self.reuse_port)

    def run(self, args: list[str]) -> None:
        parsed = self.parser.parse_args(args)  # --help and bad options end here, before the settings
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aetherlink.settings")  # as the application does
        settings_load()
        workers = parsed.workers or server_config().workers
        if workers > 1:
            sys.exit(workers_run(parsed, args, workers))
        self.reuse_port = parsed.reuse_port
        super().run(args)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        # The settings are imported with the application, after Daphne parsed the arguments.
        AetherlinkCommandLine().run([*args, APPLICATION])
    except ImproperlyConfigured as error:
        sys.stderr.write(f"{PROGRAM}: {config_error_line(error)}\n")
        sys.exit(CONFIG_ERROR_EXIT)
    except WorkersError as error:
        sys.stderr.write(f"{PROGRAM}: {error}\n")
        sys.exit(CONFIG_ERROR_EXIT)
