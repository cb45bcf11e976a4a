"""Finding the streams an event matches without visiting the others.

A CRM audience is mostly filtered (each rep their own deals, each team its kinds), so
asking every stream about every event costs as much per event as there are streams.
The hub indexes its in-sync streams instead, per topic, by one condition each of their
filters cannot match without (its `Anchor`, see core/filters.py): a key, a `where`
path's value (each path read once per event, whatever the number of streams using
it), a kind (the event type and each prefix before a dot), a partition. An event then
looks up only the streams that may match, and each of those is checked with its own
filter's `matches`, the one definition of a match, shared with replays. Streams with
no filter at all take every event (EVERYONE): no check, one shared frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from crm_events.core.filters import Anchor, AnchorKind, FieldMatch, kind_prefixes, payload_key_form

# The tags of an event's lookups, named once for the per-event path.
KEY, KIND, PARTITION = AnchorKind.KEY, AnchorKind.KIND, AnchorKind.PARTITION
EVERYONE = ("everyone",)  # no filter; canaries hidden
EVERYONE_AND_CANARIES = ("everyone", "canaries")
ALWAYS = ("always",)  # a candidate for every event


class Indexed(Protocol):
    topics: tuple[str, ...]

    @property
    def event_filter(self) -> Any: ...


S = TypeVar("S", bound=Indexed)  # the hub's own subscriber type, handed back as it was put in


def anchor_of(subscriber: Indexed) -> Anchor:
    anchor = getattr(subscriber.event_filter, "anchor", None)
    return anchor() if anchor is not None else Anchor(AnchorKind.ALL)


def groups_of(anchor: Anchor) -> list[tuple[Any, ...]]:
    """The group keys a stream with this anchor is listed under."""
    if anchor.kind == AnchorKind.EVERYONE:
        return [EVERYONE_AND_CANARIES if anchor.canaries else EVERYONE]
    if anchor.kind == AnchorKind.ALL:
        return [ALWAYS]
    if anchor.kind == AnchorKind.NOTHING:
        return []
    if anchor.kind == AnchorKind.WHERE:
        assert anchor.field is not None
        return [(AnchorKind.WHERE, anchor.field.path, value) for value in anchor.values]
    return [(anchor.kind, value) for value in anchor.values]


class TopicIndex(Generic[S]):
    """The in-sync streams of one topic, grouped by anchor."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], set[S]] = {}
        self.fields: dict[tuple[str, ...], FieldMatch] = {}  # the `where` paths some group uses
        self._field_uses: Counter[tuple[str, ...]] = Counter()
        self.size = 0

    def add(self, subscriber: S, anchor: Anchor) -> None:
        for group in groups_of(anchor):
            self.groups.setdefault(group, set()).add(subscriber)
        if anchor.kind == AnchorKind.WHERE and anchor.field is not None:
            self.fields.setdefault(anchor.field.path, anchor.field)
            self._field_uses[anchor.field.path] += 1
        self.size += 1

    def discard(self, subscriber: S, anchor: Anchor) -> None:
        for group in groups_of(anchor):
            members = self.groups.get(group)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del self.groups[group]
        if anchor.kind == AnchorKind.WHERE and anchor.field is not None:
            self._field_uses[anchor.field.path] -= 1
            if self._field_uses[anchor.field.path] <= 0:
                del self._field_uses[anchor.field.path], self.fields[anchor.field.path]
        self.size -= 1

    def candidates(self, payload: dict[str, Any]) -> set[S]:
        """The filtered streams that may match `payload`: a superset of those that do."""
        groups = self.groups
        found: set[S] = set()
        for group in self._lookups(payload):
            members = groups.get(group)
            if members:
                found |= members
        return found

    def _lookups(self, payload: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        yield ALWAYS
        yield (KEY, payload_key_form(payload))
        yield (PARTITION, payload.get("partition"))
        event_type = payload.get("type")
        if event_type is not None:
            for kind in kind_prefixes(event_type):
                yield (KIND, kind)
        value = payload.get("value")
        for path, field in self.fields.items():  # each path read once, for every stream using it
            yield (AnchorKind.WHERE, path, field.text_in(value))

    def unchecked(self, *, canary: bool) -> Iterator[S]:
        """The streams with no filter that take this event (canaries only if they asked)."""
        if not canary:
            yield from self.groups.get(EVERYONE, ())
        yield from self.groups.get(EVERYONE_AND_CANARIES, ())


class SubscriberIndex(Generic[S]):
    """Every in-sync stream of a hub, indexed per topic by its anchor."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicIndex[S]] = {}
        self._anchors: dict[S, Anchor] = {}

    def __len__(self) -> int:
        return len(self._anchors)

    def __contains__(self, subscriber: object) -> bool:
        return subscriber in self._anchors

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._anchors))

    def add(self, subscriber: S) -> None:
        anchor = self._anchors[subscriber] = anchor_of(subscriber)
        for topic in subscriber.topics:
            self.topics.setdefault(topic, TopicIndex[S]()).add(subscriber, anchor)

    def discard(self, subscriber: S) -> None:
        anchor = self._anchors.pop(subscriber, None)
        if anchor is None:
            return
        for topic in subscriber.topics:
            index = self.topics[topic]
            index.discard(subscriber, anchor)
            if not index.size:
                del self.topics[topic]

    def matching(
        self, payload: dict[str, Any], *, canary: bool, failed: Callable[[Any], None] = lambda _: None
    ) -> Iterator[S]:
        """Exactly the streams whose filter matches `payload`; those with none need no check.
        A filter that raises is reported to `failed` and the others are still asked."""
        index = self.topics.get(payload["topic"])
        if index is None:
            return
        yield from index.unchecked(canary=canary)
        for subscriber in index.candidates(payload):
            try:
                matched = subscriber.event_filter.matches(payload)
            except Exception:  # noqa: BLE001 - one stream's filter is that stream's problem
                failed(subscriber)
                continue
            if matched:
                yield subscriber
