"""The security and operations side of a stream, in the shape the stream view needs.

Before the response: `stream_admit()` authenticates and checks every topic the
request can reach (its `topic=` values and the topics inside its resume id), and
`Admission.slot_take()` counts the stream against the limits, last; any refusal is
an `ApiError` for `error_response()`.
Around the body: `GuardedFilter` narrows the client's filter to what the principal
may read (and hides canaries unless asked), and `stream_config_for` ends the stream
at the credentials' expiry through the session's lifetime; the session releases the
slot when it ends.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from django.http import HttpRequest

from crm_events.access.auth import Principal, stream_principal
from crm_events.access.grants import StreamGrant
from crm_events.access.limits import StreamSlot, stream_slot_acquire
from crm_events.config import StreamConfig
from crm_events.core.canary import is_canary
from crm_events.core.filters import Anchor, AnchorKind, EventFilter, PayloadFilter, filters_and
from crm_events.core.tokens import ResumeTokenError, token_decode


def request_topics(request: HttpRequest, served: tuple[str, ...]) -> set[str]:
    """Every topic a stream request names: `topic=` values and the topics in its resume id.

    A resume id that does not decode is left to the stream request parser (a 400).
    """
    topics = set(request.GET.getlist("topic"))
    token = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    if token:
        with contextlib.suppress(ResumeTokenError):
            topics |= {topic for topic, _ in token_decode(token, served)}
    return topics


@dataclass(frozen=True, slots=True)
class Admission:
    principal: Principal
    readable: tuple[str, ...]  # the served topics this principal may read: the stream's default

    def slot_take(self, request: HttpRequest) -> StreamSlot:
        """Count the stream (raise `StreamLimitReached`); call it last, just before streaming."""
        return stream_slot_acquire(request, self.principal)


async def stream_admit(request: HttpRequest, *, served: tuple[str, ...]) -> Admission:
    """Authenticate and authorize every topic the request can reach; raise `ApiError`.

    Credentials that may read none of the served topics are refused here (403), never
    admitted onto an empty stream.
    """
    principal = await stream_principal(request)
    principal.topics_check(request_topics(request, served))
    return Admission(principal=principal, readable=principal.topics_readable(served))


@dataclass(frozen=True, slots=True)
class GuardedFilter:
    """The client's own filter, narrowed to what the principal may read, canaries hidden.

    The principal's grant is AND-ed with the client's filter once, here, so the hub indexes
    the stream by the narrowed filter's anchor and live, replayed and resumed events are all
    asked the same `matches`: no parameter the client sends can widen the grant.
    """

    inner: PayloadFilter
    principal: Principal
    show_canary: bool = False
    # Nothing to check but canaries: the usual stream, asked per event; set from the above.
    unfiltered: bool = field(init=False, default=False)
    # The client's filter AND the grant; None: no event can match both.
    effective: PayloadFilter | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        effective = _granted(self.inner, self.principal.grant)
        unfiltered = isinstance(effective, EventFilter) and effective.is_empty and self.principal.reads_all
        object.__setattr__(self, "effective", effective)
        object.__setattr__(self, "unfiltered", unfiltered)

    def matches(self, payload: dict[str, Any]) -> bool:
        if not self.show_canary and is_canary(payload):
            return False
        if self.unfiltered:
            return True
        if self.effective is None:  # frames the service makes itself still pass, as event_allowed says
            return payload.get("kind") != "domain_event"
        return self.principal.event_allowed(payload) and self.effective.matches(payload)

    def anchor(self) -> Anchor:
        """What the hub indexes this stream by; `matches` stays the one definition of a match."""
        kinds = self.principal.allowed_kinds
        if (kinds is not None and not kinds) or self.effective is None:
            # The credentials grant no event type, or the filters exclude all.
            return Anchor(AnchorKind.NOTHING)
        if self.unfiltered:
            return Anchor(AnchorKind.EVERYONE, canaries=self.show_canary)
        effective = self.effective
        anchor = effective.anchor() if isinstance(effective, EventFilter) else Anchor(AnchorKind.ALL)
        if anchor.kind == AnchorKind.ALL and kinds:
            return Anchor(AnchorKind.KIND, kinds)
        return anchor


@dataclass(frozen=True, slots=True)
class _BothFilters:
    """A grant's filter AND a client filter that is no `EventFilter` (indexed by the grant's)."""

    grant: EventFilter
    other: PayloadFilter

    def matches(self, payload: dict[str, Any]) -> bool:
        return self.grant.matches(payload) and self.other.matches(payload)

    def anchor(self) -> Anchor:
        return self.grant.anchor()


def _granted(inner: PayloadFilter, grant: StreamGrant | None) -> PayloadFilter | None:
    if grant is None:
        return inner
    if isinstance(inner, EventFilter):
        return filters_and(inner, grant.event_filter)
    return _BothFilters(grant.event_filter, inner)


def stream_config_for(principal: Principal, config: StreamConfig) -> StreamConfig:
    """The stream's config with its lifetime ending when the credentials stop being accepted
    (a token's exp plus the leeway: `Principal.expires_at`), or sooner by its own max lifetime."""
    left = principal.expires_in()
    if left is None:
        return config
    lifetime = max(0.001, left)
    if 0 < config.max_lifetime < lifetime:
        return config
    return replace(config, max_lifetime=lifetime, credentials_end=True)
