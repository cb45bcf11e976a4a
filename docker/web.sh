#!/usr/bin/env bash
# The web process: Django views and the SSE stream under Daphne, on $PORT (default 9010).
# The database schema and the admin user are init.sh's job (compose's `init` service, the
# Helm chart's migration Job), run once before. Daphne does not read X-Forwarded-For itself
# (no --proxy-headers): the service believes it only from TRUSTED_PROXIES.
set -euo pipefail
exec aetherlink-web -b "${WEB_BIND:-0.0.0.0}" -p "${PORT:-9010}"
