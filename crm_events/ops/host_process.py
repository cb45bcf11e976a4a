"""The process metrics (`process_*`) of every live worker, summed: what the host's workers use.

In prometheus-client's multiprocess mode the process collector would describe only the worker
that answers the scrape. The live workers are the ones whose live-gauge files are in the
multiprocess directory (the supervisor removes a dead worker's); each is read from /proc as
the process collector reads itself. Counts add up (CPU seconds, memory, open files); the
limit on open files is the smallest, the start time the earliest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
SMALLEST = ("process_max_fds", "process_start_time_seconds")


def live_pids(directory: Path) -> list[int]:
    found = {int(match.group(1)) for path in directory.iterdir() if (match := LIVE_FILE.match(path.name))}
    return sorted(found)


def pid_of(pid: int) -> Callable[[], int]:
    return lambda: pid


class HostProcessCollector(Collector):
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, float] = {}
        for pid in live_pids(self.directory):
            for family in ProcessCollector(pid=pid_of(pid), registry=None).collect():
                families.setdefault(family.name, family)
                for sample in family.samples:
                    values[sample.name] = (
                        min(values.get(sample.name, sample.value), sample.value) if sample.name in SMALLEST
                        else values.get(sample.name, 0.0) + sample.value
                    )
        for name, family in families.items():
            summed = Metric(name, family.documentation, family.type)
            for sample in family.samples:
                summed.add_sample(sample.name, sample.labels, values[sample.name])
            yield summed
