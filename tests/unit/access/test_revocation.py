"""What sends an access message (access/revocation_signals.py), read back from a real in-memory layer."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, User

from crm_events.access.grant_store import AccessGrant
from crm_events.access.revocation import access_revoke, session_tag
from crm_events.core import messages as broadcast
from crm_events.core.close_reasons import CloseReason

pytestmark = pytest.mark.django_db
GRANT = {"kind": ["deal"]}


@pytest.fixture
def sent(settings, django_capture_on_commit_callbacks):
    """The access messages sent once the test's changes commit, in order."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = asyncio.run(_join(layer))
    messages: list[dict] = []

    def drain(callbacks) -> list[dict]:
        for callback in callbacks:
            callback()
        messages.extend(asyncio.run(_receive_all(layer, channel)))
        return messages

    return drain


async def _join(layer) -> str:
    channel = await layer.new_channel("test.")
    await layer.group_add(broadcast.BROADCAST_GROUP, channel)
    return channel


async def _receive_all(layer, channel) -> list[dict]:
    received = []
    while True:
        try:
            async with asyncio.timeout(0.2):
                received.append(await layer.receive(channel))
        except TimeoutError:
            return received


def named(messages: list[dict]) -> list[tuple[list[str], list[str], str]]:
    return [(m["subjects"], m["sessions"], m["reason"]) for m in messages]


CHANGED = CloseReason.GRANTS_CHANGED


def test_a_group_grant_saved_or_deleted_names_every_member(sent, django_capture_on_commit_callbacks):
    group = Group.objects.create(name="sales")
    for name in ("ana", "bo"):
        User.objects.create_user(name).groups.add(group)
    User.objects.create_user("cy")
    with django_capture_on_commit_callbacks() as callbacks:
        row = AccessGrant.objects.create(group=group, grant=GRANT)
        row.grant = {"kind": ["deal.won"]}
        row.save()
        row.delete()
    assert named(sent(callbacks)) == [(["user:ana", "user:bo"], [], CHANGED)] * 3


def test_a_grant_moved_to_another_owner_names_both(sent, django_capture_on_commit_callbacks):
    ana, bo = User.objects.create_user("ana"), User.objects.create_user("bo")
    row = AccessGrant.objects.create(user=ana, grant=GRANT)
    with django_capture_on_commit_callbacks() as callbacks:
        row = AccessGrant.objects.get(pk=row.pk)
        row.user = bo
        row.save()
    assert named(sent(callbacks)) == [(["user:ana", "user:bo"], [], CHANGED)]


def test_membership_and_account_changes_name_the_user_but_a_login_does_not(
    sent, django_capture_on_commit_callbacks
):
    group = Group.objects.create(name="sales")
    ana = User.objects.create_user("ana")
    with django_capture_on_commit_callbacks() as callbacks:
        ana.groups.add(group)
        group.user_set.remove(ana)
        ana.last_login = ana.date_joined
        ana.save(update_fields=["last_login"])  # what a login saves
        ana.first_name = "Ana"
        ana.save()  # nothing that changes what she reads
        ana.is_superuser = True
        ana.save()
        ana.set_password("new")
        ana.save(update_fields=["password"])
        ana.delete()
    assert named(sent(callbacks)) == [(["user:ana"], [], CHANGED)] * 5


def test_a_logout_names_its_session_hashed(sent, client, django_capture_on_commit_callbacks):
    ana = User.objects.create_user("ana", password="pw", is_staff=True)
    client.force_login(ana)
    key = client.session.session_key
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post("/admin/logout/").status_code == 200
    assert named(sent(callbacks)) == [([], [session_tag(key)], CloseReason.LOGGED_OUT)]


def test_an_unreachable_layer_is_logged_as_an_error_never_raised(settings, caplog):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:9"]}}}
    access_revoke(subjects=["user:ana"], sessions=[], reason=CHANGED)
    assert [r.levelname for r in caplog.records if r.name == "crm_events.access.revocation"] == ["ERROR"]
