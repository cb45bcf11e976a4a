"""Which grant a session user streams under, and why a user gets nothing.

The rule, in order:

1. an inactive user reads nothing (refused before this, as unauthenticated);
2. a superuser reads everything: no grant applies (superusers can change any grant anyway);
3. anyone else, staff included, reads only under a grant: the user's own `AccessGrant` if
   there is one (it replaces their groups' grants: the admin's most specific statement);
   otherwise the one grant of their groups. No grant, several group grants and no grant of
   their own (a union of grants is an OR of filters, which one grant cannot state), or a
   stored grant that no longer parses: nothing (a 403 whose message says which).

Changes apply on the next connect; open streams of a user whose grant changes are ended
(see access/revocation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet

from crm_events.access.grant_store import AccessGrant
from crm_events.access.grants import StreamGrant, grant_parse
from crm_events.exceptions import GrantMalformed

RULE_SUPERUSER = "superuser"
RULE_USER = "user"
RULE_GROUP = "group"

GRANT_NONE = (
    "no stream grant applies to this user: an administrator gives one to the user or to one of their groups"
)
GRANT_SEVERAL = (
    "several groups of this user have stream grants ({owners}) and the user has none of their own: "
    "an administrator gives the user a grant of their own"
)
GRANT_STORED_MALFORMED = "this user's stream grant ({owner}) is not a valid grant: {reason}"


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """The outcome of the rule: a grant in force (None for a superuser), or why there is none."""

    rule: str | None  # RULE_*; None when refused
    owner: str | None = None  # `user:NAME` or `group:NAME` of the row in force
    grant: StreamGrant | None = None
    refusal: str | None = None  # the 403's message when refused

    @property
    def refused(self) -> bool:
        return self.rule is None


async def session_grant_find(user: AbstractBaseUser) -> SessionGrant:
    """Apply the rule to an authenticated, active user (one query unless a superuser)."""
    if getattr(user, "is_superuser", False):
        return SessionGrant(rule=RULE_SUPERUSER)
    rows = [row async for row in _rows_of(user)]
    return session_grant_choose(rows)


def session_grant_find_sync(user: AbstractBaseUser) -> SessionGrant:
    """The same, for sync views (the viewer page)."""
    if getattr(user, "is_superuser", False):
        return SessionGrant(rule=RULE_SUPERUSER)
    rows = list(_rows_of(user))
    return session_grant_choose(rows)


def _rows_of(user: AbstractBaseUser) -> QuerySet[AccessGrant]:
    """The user's own grant and their groups' (distinct: a user is in a group once)."""
    query = AccessGrant.objects.filter(Q(user=user) | Q(group__user=user))
    return query.select_related("user", "group").order_by("pk")


def session_grant_choose(rows: list[AccessGrant]) -> SessionGrant:
    """The rule over a non-superuser's rows: theirs, else their one group's, else nothing."""
    own = [row for row in rows if row.user_id is not None]
    groups = [row for row in rows if row.group_id is not None]
    if own:
        return _parsed(own[0], RULE_USER)
    if len(groups) == 1:
        return _parsed(groups[0], RULE_GROUP)
    if groups:
        owners = ", ".join(sorted(row.owner_name for row in groups))
        return SessionGrant(rule=None, refusal=GRANT_SEVERAL.format(owners=owners))
    return SessionGrant(rule=None, refusal=GRANT_NONE)


def _parsed(row: AccessGrant, rule: str) -> SessionGrant:
    try:
        grant = grant_parse(row.grant)
    except GrantMalformed as error:
        message = GRANT_STORED_MALFORMED.format(owner=row.owner_name, reason=error.message)
        return SessionGrant(rule=None, owner=row.owner_name, refusal=message)
    return SessionGrant(rule=rule, owner=row.owner_name, grant=grant)
