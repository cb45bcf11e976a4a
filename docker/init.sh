#!/usr/bin/env bash
# One-shot preparation before web processes, consumers and producers start (compose's `init`
# service; the Helm chart's migration Job): the database schema, the admin user when
# DJANGO_SUPERUSER_USERNAME is set (with DJANGO_SUPERUSER_PASSWORD and DJANGO_SUPERUSER_EMAIL,
# which Django's createsuperuser reads itself), and the Kafka topics with KAFKA_TOPIC_PARTITIONS.
# Safe to run again: an existing admin user is left as it is, existing topics too.
set -euo pipefail

python manage.py migrate --noinput

if [[ -n "${DJANGO_SUPERUSER_USERNAME:-}" ]]; then
  if output="$(python manage.py createsuperuser --noinput 2>&1)"; then
    echo "init: created the admin user ${DJANGO_SUPERUSER_USERNAME}"
  elif [[ "$output" == *"already taken"* ]]; then
    echo "init: the admin user ${DJANGO_SUPERUSER_USERNAME} exists; left as it is"
  else
    echo "$output" >&2
    exit 1
  fi
else
  echo "init: DJANGO_SUPERUSER_USERNAME is not set; no admin user created"
fi

exec python manage.py topics_create
