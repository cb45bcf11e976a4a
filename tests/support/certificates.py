"""A throwaway certificate authority for secured-Kafka tests: the broker's certificate (a PKCS12
keystore for Java), client certificates (PEM, the key optionally encrypted), one of them expired.

Made with `cryptography` (already a dependency) rather than openssl's CLI: an expired
certificate needs a validity period in the past, which Debian's openssl 3.0 `x509 -req` cannot set.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEYSTORE_PASSWORD = "keystore-secret"
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class ClientCertificate:
    certfile: Path
    keyfile: Path
    key_password: str = ""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestAuthority:
    """A CA in `directory`: `ca.pem` is what clients and the broker trust."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name("aetherlink test CA")
        self._certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cafile = directory / "ca.pem"
        self.cafile.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self, key: ec.EllipticCurvePrivateKey, common_name: str, *, server: bool,
        not_before: datetime.datetime, not_after: datetime.datetime,
    ) -> x509.Certificate:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self._certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def broker_keystore(self) -> Path:
        """The broker's key and certificate (127.0.0.1, localhost) as PKCS12, KEYSTORE_PASSWORD."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = self._issue(
            key, "localhost", server=True, not_before=now - DAY, not_after=now + 30 * DAY,
        )
        path = self.directory / "broker.p12"
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            b"broker", key, certificate, [self._certificate],
            serialization.BestAvailableEncryption(KEYSTORE_PASSWORD.encode()),
        ))
        return path

    def client(self, name: str, *, key_password: str = "", expired: bool = False) -> ClientCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        window = (now - 30 * DAY, now - DAY) if expired else (now - DAY, now + 30 * DAY)
        certificate = self._issue(key, name, server=False, not_before=window[0], not_after=window[1])
        certfile, keyfile = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.encode()) if key_password
            else serialization.NoEncryption()
        )
        keyfile.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption,
        ))
        return ClientCertificate(certfile, keyfile, key_password)
