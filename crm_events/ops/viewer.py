"""The live event viewer: an admin page that watches `GET /crm-events` in the browser.

The page is a template and three small JS modules in `static/crm_events/`; this view
only decides who may see it and hands the modules their settings as JSON: the
stream's URL (reversed, so the page works behind a proxy at a sub-path), the topics
and the size of the row buffer.

It is a sync view on purpose: the admin's base template reads the user's
permissions from the database while it renders.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm_events.config import ViewerConfig, kafka_config, viewer_config

VIEWER_TITLE = "Live events"
VIEWER_TEMPLATE = "crm_events/viewer.html"


def viewer_access_allowed(user: AbstractBaseUser | AnonymousUser, *, config: ViewerConfig) -> bool:
    """Active staff only, unless the viewer was made public (which only DEBUG allows)."""
    return config.public or bool(user.is_active and getattr(user, "is_staff", False))


def viewer_settings(*, config: ViewerConfig) -> dict[str, Any]:
    """What the page's JS needs, rendered with `json_script`."""
    return {
        "streamUrl": reverse("crm-events"),
        "topics": list(kafka_config().topics),
        "bufferRows": config.buffer_rows,
    }


@never_cache
@require_GET
def event_viewer(request: HttpRequest) -> HttpResponse:
    config = viewer_config()
    if not viewer_access_allowed(request.user, config=config):
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    context = {
        **admin.site.each_context(request),
        "title": VIEWER_TITLE,
        "viewer_settings": viewer_settings(config=config),
    }
    return render(request, VIEWER_TEMPLATE, context)
