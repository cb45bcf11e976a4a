"""The tests marked `kafka_oldest` really run on two releases of Kafka, not twice on one."""

from __future__ import annotations

import pytest

from scripts.servers import KafkaServer

STARTED_AS = "INFO Kafka version: "


@pytest.mark.kafka_oldest
def test_each_broker_runs_the_release_it_was_asked_for(kafka: KafkaServer, kafka_version: str) -> None:
    # Kafka names its release once at start, at INFO: a broker whose log config it could not
    # read (3.9's jars cannot parse YAML) would log errors only, and this line would be missing.
    started_as = [line for line in kafka.log_file.read_text().splitlines() if STARTED_AS in line]
    assert started_as, f"no '{STARTED_AS}' line in {kafka.log_file}"
    assert started_as[-1].split(STARTED_AS)[1].split()[0] == kafka_version
