"""`GET /metrics`: this web process's Prometheus metrics, for allowed networks or a bearer token.

A client may scrape when its address (see `crm_events.access.client_address`) is in
`METRICS_ALLOWED_NETWORKS`, or when it sends `Authorization: Bearer <METRICS_TOKEN>`.
With neither configured nobody may. The consumer lag comes from the consumer
heartbeats this process received, and so does how long each consumer's publishing has
been stalled; the canary age from its hub observer.

Under `aetherlink-web --workers N` (`PROMETHEUS_MULTIPROC_DIR` set), whichever worker the
kernel hands the scrape answers for the whole host: every worker's metrics added up from
the multiprocess directory (each gauge says how, crm_events/metrics.py), the process
metrics summed over the live workers (host_process.py), and the consumer heartbeats as
this worker received them.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from crm_events import metrics
from crm_events.access.client_address import address_in, client_address
from crm_events.config import MetricsConfig, limits_config, metrics_config, readiness_config
from crm_events.exceptions import StreamForbidden
from crm_events.fanout.registry import hub_get
from crm_events.ops.host_process import HostProcessCollector
from crm_events.responses import error_response, get_only

METRICS_FORBIDDEN = "metrics are only served to allowed networks or with the metrics token"


def metrics_access_allowed(request: HttpRequest, config: MetricsConfig) -> bool:
    if config.token:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), config.token.encode()):
            return True
    address = client_address(request, limits_config().trusted_proxies)
    return address_in(address, config.allowed_networks)


@get_only
async def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(request, metrics_config()):
        return error_response(StreamForbidden(METRICS_FORBIDDEN))
    hub = hub_get()
    hub.observer.metrics_refresh()
    metrics.stream_writes_flush()
    max_age = readiness_config().heartbeat_max_age
    metrics.consumer_lag_set(hub.consumer_lag_current(max_age))
    metrics.publishing_stalled_set(hub.publishing_stalls(max_age))
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def metrics_registry() -> CollectorRegistry:
    """This process's registry, or in multiprocess mode one adding up every worker's metrics."""
    directory = metrics_config().multiprocess_dir
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    registry.register(HostProcessCollector(directory))
    registry.register(metrics.HEARTBEATS)
    return registry
