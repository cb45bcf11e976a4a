#!/usr/bin/env bash
# A self-signed TLS certificate for local use of docker/compose.yaml (the `tls` one-shot service):
# writes $TLS_DIR/fullchain.pem and privkey.pem, for nginx, unless both are there already, so a
# real certificate put in that volume (or folder) is never overwritten. Names: TLS_HOSTNAMES
# (comma separated; IP addresses become IP entries), else DJANGO_ALLOWED_HOSTS, else localhost.
# Uses the image's own Python and `cryptography` (a dependency of the service): no openssl needed.
set -euo pipefail

export TLS_DIR="${TLS_DIR:-/tls}"
export TLS_HOSTNAMES="${TLS_HOSTNAMES:-${DJANGO_ALLOWED_HOSTS:-localhost,127.0.0.1}}"
export TLS_DAYS="${TLS_DAYS:-365}"

if [[ -s "$TLS_DIR/fullchain.pem" && -s "$TLS_DIR/privkey.pem" ]]; then
  echo "tls: keeping the certificate in $TLS_DIR"
  exit 0
fi
mkdir -p "$TLS_DIR"
exec python - <<'PY'
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

folder = Path(os.environ["TLS_DIR"])
names = [n.strip().strip("[]") for n in os.environ["TLS_HOSTNAMES"].split(",")]
names = [n.lstrip(".") for n in names if n and n != "*"]  # ALLOWED_HOSTS' ".example.com" means the domain
entries = []
for name in names:
    try:
        entries.append(x509.IPAddress(ipaddress.ip_address(name)))
    except ValueError:
        entries.append(x509.DNSName(name))
key = ec.generate_private_key(ec.SECP256R1())
subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localhost")])
now = datetime.datetime.now(datetime.UTC)
certificate = (
    x509.CertificateBuilder()
    .subject_name(subject).issuer_name(subject)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=int(os.environ["TLS_DAYS"])))
    .add_extension(x509.SubjectAlternativeName(entries or [x509.DNSName("localhost")]), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
private = folder / "privkey.pem"
private.touch(mode=0o600)
private.write_bytes(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
))
(folder / "fullchain.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
print(f"tls: wrote a self-signed certificate for {', '.join(names)} to {folder} "
      f"(valid {os.environ['TLS_DAYS']} days)")
PY
