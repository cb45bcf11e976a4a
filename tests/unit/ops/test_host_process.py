"""The process metrics of a host's live workers, summed."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, ProcessCollector

from crm_events.ops.host_process import HostProcessCollector, live_pids


def test_live_pids_are_the_owners_of_live_gauge_files(tmp_path):
    for name in ("gauge_livesum_11.db", "gauge_livemax_12.db", "counter_13.db", "gauge_mostrecent_14.db"):
        (tmp_path / name).touch()
    assert live_pids(tmp_path) == [11, 12]


def test_two_live_workers_add_up_and_a_dead_one_counts_nothing(tmp_path):
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").touch()
    registry = CollectorRegistry()
    registry.register(HostProcessCollector(str(tmp_path)))
    alone = registry.get_sample_value("process_open_fds")
    (tmp_path / f"gauge_livesum_{os.getppid()}.db").touch()
    (tmp_path / "gauge_livesum_999999999.db").touch()  # no such process
    own = CollectorRegistry()
    ProcessCollector(registry=own)
    parent = CollectorRegistry()
    ProcessCollector(pid=os.getppid, registry=parent)
    both = registry.get_sample_value("process_resident_memory_bytes")
    expected = own.get_sample_value("process_resident_memory_bytes") + parent.get_sample_value(
        "process_resident_memory_bytes")
    assert alone is not None and alone > 0
    assert abs(both - expected) <= 0.05 * expected  # the memory may move between the readings
    assert registry.get_sample_value("process_max_fds") == min(
        own.get_sample_value("process_max_fds"), parent.get_sample_value("process_max_fds"))
