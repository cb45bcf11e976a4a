"""One test Kafka broker (scripts.servers) with the secured listeners managed Kafka offers:

- `SCRAM`: SASL_SSL with SCRAM-SHA-512 (the user is created when the storage is formatted);
- `MTLS`: SSL that requires a client certificate signed by the test's CA;
- `OAUTH`: SASL_SSL with OAUTHBEARER and Kafka's default (unsecured-JWT) validator, which
  accepts the unsigned tokens of tests/support/token_endpoint.py that carry OAUTH_SCOPE.

One broker serves all three, so the tests of each start Kafka once. The plain listener stays
for the readiness probe, inter-broker traffic and test set-up (topics, producing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.servers import LOOPBACK, KafkaServer
from tests.support.certificates import KEYSTORE_PASSWORD

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTH_LOGIN = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
# The scope a token must carry for the OAUTH listener: a token without it is refused by the broker.
OAUTH_SCOPE = "kafka"


@dataclass
class SecuredKafkaServer(KafkaServer):
    scram_port: int = 0
    mtls_port: int = 0
    oauth_port: int = 0
    keystore: Path = Path()
    cafile: Path = Path()
    scram_user: str = "svc"
    scram_password: str = ""
    # A connection whose token (or session) is older than this must authenticate again: the
    # broker closes it otherwise, and the client reconnects with a fresh token.
    oauth_reauth_ms: int = 0

    def listener(self, name: str) -> str:
        port = {"scram": self.scram_port, "mtls": self.mtls_port, "oauth": self.oauth_port}[name]
        return f"{LOOPBACK}:{port}"

    def format_options(self) -> list[str]:
        return ["--add-scram", f"SCRAM-SHA-512=[name={self.scram_user},password={self.scram_password}]"]

    def _properties(self) -> str:
        settings = dict(line.split("=", 1) for line in super()._properties().splitlines() if line)
        secured = {"SCRAM": (self.scram_port, "SASL_SSL"), "MTLS": (self.mtls_port, "SSL"),
                   "OAUTH": (self.oauth_port, "SASL_SSL")}
        for name, (port, protocol) in secured.items():
            settings["listeners"] += f",{name}://{LOOPBACK}:{port}"
            settings["advertised.listeners"] += f",{name}://{LOOPBACK}:{port}"
            settings["listener.security.protocol.map"] += f",{name}:{protocol}"
        settings.update({
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": KEYSTORE_PASSWORD,
            "ssl.key.password": KEYSTORE_PASSWORD,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.cafile),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,OAUTHBEARER",
            "listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.scram.scram-sha-512.sasl.jaas.config": f"{SCRAM_LOGIN} required;",
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
            "listener.name.oauth.oauthbearer.sasl.jaas.config": (
                f'{OAUTH_LOGIN} required unsecuredLoginStringClaim_sub="broker" '
                f'unsecuredLoginListClaim_scope=",{OAUTH_SCOPE}" '
                f'unsecuredValidatorRequiredScope="{OAUTH_SCOPE}";'
            ),
        })
        if self.oauth_reauth_ms:
            settings["listener.name.oauth.oauthbearer.connections.max.reauth.ms"] = str(self.oauth_reauth_ms)
        return "".join(f"{key}={value}\n" for key, value in settings.items())
