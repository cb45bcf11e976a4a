"""Garbage collection for a process that holds thousands of long-lived streams.

With the interpreter's defaults such a process ran full collections often under load,
each pausing every stream while it walked every live object (the benchmark's page says
how long). Freezing what start-up created (it lives as long as the process) and
collecting the young generation less often keeps objects that die young from being
promoted, so fewer full collections come due.
"""

from __future__ import annotations

import gc

# Allocations between young collections (the interpreter's default is 700): per-event
# objects mostly die before a collection sees them, instead of being promoted.
GC_YOUNG_THRESHOLD = 50_000


def gc_tune() -> None:
    """Freeze start-up's objects out of every later collection; collect young ones less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
