"""The stream grants in the Django admin: who reads what, in the stream's filter language.

Validation is the model's (`AccessGrant.grant`'s validator and its one-owner constraint), so
the form shows `grant_parse`'s message under the field. Saving or deleting a grant ends the
open streams of the users it concerns (access/revocation_signals.py).
"""

from __future__ import annotations

import json

from django.contrib import admin

from crm_events.access.grant_store import AccessGrant


@admin.register(AccessGrant)
class AccessGrantAdmin(admin.ModelAdmin):
    list_display = ("owner_name", "grant_text", "updated_at")
    list_select_related = ("user", "group")
    search_fields = ("user__username", "group__name")
    autocomplete_fields = ("user", "group")
    fields = ("user", "group", "grant")

    @admin.display(description="owner")
    def owner_name(self, obj: AccessGrant) -> str:
        return obj.owner_name

    @admin.display(description="grant")
    def grant_text(self, obj: AccessGrant) -> str:
        return json.dumps(obj.grant, sort_keys=True)
