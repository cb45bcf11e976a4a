"""`aetherlink-web` (or `python -m crm_events.server`): Daphne's command line, serving
AetherLink's application with `AetherlinkServer`.

It takes every option of `daphne` (`-b`, `-p`, `-e`, `--proxy-headers`, ...) and no
application argument: it always serves `aetherlink.asgi:application`. Plain
`daphne aetherlink.asgi:application` works too, without the direct writes, the flow
control and the goodbye frames on shutdown (the first stream says so in the log).
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface

from crm_events.server.daphne_server import AetherlinkServer

APPLICATION = "aetherlink.asgi:application"


class AetherlinkCommandLine(CommandLineInterface):
    server_class = AetherlinkServer


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    AetherlinkCommandLine().run([*args, APPLICATION])
