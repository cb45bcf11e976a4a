"""Service information, liveness and readiness endpoints (the old service's `/` and `/healthz`)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from crm_events.config import canary_config, kafka_config, readiness_config
from crm_events.fanout.registry import hub_get
from crm_events.ops.readiness import CHECK_OK, canary_check, readiness_checks

SERVICE_NAME = "crm-events"


@require_GET
async def service_info(request: HttpRequest) -> JsonResponse:
    config = kafka_config()
    return JsonResponse(
        {
            "ok": True,
            "service": SERVICE_NAME,
            "status": "ready",
            "kafka_brokers": ",".join(config.brokers_redacted),
            "topic": config.topics[0],
            "topics": list(config.topics),
            "group": config.group,
            "asyncapi": reverse("asyncapi"),
        }
    )


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers while the process serves HTTP, whatever Kafka and Redis do."""
    return JsonResponse({"ok": True})


@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    hub = hub_get()
    checks = await readiness_checks(hub, readiness_config())
    if canary_config().enabled:
        checks["canary"] = canary_check(hub.observer, canary_config())
    ready = all(result == CHECK_OK for result in checks.values())
    body = {"ok": ready, "checks": checks, "streams": hub.stream_count}
    return JsonResponse(body, status=200 if ready else 503)
