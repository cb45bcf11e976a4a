"""Grants for session users, kept in the database and administered in the Django admin.

One `AccessGrant` row belongs to one user or to one group (never both, never neither: a
check constraint says so), and holds one grant in the stream's own filter language, checked
by `access.grants.grant_parse` when it is saved through a form (`full_clean`) and again
whenever a stream is opened with it: a row that no longer parses grants nothing.
Which row applies to a user is `access.session_grants`' rule.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models

from crm_events.access.grants import grant_parse
from crm_events.exceptions import GrantMalformed

OWNER_REQUIRED = "a grant belongs to exactly one user or one group: choose one of them"


def grant_validate(value: Any) -> None:
    """The model field's validator: the admin form shows `grant_parse`'s message under the field."""
    try:
        grant_parse(value)
    except GrantMalformed as error:
        raise ValidationError(error.message, code="grant_malformed") from None


class AccessGrant(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="stream_grant",
        help_text="The user this grant is for; leave empty for a group's grant.",
    )
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="stream_grant",
        help_text="The group whose members this grant is for; leave empty for a user's grant.",
    )
    grant = models.JSONField(
        validators=[grant_validate],
        help_text='Mandatory filters in the stream\'s filter language, for example '
        '{"topic": ["crm.deals"], "kind": ["deal"], "where": ["tenant_id:acme"]}. '
        "An empty object or list grants nothing and is refused.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "stream grant"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="stream_grant_one_owner",
                violation_error_message=OWNER_REQUIRED,
            ),
        ]

    def __str__(self) -> str:
        return f"grant of {self.owner_name}"

    @property
    def owner_name(self) -> str:
        """`user:NAME` or `group:NAME`, as audit lines and the viewer name a grant's owner."""
        if self.user is not None:
            return f"user:{self.user.get_username()}"
        return f"group:{self.group.name}" if self.group is not None else "nobody"
