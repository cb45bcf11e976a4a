"""Service information, liveness, readiness and status endpoints (the old service's `/` and `/healthz`).

- `/healthz`: liveness; the process answers HTTP.
- `/readyz`: this process can serve (`process_checks.py`); 503 only for its own state.
- `/status`: the detailed picture, this process's checks and upstream's (Redis, the layer, the
  consumer heartbeat, Kafka, the canary); 503 when anything is wrong. It tells internals, so it
  is served as `/metrics` is (`scrape_access.py`), for monitors and people, never to a balancer.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from crm_events.access.limits import limiter_get
from crm_events.config import canary_config, kafka_config, limits_config, metrics_config, readiness_config
from crm_events.exceptions import StreamForbidden
from crm_events.fanout.registry import hub_get, shutting_down
from crm_events.ops.process_checks import process_checks
from crm_events.ops.readiness import CHECK_OK, upstream_checks
from crm_events.ops.scrape_access import SCRAPE_FORBIDDEN, scrape_access_allowed
from crm_events.responses import error_response, get_only

SERVICE_NAME = "crm-events"


def readiness_report() -> tuple[bool, dict[str, str]]:
    """What /readyz decides, for / as well: ready, and each check's result."""
    checks = process_checks(
        hub_get(), shutting_down=shutting_down(), streams=limiter_get().total,
        max_streams=limits_config().max_streams,
    )
    return all(result == CHECK_OK for result in checks.values()), checks


def status_text(ready: bool, checks: dict[str, str]) -> str:
    """`ready`, or `not ready` with the first failing check: / must never claim more than /readyz."""
    if ready:
        return "ready"
    name, reason = next((name, result) for name, result in checks.items() if result != CHECK_OK)
    return f"not ready: {name}: {reason}"


@get_only
async def service_info(request: HttpRequest) -> JsonResponse:
    config = kafka_config()
    ready, checks = readiness_report()
    return JsonResponse(
        {
            "ok": True,
            "service": SERVICE_NAME,
            "status": status_text(ready, checks),
            "kafka_brokers": ",".join(config.brokers_redacted),
            "topic": config.topics[0],
            "topics": list(config.topics),
            "group": config.group,
            "asyncapi": reverse("asyncapi"),
        }
    )


@get_only
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers while the process serves HTTP, whatever Kafka and Redis do."""
    return JsonResponse({"ok": True})


@get_only
async def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = readiness_report()
    body = {"ok": ready, "checks": checks, "streams": hub_get().stream_count}
    return JsonResponse(body, status=200 if ready else 503)


@get_only
async def status(request: HttpRequest) -> JsonResponse:
    """Every check, this process's (`ready`) and upstream's; `ok` when all of them pass."""
    if not scrape_access_allowed(request, metrics_config()):
        return error_response(StreamForbidden(SCRAPE_FORBIDDEN))
    ready, checks = readiness_report()
    upstream = await upstream_checks(hub_get(), readiness_config(), canary_config())
    everything = {**checks, **upstream}
    ok = all(result == CHECK_OK for result in everything.values())
    body = {"ok": ok, "ready": ready, "checks": everything, "streams": hub_get().stream_count}
    return JsonResponse(body, status=200 if ok else 503)
