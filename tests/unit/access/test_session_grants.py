"""The rule for session users' grants (access/session_grants.py), their principal, and the admin form."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import AsyncRequestFactory
from hypothesis import example, given
from hypothesis import strategies as st

from crm_events.access import auth, session_grants
from crm_events.access.grant_store import OWNER_REQUIRED, AccessGrant
from crm_events.access.grants import (
    GRANT_EMPTY,
    GRANT_NOT_OBJECT,
    GRANT_PARAMETER_UNKNOWN,
    GRANT_VALUES_INVALID,
    grant_parse,
)
from crm_events.access.revocation import session_tag
from crm_events.core.close_reasons import CloseReason
from crm_events.core.filter_query import MAX_VALUE_CHARS, MAX_VALUES
from crm_events.exceptions import StreamForbidden

pytestmark = pytest.mark.django_db
factory = AsyncRequestFactory()


@pytest.fixture(autouse=True)
def memory_layer(settings):
    """Grant changes send access messages (test_revocation.py): here, into an in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SALES = {"topic": ["crm.deals"], "kind": ["deal"], "where": ["tenant_id:acme"]}
SUPPORT = {"kind": ["ticket"]}


def member_of(*groups: Group, name: str = "ana", **flags) -> User:
    user = User.objects.create_user(name, password="pw", **flags)
    user.groups.add(*groups)
    return user


def group_with(name: str, grant: dict | None) -> Group:
    group = Group.objects.create(name=name)
    if grant is not None:
        AccessGrant.objects.create(group=group, grant=grant)
    return group


def test_a_superuser_reads_everything_without_a_grant():
    found = session_grants.session_grant_find_sync(member_of(is_superuser=True, is_staff=True))
    assert (found.rule, found.grant, found.refused) == (session_grants.RULE_SUPERUSER, None, False)


@pytest.mark.parametrize("flags", [{}, {"is_staff": True}])
def test_no_grant_grants_nothing_staff_included(flags):
    found = session_grants.session_grant_find_sync(member_of(group_with("plain", None), **flags))
    assert (found.refused, found.refusal) == (True, session_grants.GRANT_NONE)


def test_the_one_group_grant_applies():
    user = member_of(group_with("sales", SALES), group_with("x", None))
    found = session_grants.session_grant_find_sync(user)
    assert (found.rule, found.owner) == (session_grants.RULE_GROUP, "group:sales")
    assert found.grant == grant_parse(SALES)


def test_several_group_grants_without_one_of_the_users_own_are_refused():
    user = member_of(group_with("sales", SALES), group_with("support", SUPPORT))
    found = session_grants.session_grant_find_sync(user)
    assert found.refusal == session_grants.GRANT_SEVERAL.format(owners="group:sales, group:support")
    AccessGrant.objects.create(user=user, grant=SUPPORT)  # the user's own replaces the groups'
    found = session_grants.session_grant_find_sync(user)
    assert (found.rule, found.owner) == (session_grants.RULE_USER, "user:ana")
    assert found.grant == grant_parse(SUPPORT)


def test_a_stored_grant_that_does_not_parse_grants_nothing():
    AccessGrant.objects.create(group=(group := group_with("sales", None)), grant={})  # saved around the form
    found = session_grants.session_grant_find_sync(member_of(group))
    message = session_grants.GRANT_STORED_MALFORMED.format(owner="group:sales", reason=GRANT_EMPTY)
    assert found.refusal == message


async def session_request(user: User):
    request = factory.get("/crm-events")
    request.session = SessionStore()
    await request.session.acreate()

    async def logged_in():
        return user

    request.auser = logged_in
    return request


@pytest.fixture
def session_mode(settings):
    settings.SSE_AUTH_MODE = "session"
    return settings


@pytest.mark.django_db(transaction=True)  # async: its queries run outside the test's transaction
async def test_the_session_principal_carries_the_grant_its_owner_expiry_and_session(session_mode):
    group = await Group.objects.acreate(name="sales")
    await AccessGrant.objects.acreate(group=group, grant=SALES)
    user = await User.objects.acreate(username="ana")
    await user.groups.aadd(group)
    request = await session_request(user)
    principal = await auth.stream_principal(request)
    assert principal.subject == "user:ana"
    assert (principal.grant, principal.grant_owner) == (grant_parse(SALES), "group:sales")
    assert principal.allowed_topics == frozenset({"crm.deals"})
    assert principal.allowed_kinds == frozenset({"deal"})
    stored = await Session.objects.aget(session_key=request.session.session_key)
    assert principal.expires_at == stored.expire_date.timestamp()  # the row's: not renewed by a request
    assert principal.expiry_reason == CloseReason.SESSION_EXPIRED
    assert principal.session == session_tag(request.session.session_key) and principal.session
    assert request.session.session_key not in principal.session  # hashed: a key is a credential


@pytest.mark.django_db(transaction=True)
async def test_a_session_user_without_a_grant_is_refused_with_the_reason(session_mode):
    request = await session_request(await User.objects.acreate(username="ana", is_staff=True))
    with pytest.raises(StreamForbidden) as caught:
        await auth.stream_principal(request)
    assert (caught.value.status, caught.value.message) == (403, session_grants.GRANT_NONE)


# --- the admin form -----------------------------------------------------------------------------

ADD = "/admin/crm_events/accessgrant/add/"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        ('{"kind": []}', GRANT_VALUES_INVALID.format(name="kind", most=MAX_VALUES, longest=MAX_VALUE_CHARS)),
        ('"deal"', GRANT_NOT_OBJECT),
        ('{"where": ["tenant_id"]}', None),  # the query's own parser's message, whatever it says
        ('{"tenant": ["acme"]}', GRANT_PARAMETER_UNKNOWN.format(name="tenant")),
    ],
)
def test_the_admin_form_shows_why_a_grant_is_refused(admin_client, grant, message):
    group = Group.objects.create(name="sales")
    answer = admin_client.post(ADD, {"group": group.pk, "grant": grant})
    assert answer.status_code == 200  # the form again, with the error under the field
    errors = answer.context["adminform"].form.errors["grant"]
    assert errors == [message] if message else errors[0].startswith("grant parameter 'where': ")
    assert not AccessGrant.objects.exists()


def test_the_admin_form_wants_exactly_one_owner(admin_client):
    user, group = User.objects.create_user("ana"), Group.objects.create(name="sales")
    for owners in ({}, {"user": user.pk, "group": group.pk}):
        answer = admin_client.post(ADD, {**owners, "grant": '{"kind": ["deal"]}'})
        assert answer.status_code == 200
        assert answer.context["adminform"].form.non_field_errors() == [OWNER_REQUIRED]
    assert admin_client.post(ADD, {"group": group.pk, "grant": '{"kind": ["deal"]}'}).status_code == 302
    assert AccessGrant.objects.get().grant == {"kind": ["deal"]}


# --- the rule over any set of rows ----------------------------------------------------------------

VALID = [{"kind": ["deal"]}, {"where": ["tenant_id:acme"]}, {"topic": ["crm.deals"], "partition": ["0"]}]
INVALID = [{}, {"kind": []}, {"tenant": ["acme"]}, ["deal"], "deal", None, {"partition": ["x"]}]


ABSENT = object()  # no row (a row's grant may itself be null)


@given(
    own=st.sampled_from([ABSENT, *VALID, *INVALID]),
    groups=st.lists(st.sampled_from(VALID + INVALID), max_size=4),
)
@example(own=ABSENT, groups=[None])
def test_the_rule_grants_one_parsed_row_or_refuses_with_a_reason(own, groups):
    """Unsaved rows, as the query returns them: whatever they hold, the outcome is one row's own
    grant, parsed, or a refusal that says why; never a mix, never 'no restriction'."""
    rows = [AccessGrant(user=User(pk=1, username="ana"), grant=own)] if own is not ABSENT else []
    rows += [AccessGrant(group=Group(pk=i + 1, name=f"g{i}"), grant=g) for i, g in enumerate(groups)]
    found = session_grants.session_grant_choose(rows)
    chosen = own if own is not ABSENT else (groups[0] if len(groups) == 1 else ABSENT)
    if chosen is ABSENT:
        owners = ", ".join(f"group:g{i}" for i in range(len(groups)))
        several = session_grants.GRANT_SEVERAL.format(owners=owners)
        assert found.refused and found.refusal == (several if groups else session_grants.GRANT_NONE)
    elif chosen in VALID:
        assert (found.refused, found.grant) == (False, grant_parse(chosen))
        assert found.rule == (session_grants.RULE_USER if own is not ABSENT else session_grants.RULE_GROUP)
    else:
        assert found.refused and found.grant is None
        assert found.refusal.startswith(f"this user's stream grant ({found.owner}) is not a valid grant: ")
