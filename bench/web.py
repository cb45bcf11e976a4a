"""One of the benchmark's web processes: AetherLink's server, as `aetherlink-web` runs it
(direct socket writes, flow control, goodbye frames, GC tuning), serving the service plus the
bench-only endpoints of bench/asgi_modes.py.

    python -m bench.web -b 127.0.0.1 -p PORT
"""

from __future__ import annotations

import os
import sys

APPLICATION = "bench.asgi_modes:application"


def main(argv: list[str] | None = None) -> None:
    # Before anything reads the settings: the service's, with bench/urls.py as the URLconf.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from crm_events.server.cli import AetherlinkCommandLine

    AetherlinkCommandLine().run([*(sys.argv[1:] if argv is None else argv), APPLICATION])


if __name__ == "__main__":
    main()
