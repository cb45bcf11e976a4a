"""Real Kafka (KRaft) and Redis as plain loopback processes, for the tests, the benchmark and
`make dev`: one module per server (kafka.py, redis.py, redis_sentinel.py), the supervised process
they share (process.py), the Kafka jars cache (kafka_jars.py) and its wire-protocol readiness
check (kafka_wire.py). `python -m scripts.servers up|down|status --state-dir DIR` runs them by hand.
Standard library only, so the CLI works from any Python 3.11."""

from scripts.servers.base import KAFKA_OLDEST_VERSION, KAFKA_VERSION, LOOPBACK, free_port
from scripts.servers.kafka import KafkaServer
from scripts.servers.kafka_jars import cache_dir, file_lock, kafka_jars_dir
from scripts.servers.redis import RedisServer
from scripts.servers.redis_sentinel import SentinelServer

__all__ = [
    "KAFKA_OLDEST_VERSION", "KAFKA_VERSION", "LOOPBACK", "KafkaServer", "RedisServer", "SentinelServer",
    "cache_dir", "file_lock", "free_port", "kafka_jars_dir",
]
