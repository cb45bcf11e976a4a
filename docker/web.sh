#!/usr/bin/env bash
# The web process: Django views and the SSE stream under Daphne.
set -euo pipefail
python manage.py migrate --noinput
exec daphne -b 0.0.0.0 -p "${PORT:-9010}" aetherlink.asgi:application
