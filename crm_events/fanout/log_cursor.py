"""Where the hub stands in the positions log, when its positions are exactly the log's.

A version 2 resume id names a point in the positions log, and is only given when the
hub's positions are what the log says at that point: the cursor keeps the log's view of
every partition beside the hub's own and knows where they differ. Batches applied in
their log order keep both in step. Whatever the log cannot account for (an unnumbered
batch, a repair from Kafka, a partition added, gone or started over, a consumer's snapshot
behind what the hub passed on) shows as a difference, and until it is settled the hub's
ids name the point and the few partitions that differ (version 4). A batch number
skipped that cannot be read back, or no snapshot yet, leaves the view unknown: then, until
it is rebuilt, ids spell every position out (version 1). So a short id is never wrong; at
worst, for a while, an id is long.

The view is rebuilt by reading the log (`rebase`), or at once from a batch whose
snapshot covers every partition. Batches that arrive during a rebase are kept and
applied after it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from crm_events.core.position_log import Amended, LogPoint, LogState
from crm_events.core.positions import Position

logger = logging.getLogger(__name__)

Resolve = Callable[[LogPoint, Iterable[Position]], Awaitable[dict[Position, int] | None]]


@dataclass
class _Pending:
    """A batch applied by the hub while the view was being rebuilt."""

    batch: int
    snapshot: dict[Position, int] | None
    passed: list[tuple[Position, int]] = field(default_factory=list)


class LogCursor:
    def __init__(self, positions: dict[Position, int], served: Iterable[str]) -> None:
        self.positions = positions  # the hub's own, read, never written
        self.served = frozenset(served)
        self.view = LogState()
        self.based = False  # whether `view` is known
        self.applied = -1  # the last batch applied to `view`
        self.current: LogPoint | None = None
        self.mismatched: set[Position] = set()
        self.latest_seen: int | None = None
        self._batch: int | None = None  # the batch being applied to `view`, in its log order
        self._open = False  # between batch_begin and batch_end
        self._pending: list[_Pending] | None = None  # while a rebase reads the log
        self._pending_open: _Pending | None = None

    # --- what the hub tells it ----------------------------------------------------

    def batch_begin(self, numbered: tuple[int, dict[Position, int] | None] | None) -> None:
        self._batch, self._pending_open, self._open = None, None, True
        if numbered is None:
            return  # not in the log (yet): what its records move shows as differences
        batch, snapshot = numbered
        self.latest_seen = batch if self.latest_seen is None else max(self.latest_seen, batch)
        if self._pending is not None:
            self._pending_open = _Pending(batch, snapshot)
            self._pending.append(self._pending_open)
        elif self.based and batch == self.applied + 1:
            self._batch = batch
            if snapshot:
                self.view.snapshot_apply(snapshot)
                self.compare(snapshot)
        elif self.based and batch <= self.applied:
            return  # already in the view: only the hub's positions may move, and are compared
        elif snapshot is not None and set(self.positions) <= snapshot.keys():
            self._base(LogState(dict(snapshot)), applied=batch - 1)
            self._batch = batch
        else:
            self.based = False

    def passed(self, position: Position, offset: int, segment: int | None) -> None:
        """An item of the current batch was passed on, or dropped as already passed."""
        if self._pending_open is not None:
            self._pending_open.passed.append((position, offset))
        elif self._batch is not None:
            if segment is None:
                self.based = False
            else:
                self.view.passed(position, offset)
                self.current = LogPoint(self._batch, segment, offset)
        self.compare((position,))

    def batch_end(self) -> None:
        if self._batch is not None and self.based:
            self.applied = self._batch
            self.current = LogPoint(self._batch)
        self._batch, self._pending_open, self._open = None, None, False

    def compare(self, positions: Iterable[Position]) -> None:
        """The hub's position (or the view) changed for these partitions."""
        for position in positions:
            differs = self.view.positions.get(position) != self.positions.get(position)
            if differs and position[0] in self.served:
                self.mismatched.add(position)
            else:
                self.mismatched.discard(position)

    @property
    def in_batch(self) -> bool:
        """Between `batch_begin` and `batch_end`: the hub is passing a batch on."""
        return self._open

    def point(self) -> LogPoint | None:
        """The hub's positions as a log point, or None while the log does not account for them."""
        if self.based and not self.mismatched:
            return self.current
        return None

    def amended(self, topics: Iterable[str], most: int) -> Amended | None:
        """The hub's positions in `topics` as a log point and at most `most` partitions where
        they differ from it; None if the log does not say or they differ in more."""
        if not self.based or self.current is None:
            return None
        wanted = frozenset(topics)
        differing = sorted(position for position in self.mismatched if position[0] in wanted)
        if len(differing) > most:
            return None
        return Amended(self.current, tuple((p, self.positions.get(p)) for p in differing))

    # --- rebuilding the view ------------------------------------------------------

    async def rebase(self, resolve: Resolve, log_end: Callable[[], Awaitable[int]]) -> bool:
        """Read the view from the log at the latest batch seen (or the log's end); True if based."""
        self._pending = []
        try:
            target = self.latest_seen if self.latest_seen is not None else await log_end() - 1
            state = await resolve(LogPoint(target), list(self.positions)) if target >= 0 else None
        except BaseException:
            self._pending = None
            raise
        pending, self._pending = self._pending, None
        if state is not None:
            based = self._pending_apply(LogState(state), target, pending)
        else:  # the log cannot say yet (empty, say): a batch that came meanwhile may say
            based = self._pending_apply(LogState(), -1, self._from_covering_snapshot(pending))
        if not based:
            return False
        last = self.applied
        if self._open and pending and pending[-1] is self._pending_open and pending[-1].batch == last:
            # The hub is in the middle of this batch: the rest of it goes to the view directly.
            self._batch, self.applied, self.current = last, last - 1, None
        self._pending_open = None
        return True

    def _from_covering_snapshot(self, pending: list[_Pending]) -> list[_Pending]:
        """The batches from the last one whose snapshot covers every partition, if any."""
        for index in range(len(pending) - 1, -1, -1):
            snapshot = pending[index].snapshot
            if snapshot is not None and set(self.positions) <= snapshot.keys():
                return pending[index:]
        return []

    def _pending_apply(self, view: LogState, applied: int, pending: list[_Pending]) -> bool:
        """Apply the batches that came during a rebase to `view` (known after `applied`) and base
        on it; False if one is missing between them."""
        if applied < 0 and not pending:
            return False
        if applied < 0:
            applied = pending[0].batch - 1
        for entry in pending:
            if entry.batch <= applied:
                continue
            if entry.batch != applied + 1:
                return False  # a batch missing since: another rebase
            if entry.snapshot:
                view.snapshot_apply(entry.snapshot)
            for position, offset in entry.passed:
                view.passed(position, offset)
            applied = entry.batch
        self._base(view, applied=applied)
        return True

    def _base(self, view: LogState, *, applied: int) -> None:
        self.view, self.based, self.applied = view, True, applied
        self.current = LogPoint(applied) if applied >= 0 else None
        self.mismatched.clear()
        self.compare(set(self.positions) | set(view.positions))
