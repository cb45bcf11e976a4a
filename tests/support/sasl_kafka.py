"""A test Kafka broker (scripts.servers) that also listens with SASL_PLAINTEXT (mechanism PLAIN).

It keeps the plain listener (for the readiness probe, inter-broker traffic and test
set-up) and adds a client listener that only lets in `username`/`password`, so a
test can prove that every Kafka client of the service really authenticates.
"""

from __future__ import annotations

from dataclasses import dataclass

from scripts.servers import LOOPBACK, KafkaServer

PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass
class SaslKafkaServer(KafkaServer):
    sasl_port: int = 0
    username: str = "svc"
    password: str = ""

    @property
    def sasl_bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.sasl_port}"

    def _properties(self) -> str:
        settings = dict(line.split("=", 1) for line in super()._properties().splitlines() if line)
        sasl = f"SASL_PLAINTEXT://{LOOPBACK}:{self.sasl_port}"
        settings["listeners"] += f",{sasl}"
        settings["advertised.listeners"] += f",{sasl}"
        settings["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        settings["sasl.enabled.mechanisms"] = "PLAIN"
        settings["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] = "PLAIN"
        settings["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
            f'{PLAIN_LOGIN} required username="{self.username}" password="{self.password}" '
            f'user_{self.username}="{self.password}";'
        )
        return "".join(f"{key}={value}\n" for key, value in settings.items())
