#!/usr/bin/env bash
# The Kafka consumer that feeds every web process through the Redis channel layer.
set -euo pipefail
exec python manage.py consume_events
