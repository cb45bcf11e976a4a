"""The service's URLs plus the in-process per-event-send baseline (bench/baseline.py)."""

from django.urls import path

from aetherlink.urls import urlpatterns as service_urlpatterns
from bench.baseline import inproc_publish, inproc_stream

urlpatterns = [
    path("bench/inproc", inproc_stream, name="bench-inproc"),
    path("bench/inproc/publish", inproc_publish, name="bench-inproc-publish"),
    *service_urlpatterns,
]
