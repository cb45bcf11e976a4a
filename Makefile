# The two commands a new user needs: `make dev` and `make test`. Everything else is a helper.
PYTHON ?= python3
# `make dev WEB_PROCESSES=3`: that many Daphne processes, on consecutive ports from 9010.
WEB_PROCESSES ?= 1
# `make dev WEB_WORKERS=2` (or auto): that many workers sharing each process's port (aetherlink-web --workers).
WEB_WORKERS ?= 1
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev docs test test-faults test-chaos install browser tools node promtool centrifugo lint typecheck smoke bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[test,postgres,msk,docs]"
	touch $@

install: $(BIN)/.installed

## Install, start Kafka, Redis, Daphne (WEB_PROCESSES of them, WEB_WORKERS each), the consumer and demo events; Ctrl-C stops them.
## make dev KAFKA_VERSION=3.9.1 runs that Kafka release instead of the newest (docs/production.md "Which Kafka").
dev: install
	PATH="$(CURDIR)/$(BIN):$$PATH" WEB_PROCESSES="$(WEB_PROCESSES)" WEB_WORKERS="$(WEB_WORKERS)" KAFKA_VERSION="$(KAFKA_VERSION)" bash scripts/dev.sh

## Debian's chromium for the viewer's browser tests (installed with apt-get when missing and root).
browser: install
	$(BIN)/python -m tests.support.browser

## nginx, docker-compose (apt-get), helm (go install), the CRD schemas (go mod download), the jars of both
## Kafka versions the tests run and Apicurio Registry (mvn), when missing; Prometheus's server (go install,
## once per machine; slow the first time) for the cluster test.
tools: install
	$(BIN)/python -m tests.support.tools
	$(BIN)/python -m tests.support.prometheus_server

## npm packages of examples/ and tests/node/ (npm ci, cached per machine) and the Next.js example's build.
node: install
	$(BIN)/python -m tests.support.node

## Optional: Prometheus's promtool built with Go into ~/.cache/aetherlink (slow, once per machine);
## the monitoring tests use it to check the alert rules and the dashboard's PromQL when it is there.
promtool: install
	$(BIN)/python -m tests.support.promtool

## Optional: Centrifugo (the peer of the benchmark's `peer` mode, docs/benchmarks.md "Peers") built with
## Go into ~/.cache/aetherlink (slow, once per machine); never part of `make test`.
centrifugo: install
	$(BIN)/python -m bench.peer_centrifugo build

## Lint and type-check, then the whole suite (unit and integration, on its own Kafka, Redis and Daphne).
test: install browser tools node
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python -m pytest

## Only the fault-tolerance scenarios (`make test` runs them too): about 8 minutes on 2 cores.
test-faults: install
	$(BIN)/python -m pytest -m faults

## Only the chaos run (`make test` runs it for 3 minutes): random faults from a seed, then the verdict.
## make test-chaos CHAOS_SECONDS=600 CHAOS_SEED=42 CHAOS_ACTIONS=kafka,redis,consumer,daphne
CHAOS_SECONDS ?= 1800
test-chaos: install
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) CHAOS_ACTIONS=$(CHAOS_ACTIONS) \
		$(BIN)/python -m pytest -m chaos

lint: install
	$(BIN)/ruff check .

## mypy over crm_events, aetherlink, scripts and bench (pyproject.toml; strict for crm_events/core).
## django-stubs imports the settings: debug mode needs no secret key.
typecheck: install
	DJANGO_DEBUG=true $(BIN)/mypy

## Fan-out benchmark on its own Kafka, Redis, consume_events and Daphne (docs/benchmarks.md).
## Quick by default (< 2 min); the issue's sizes: make bench BENCH_ARGS=--full
bench: install
	$(BIN)/python -m bench.fanout $(BENCH_ARGS)

## The documentation site (docs/) on http://127.0.0.1:8000, rebuilt as its pages change.
docs: install
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

## Check a running `make dev` stack end to end.
smoke: install
	DJANGO_DEBUG=true $(BIN)/python manage.py smoke --url http://localhost:9010

clean:
	rm -rf $(VENV) .local examples/node_modules examples/nextjs/node_modules examples/nextjs/.next tests/node/node_modules
