#!/usr/bin/env bash
# Healthcheck: GET http://127.0.0.1:<port><path> must answer 200. The path defaults to /readyz
# (this web process can serve; /healthz for liveness, /status for everything upstream too), the
# port to $PORT; the consumer's is its CONSUMER_METRICS_PORT, for /livez (`probe.sh /livez 9100`).
# Works whatever DJANGO_ALLOWED_HOSTS and DJANGO_SECURE_SSL_REDIRECT say, since the service
# answers its probes before the Host check and the https redirect.
set -euo pipefail
exec python - "${1:-/readyz}" "${2:-${PORT:-9010}}" <<'PY'
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{sys.argv[2]}{sys.argv[1]}"
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        status = response.status
except urllib.error.HTTPError as error:
    status = error.code
except OSError as error:
    sys.exit(f"{url}: {error}")
if status != 200:
    sys.exit(f"{url}: {status}")
PY
