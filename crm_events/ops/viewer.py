"""The live event viewer: an admin page that watches `GET /crm-events` in the browser.

The page is a template and small JS modules in `static/crm_events/`; the page view
only decides who may see it and hands the modules their settings as JSON: the URLs
(reversed, so the page works behind a proxy at a sub-path), the topics, the size of
the row buffer and how the stream authenticates (for the "copy as" snippets).

The page view is sync on purpose: the admin's base template reads the user's
permissions from the database while it renders. The partitions view the page polls
is async: it reads this process's hub, which lives on the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.cache import never_cache

from crm_events.access.auth import AuthMode
from crm_events.access.session_grants import RULE_SUPERUSER, session_grant_find_sync
from crm_events.config import ViewerConfig, auth_config, kafka_config, readiness_config, viewer_config
from crm_events.exceptions import StreamForbidden
from crm_events.fanout.registry import hub_get
from crm_events.ops.viewer_partitions import partitions_report
from crm_events.responses import error_response, get_only

VIEWER_TITLE = "Live events"
VIEWER_TEMPLATE = "crm_events/viewer.html"
VIEWER_FORBIDDEN = "the live viewer's data is for active staff users: log in to the admin first"
ACCESS_SUPERUSER = "You read every event: superusers are not limited by stream grants."
ACCESS_GRANTED = "You read only what the stream grant of {owner} allows: {grant}"
ACCESS_NONE = "This viewer shows you nothing: {refusal}."
FAVICON = "crm_events/favicon.svg"


def viewer_access_allowed(user: AbstractBaseUser | AnonymousUser, *, config: ViewerConfig) -> bool:
    """Active staff only, unless the viewer was made public (which only DEBUG allows)."""
    return config.public or bool(user.is_active and getattr(user, "is_staff", False))


def viewer_settings(*, config: ViewerConfig) -> dict[str, Any]:
    """What the page's JS needs, rendered with `json_script`."""
    return {
        "streamUrl": reverse("crm-events"),
        "topics": list(kafka_config().topics),
        "bufferRows": config.buffer_rows,
        "partitionsUrl": reverse("event-viewer-partitions"),
        "authMode": auth_config().mode,
    }


def viewer_access(user: AbstractBaseUser | AnonymousUser) -> dict[str, Any] | None:
    """What the user's stream shows under session auth, and why (None under other modes).

    Said on the page because the stream's own 403 is only a line in the status bar.
    """
    if auth_config().mode != AuthMode.SESSION or not user.is_authenticated:
        return None
    found = session_grant_find_sync(user)
    if found.refused:
        return {"rule": "none", "refused": True, "text": ACCESS_NONE.format(refusal=found.refusal)}
    if found.rule == RULE_SUPERUSER or found.grant is None:
        return {"rule": RULE_SUPERUSER, "refused": False, "text": ACCESS_SUPERUSER}
    grant = json.dumps(found.grant.as_object(), sort_keys=True)
    text = ACCESS_GRANTED.format(owner=found.owner, grant=grant)
    return {"rule": found.rule, "refused": False, "text": text}


@never_cache
@get_only
def event_viewer(request: HttpRequest) -> HttpResponse:
    config = viewer_config()
    if not viewer_access_allowed(request.user, config=config):
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    context = {
        **admin.site.each_context(request),
        "title": VIEWER_TITLE,
        "viewer_settings": viewer_settings(config=config),
        "viewer_access": viewer_access(request.user),
    }
    return render(request, VIEWER_TEMPLATE, context)


@never_cache
@get_only
async def viewer_partitions(request: HttpRequest) -> JsonResponse:
    """The partitions panel's JSON, for whoever may see the page (`viewer_partitions.py`)."""
    if not viewer_access_allowed(await request.auser(), config=viewer_config()):
        return error_response(StreamForbidden(VIEWER_FORBIDDEN))
    report = partitions_report(hub_get(), heartbeat_max_age=readiness_config().heartbeat_max_age)
    return JsonResponse(report)


@get_only
async def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for `/favicon.ico` whatever the page says; send them to the static icon."""
    return HttpResponseRedirect(static(FAVICON))
