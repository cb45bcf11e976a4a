"""What ends a session user's open streams: their grant changing, or their logging out.

- an `AccessGrant` saved or deleted: its user, or every member of its group (and, when a row
  moved to another owner, the old one's too): `grants_changed`;
- a user added to or removed from groups, made or unmade superuser, deactivated, renamed,
  given a new password or deleted: `grants_changed` (any change, not only a shrinking one: a
  client resumes at once under its new grant, with nothing lost);
- a logout: the streams opened with that session: `logged_out`.
Session expiry needs no message: each stream ends itself when its session expires.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save, pre_delete, pre_save
from django.dispatch import receiver

from crm_events.access.grant_store import AccessGrant
from crm_events.access.revocation import access_revoke_on_commit, session_tag
from crm_events.core.close_reasons import CloseReason

User = get_user_model()
# A user's fields that change what they may read, or whether their other sessions stay valid
# (a new password ends them: Django checks a session's password hash on its next request).
# Not last_login, which every login saves.
USER_ACCESS_FIELDS = ("is_active", "is_superuser", "password", User.USERNAME_FIELD)


def user_subject(username: str) -> str:
    return f"user:{username}"


def grant_subjects(grant: AccessGrant, user_id: int | None, group_id: int | None) -> set[str]:
    if user_id is not None:
        names = User.objects.filter(pk=user_id).values_list(User.USERNAME_FIELD, flat=True)
        return {user_subject(name) for name in names}
    if group_id is not None:
        names = User.objects.filter(groups__pk=group_id).values_list(User.USERNAME_FIELD, flat=True)
        return {user_subject(name) for name in names}
    return set()


@receiver(post_init, sender=AccessGrant, dispatch_uid="crm_events_grant_loaded")
def grant_loaded(sender: Any, instance: AccessGrant, **kwargs: Any) -> None:
    # Who the row belonged to when loaded: a row moved to another owner ends the old one's streams too.
    instance.loaded_owner = (instance.user_id, instance.group_id)  # type: ignore[attr-defined]


@receiver(post_save, sender=AccessGrant, dispatch_uid="crm_events_grant_saved")
def grant_saved(sender: Any, instance: AccessGrant, **kwargs: Any) -> None:
    subjects = grant_subjects(instance, instance.user_id, instance.group_id)
    subjects |= grant_subjects(instance, *instance.loaded_owner)  # type: ignore[attr-defined]
    instance.loaded_owner = (instance.user_id, instance.group_id)  # type: ignore[attr-defined]
    access_revoke_on_commit(subjects=subjects, reason=CloseReason.GRANTS_CHANGED)


@receiver(pre_delete, sender=AccessGrant, dispatch_uid="crm_events_grant_deleted")
def grant_deleted(sender: Any, instance: AccessGrant, **kwargs: Any) -> None:
    # Before the delete: a group's members are still there to be named.
    subjects = grant_subjects(instance, instance.user_id, instance.group_id)
    access_revoke_on_commit(subjects=subjects, reason=CloseReason.GRANTS_CHANGED)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="crm_events_groups_changed")
def groups_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None,
                   **kwargs: Any) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups.add(...): one user
        subjects = {user_subject(instance.get_username())}
    elif action == "pre_clear":  # group.user_set.clear(): its members before
        subjects = {user_subject(u.get_username()) for u in instance.user_set.all()}
    else:  # group.user_set.add/remove(users...)
        names = User.objects.filter(pk__in=pk_set or ()).values_list(User.USERNAME_FIELD, flat=True)
        subjects = {user_subject(name) for name in names}
    access_revoke_on_commit(subjects=subjects, reason=CloseReason.GRANTS_CHANGED)


@receiver(pre_save, sender=User, dispatch_uid="crm_events_user_saving")
def user_saving(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and not set(update_fields) & set(USER_ACCESS_FIELDS):
        return
    if instance.pk is None:
        return
    before = User.objects.filter(pk=instance.pk).values(*USER_ACCESS_FIELDS).first()
    if before is not None and any(before[f] != getattr(instance, f) for f in USER_ACCESS_FIELDS):
        subject = user_subject(before[User.USERNAME_FIELD])
        access_revoke_on_commit(subjects={subject}, reason=CloseReason.GRANTS_CHANGED)


@receiver(post_delete, sender=User, dispatch_uid="crm_events_user_deleted")
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    subjects = {user_subject(instance.get_username())}
    access_revoke_on_commit(subjects=subjects, reason=CloseReason.GRANTS_CHANGED)


@receiver(user_logged_out, dispatch_uid="crm_events_logged_out")
def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    tag = session_tag(getattr(getattr(request, "session", None), "session_key", None))
    access_revoke_on_commit(sessions={tag} if tag else set(), reason=CloseReason.LOGGED_OUT)
