"""`GET /asyncapi.yaml`: the stream's machine-readable contract (AsyncAPI 3), as shipped.

The document is package data (`crm_events/asyncapi.yaml`), read once per process and
served as it is, with an ETag, so clients and caches may keep it for an hour and revalidate.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import condition, require_safe

ASYNCAPI_RESOURCE = "asyncapi.yaml"
ASYNCAPI_CONTENT_TYPE = "application/yaml; charset=utf-8"
ASYNCAPI_MAX_AGE = 3600


@cache
def asyncapi_document() -> bytes:
    return files("crm_events").joinpath(ASYNCAPI_RESOURCE).read_bytes()


def asyncapi_etag(request: HttpRequest) -> str:
    return hashlib.sha256(asyncapi_document()).hexdigest()[:32]


@csrf_exempt  # changes nothing: an unsafe method gets its 405, not the CSRF check's 403 (see get_only)
@require_safe
@cache_control(public=True, max_age=ASYNCAPI_MAX_AGE)
@condition(etag_func=asyncapi_etag)
async def asyncapi_yaml(request: HttpRequest) -> HttpResponse:
    return HttpResponse(asyncapi_document(), content_type=ASYNCAPI_CONTENT_TYPE)
