"""KafkaServer's choices made before any JVM runs: which release, on which data."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.servers import KAFKA_OLDEST_VERSION, KAFKA_VERSION, KafkaServer, free_port
from scripts.servers.base import KAFKA_DATA_OF_ANOTHER_VERSION


def formatted_by(data_dir: Path, version: str) -> Path:
    """A data dir as a broker of `version` leaves it."""
    (data_dir / "kraft-logs").mkdir(parents=True)
    (data_dir / "kraft-logs" / "meta.properties").write_text("version=1\n")
    (data_dir / "kafka.version").write_text(f"{version}\n")
    return data_dir


@pytest.mark.parametrize(("found", "wanted"), [(KAFKA_VERSION, KAFKA_OLDEST_VERSION),
                                               (KAFKA_OLDEST_VERSION, KAFKA_VERSION)])
def test_a_broker_refuses_data_another_release_formatted_before_it_starts(tmp_path, found, wanted):
    data_dir = formatted_by(tmp_path / "kafka", found)
    server = KafkaServer(free_port(), free_port(), data_dir, version=wanted)
    with pytest.raises(RuntimeError) as refused:
        server.start(timeout=5)
    assert str(refused.value) == KAFKA_DATA_OF_ANOTHER_VERSION.format(
        data_dir=data_dir.resolve(), found=found, wanted=wanted
    )
    assert server.pid is None
    assert not (data_dir / "server.properties").exists()


def test_the_default_release_is_the_newest():
    assert KafkaServer(1, 2, Path("unused")).version == KAFKA_VERSION
