"""Service information, liveness and readiness endpoints (the old service's `/` and `/healthz`)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from crm_events.config import canary_config, kafka_config, readiness_config
from crm_events.fanout.registry import hub_get
from crm_events.ops.readiness import CHECK_OK, canary_check, readiness_checks
from crm_events.responses import get_only

SERVICE_NAME = "crm-events"


async def readiness_report() -> tuple[bool, dict[str, str]]:
    """What /readyz decides, for / as well: ready, and each check's result."""
    hub = hub_get()
    checks = await readiness_checks(hub, readiness_config())
    if canary_config().enabled:
        checks["canary"] = canary_check(hub.observer, canary_config())
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
    ready, checks = await readiness_report()
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
    ready, checks = await readiness_report()
    body = {"ok": ready, "checks": checks, "streams": hub_get().stream_count}
    return JsonResponse(body, status=200 if ready else 503)
