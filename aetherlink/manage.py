"""`aetherlink`: Django's command line for this project (`aetherlink migrate`,
`aetherlink consume_events`, ...). A checkout's `manage.py` runs the same function."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aetherlink.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv if argv is None else argv)
