#!/usr/bin/env bash
# `make dev`: Kafka, Redis, Daphne, consume_events and the demo producer on this machine.
# Ctrl-C stops everything this script started. Ports and names can be overridden by env.
set -euo pipefail
cd "$(dirname "$0")/.."

export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
# The viewer needs no login here, so a new user sees events at once (refused outside debug).
export VIEWER_PUBLIC="${VIEWER_PUBLIC:-true}"
PORT="${PORT:-9010}"
# Daphne processes, on consecutive ports from $PORT (make dev WEB_PROCESSES=3: 9010, 9011, 9012).
WEB_PROCESSES="${WEB_PROCESSES:-1}"
# Workers of each of them on its one port (make dev WEB_WORKERS=2, or auto: every usable core).
export WEB_WORKERS="${WEB_WORKERS:-1}"
if ! [[ "$WEB_PROCESSES" =~ ^[1-9][0-9]*$ ]]; then
  echo "WEB_PROCESSES must be a positive number of web processes, got '${WEB_PROCESSES}'" >&2
  exit 2
fi
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${REDIS_PORT:-6379}"
DEMO_RATE="${DEMO_RATE:-2}"
# Another Kafka release (make dev KAFKA_VERSION=3.9.1) gets a state dir of its own: an older broker
# cannot read a newer one's data, and scripts.servers refuses to try.
KAFKA_VERSION="${KAFKA_VERSION:-}"
STATE_DIR="${DEV_STATE_DIR:-.local/dev${KAFKA_VERSION:+-kafka-$KAFKA_VERSION}}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT}}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}"

pids=()
stop_all() {
  # A second Ctrl-C (or the TERM a wrapper such as `timeout` passes on) must not cut the cleanup
  # short and leave Kafka and Redis running: the stops below are bounded on their own.
  trap '' INT TERM
  trap - EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  python -m scripts.servers down --state-dir "$STATE_DIR"
}
trap stop_all INT TERM EXIT

python -m scripts.servers up --state-dir "$STATE_DIR" \
  --kafka-port "$KAFKA_PORT" --kafka-controller-port "$KAFKA_CONTROLLER_PORT" --redis-port "$REDIS_PORT" \
  ${KAFKA_VERSION:+--kafka-version "$KAFKA_VERSION"}
python manage.py migrate --noinput -v 0

mkdir -p "$STATE_DIR/logs"
web_ports=()
for ((i = 0; i < WEB_PROCESSES; i++)); do
  web_ports+=($((PORT + i)))
  python -m crm_events.server -b 127.0.0.1 -p "$((PORT + i))" --workers "$WEB_WORKERS" &
  pids+=($!)
done
python manage.py consume_events &
pids+=($!)
python manage.py produce_events --rate "$DEMO_RATE" >"$STATE_DIR/logs/demo-producer.log" 2>&1 &
pids+=($!)

if ((WEB_PROCESSES > 1)); then
  web_line="    web        ${WEB_PROCESSES} Daphne processes, each on its own port (no balancer in front):"
  web_line+=" ${web_ports[*]}; a stream resumes on any of them"
elif [[ "$WEB_WORKERS" != 1 ]]; then
  web_line="    web        ${WEB_WORKERS} workers sharing port ${PORT} (SO_REUSEPORT), under one supervisor"
else
  web_line="    web        one Daphne process on port ${PORT} (make dev WEB_WORKERS=N: N workers on it)"
fi
cat <<TXT

  AetherLink CRM Events is starting (demo events at ${DEMO_RATE}/s):
${web_line}
    stream     http://localhost:${PORT}/crm-events     (curl -N http://localhost:${PORT}/crm-events)
    info       http://localhost:${PORT}/
    health     http://localhost:${PORT}/healthz   ready: http://localhost:${PORT}/readyz
    status     http://localhost:${PORT}/status    (this process and everything upstream: consumer, Kafka, Redis)
    admin      http://localhost:${PORT}/admin/
    viewer     http://localhost:${PORT}/admin/live-events/   (no login under make dev; VIEWER_PUBLIC=false asks for staff)
    smoke      make smoke   (in another terminal)
  Ctrl-C stops everything.

TXT
wait -n "${pids[@]}"
