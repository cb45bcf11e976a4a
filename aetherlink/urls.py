from django.contrib import admin
from django.urls import path

from crm_events.ops.asyncapi_view import asyncapi_yaml
from crm_events.ops.metrics_view import metrics_endpoint
from crm_events.ops.viewer import event_viewer, favicon, viewer_partitions
from crm_events.ops.views import healthz, readyz, service_info, status
from crm_events.streams.view import crm_events_stream

urlpatterns = [
    path("", service_info, name="service-info"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("status", status, name="status"),
    path("crm-events", crm_events_stream, name="crm-events"),
    path("asyncapi.yaml", asyncapi_yaml, name="asyncapi"),
    # Before admin.site.urls, whose catch-all would claim any other path under admin/.
    path("admin/live-events/", event_viewer, name="event-viewer"),
    path("admin/live-events/partitions", viewer_partitions, name="event-viewer-partitions"),
    path("metrics", metrics_endpoint, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
]

# Django's own 400 and 500 answers (too many parameters, a failed view...) as JSON, not HTML.
handler400 = "crm_events.ops.error_views.bad_request"
handler500 = "crm_events.ops.error_views.server_error"
