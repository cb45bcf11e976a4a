"""`GET /metrics`: this web process's Prometheus metrics, for allowed networks or a bearer token.

A client may scrape when the socket's peer address is in `METRICS_ALLOWED_NETWORKS`, or
when it sends `Authorization: Bearer <METRICS_TOKEN>` (`scrape_access.py`; never by
X-Forwarded-For). With neither configured nobody may. The consumer lag comes from the consumer
heartbeats this process received, and so does how long each consumer's publishing has
been stalled, and how long ago the last one came; the canary age from its hub observer.

Under `aetherlink-web --workers N` (`PROMETHEUS_MULTIPROC_DIR` set), whichever worker the
kernel hands the scrape answers for the whole host: every worker's metrics added up from
the multiprocess directory (each gauge says how, crm_events/metrics.py), the process
metrics summed over the live workers (host_process.py), and the consumer heartbeats as
this worker received them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from crm_events import metrics
from crm_events.config import metrics_config, readiness_config
from crm_events.exceptions import StreamForbidden
from crm_events.fanout.registry import hub_get
from crm_events.ops.host_process import HostProcessCollector
from crm_events.ops.scrape_access import SCRAPE_FORBIDDEN, scrape_access_allowed
from crm_events.responses import error_response, get_only


@get_only
async def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    if not scrape_access_allowed(request, metrics_config()):
        return error_response(StreamForbidden(SCRAPE_FORBIDDEN))
    hub = hub_get()
    hub.observer.metrics_refresh()
    metrics.stream_writes_flush()
    max_age = readiness_config().heartbeat_max_age
    metrics.consumer_lag_set(hub.consumer_lag_current(max_age))
    metrics.publishing_stalled_set(hub.publishing_stalls(max_age))
    metrics.consumer_heartbeat_age_set(hub.heartbeat_age())
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
