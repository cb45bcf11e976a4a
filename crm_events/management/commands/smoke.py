from argparse import ArgumentDefaultsHelpFormatter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm_events.config import kafka_config
from crm_events.ingest.smoke import SmokeFailure, SmokeRun


class Command(BaseCommand):
    help = "Check a running stack end to end: health, readiness, topics, and a probe event."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # --help shows every option's default (Django's own formatter would not).
        return super().create_parser(prog_name, subcommand, formatter_class=ArgumentDefaultsHelpFormatter,
                                     **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://localhost:9010",
                            help="the web service's URL: http://, or https:// (verified, see --insecure)")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per check")
        parser.add_argument("--insecure", action="store_true",
                            help="https: do not verify the certificate (a self-signed one)")

    def handle(self, *args: object, **options: Any) -> None:
        current = "setup"
        try:
            run = SmokeRun(base_url=options["url"], config=kafka_config(), timeout=options["timeout"],
                           insecure=options["insecure"])
            for current, check in run.checks():
                self.stdout.write(f"ok   {current}: {check()}")
        except SmokeFailure as failure:
            raise CommandError(f"FAIL {current}: {failure}") from None
        self.stdout.write(self.style.SUCCESS("smoke test passed"))
