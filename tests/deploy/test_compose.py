"""docker/compose.yaml as Docker Compose resolves it, without an engine: Debian's docker-compose
1.29 (`config`) validates the file against its schema and resolves env_file, anchors and
dependencies. The file is used as shipped, beside a .env made from .env.example."""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from scripts.servers import KAFKA_VERSION
from tests.support.compose import SECRET, compose_resolve, dotenv_names

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
WIRING = {"KAFKA_BROKERS": "kafka:9092", "REDIS_URL": "redis://redis:6379/0", "PORT": "9010"}
COMPOSE_DATABASE = "postgres://crm_events:crm-events-local@postgres:5432/crm_events"
APP_SERVICES = {"init", "web-1", "web-2", "consumer", "demo-producer"}
ONE_SHOT = {"init", "tls"}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    return compose_resolve(tmp_path_factory.mktemp("compose"), DJANGO_ALLOWED_HOSTS="crm-events.example.com",
                   DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD="admin-password-1",
                   KAFKA_BROKERS="elsewhere:9092")


def test_every_variable_of_the_root_env_reaches_every_app_container(config):
    example = dotenv_names((ROOT / ".env.example").read_text())
    for name in APP_SERVICES:
        environment = config["services"][name]["environment"]
        for variable in example:
            assert variable in environment, f"{variable} does not reach {name}"
        assert environment["DJANGO_SECRET_KEY"] == SECRET
        assert environment["DJANGO_ALLOWED_HOSTS"] == "crm-events.example.com"
        assert {k: environment[k] for k in WIRING} == WIRING  # the wiring is not the .env's to change
    init = config["services"]["init"]["environment"]
    admin = (init["DJANGO_SUPERUSER_USERNAME"], init["DJANGO_SUPERUSER_PASSWORD"])
    assert admin == ("admin", "admin-password-1")


def test_compose_defaults_are_session_auth_behind_nginx_and_the_env_file_wins(config, tmp_path):
    web = config["services"]["web-1"]["environment"]
    chosen = [web[name] for name in
              ("SSE_AUTH_MODE", "DJANGO_SECURE_PROXY_SSL_HEADER", "DJANGO_SECURE_SSL_REDIRECT")]
    assert chosen == ["session", "true", "true"]
    assert web["TRUSTED_PROXIES"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    assert "https://localhost:8443" in web["DJANGO_CSRF_TRUSTED_ORIGINS"].split(",")
    chosen = compose_resolve(tmp_path, SSE_AUTH_MODE="jwt", SSE_JWT_KEY="j" * 32)["services"]["web-2"]
    chosen = chosen["environment"]
    assert chosen["SSE_AUTH_MODE"] == "jwt"


def test_one_image_built_once_and_run_by_every_app_service(config):
    services = config["services"]
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["init"]
    assert services["init"]["build"]["dockerfile"].endswith("docker/Dockerfile")
    image = services["init"]["image"]
    for name in APP_SERVICES | {"tls"}:
        assert services[name]["image"] == image, name
        assert services[name]["pull_policy"] == ("build" if name == "init" else "never"), name


def test_kafka_is_the_tested_version_with_a_volume_and_no_topic_auto_creation(config):
    kafka = config["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    log_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dir}:rw" in kafka["volumes"]
    assert "kafka-data" in config["volumes"]


def test_topics_exist_before_anything_produces_or_consumes(config):
    services = config["services"]
    assert services["init"]["command"] == ["init.sh"]  # migrate, admin user, topics_create
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("web-1", "web-2", "consumer", "demo-producer"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully", name
    # Migrations are init's alone: no web process runs one at its start.
    assert "migrate" not in (DOCKER / "web.sh").read_text() + (DOCKER / "consumer.sh").read_text()
    assert "init.sh" in (ROOT / "docker" / "Dockerfile").read_text()
    assert (ROOT / "docker" / "init.sh").read_text().rstrip().endswith("exec python manage.py topics_create")


def test_restart_policies(config):
    for name, service in config["services"].items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name


def test_two_web_replicas_behind_nginx_with_readiness_healthchecks(config):
    services = config["services"]
    webs = sorted(name for name in services if name.startswith("web-"))
    assert webs == ["web-1", "web-2"]
    upstreams = re.findall(r"^\s*server (\S+):(\d+) ", (DOCKER / "nginx.conf").read_text(), re.MULTILINE)
    assert upstreams == [(name, services[name]["environment"]["PORT"]) for name in webs]
    for name in webs:
        web = services[name]
        assert web["command"] == ["web.sh"]
        assert web["healthcheck"]["test"] == ["CMD", "probe.sh", "/readyz"]
        assert "ports" not in web  # reached through nginx only (TRUSTED_PROXIES relies on it)
        grace = float(web["environment"]["SSE_SHUTDOWN_GRACE"])
        assert int(web["stop_grace_period"].rstrip("s")) > grace + 5
    nginx = services["nginx"]
    assert [port["target"] if isinstance(port, dict) else port for port in nginx["ports"]] in (
        [443], ["8443:443"], [{"target": 443, "published": 8443}])
    assert {name: dep["condition"] for name, dep in nginx["depends_on"].items()} == {
        "web-1": "service_healthy", "web-2": "service_healthy", "tls": "service_completed_successfully"}
    mounts = " ".join(nginx["volumes"])
    assert "/etc/nginx/conf.d/default.conf" in mounts and "tls:/etc/nginx/tls:ro" in mounts
    assert services["tls"]["command"] == ["tls-selfsigned.sh"]


def test_one_consumer_that_can_be_scaled(config):
    consumer = config["services"]["consumer"]
    assert consumer["command"] == ["consumer.sh"]
    assert not {"container_name", "ports"} & consumer.keys()  # `--scale consumer=N` works
    assert consumer.get("deploy", {}).get("replicas", 1) == 1


def test_every_app_service_shares_one_postgresql_with_a_volume(config, tmp_path):
    services = config["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "postgres-data:/var/lib/postgresql/data:rw" in postgres["volumes"]
    assert "postgres-data" in config["volumes"] and "ports" not in postgres
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    owner = postgres["environment"]
    assert (f"postgres://{owner['POSTGRES_USER']}:{owner['POSTGRES_PASSWORD']}"
                                f"@postgres:5432/{owner['POSTGRES_DB']}") == COMPOSE_DATABASE
    for name in APP_SERVICES:
        assert services[name]["environment"]["DATABASE_URL"] == COMPOSE_DATABASE, name
    for name in ("init", "web-1", "web-2", "consumer"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    # From the env files: a .env may name another database.
    elsewhere = "postgres://crm:secret@db.example.com:5432/crm"
    chosen = compose_resolve(tmp_path, DATABASE_URL=elsewhere)["services"]
    assert {chosen[name]["environment"]["DATABASE_URL"] for name in APP_SERVICES} == {elsewhere}


def test_prometheus_may_scrape_after_copying_the_env_example(tmp_path):
    """`cp .env.example .env` must not take the compose network's right to /metrics away."""
    web = compose_resolve(tmp_path, profiles=("monitoring",))["services"]["web-1"]["environment"]
    allowed = [ip_network(network) for network in web["METRICS_ALLOWED_NETWORKS"].split(",")]
    for compose_address in ("172.18.0.5", "192.168.16.3", "10.0.1.7"):  # where compose puts networks
        assert any(ip_address(compose_address) in network for network in allowed), compose_address


def test_the_consumer_healthcheck_is_its_liveness_endpoint(config):
    consumer = config["services"]["consumer"]
    port = consumer["environment"]["CONSUMER_METRICS_PORT"]
    assert consumer["healthcheck"]["test"] == ["CMD", "probe.sh", "/livez", port]
    assert consumer["environment"]["CONSUMER_METRICS_ADDRESS"] in ("0.0.0.0", "127.0.0.1")
