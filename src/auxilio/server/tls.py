"""A self-signed certificate for the server's host names, made once and kept in the data dir.

Browsers give WebCrypto, WebCodecs and getUserMedia only to secure contexts: `http://127.0.0.1`
is one, `http://some-lan-host` is not. `auxilio serve --tls-self-signed` makes HTTPS a single
flag for a LAN or a test bed: an ECDSA P-256 certificate for localhost, 127.0.0.1, ::1, the
machine's host name and any `--tls-name`, valid one year, kept as `<data_dir>/tls/cert.pem` and
`key.pem` (0600) and reused while it is valid and names them all. Its SHA-256 fingerprint is
printed so that people can compare it with what their browser shows before trusting it. A public
deployment should use a certificate from a CA (`--tls-cert`/`--tls-key`, or a reverse proxy).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SelfSigned:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex (as browsers show it)
    names: tuple[str, ...]
    created: bool  # False: an existing certificate was reused


def default_names(extra: Iterable[str] = ()) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]
    return list(dict.fromkeys(n.strip().lower() for n in names if n and n.strip()))


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def fingerprint_of(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _usable(cert_path: Path, names: list[str], now: dt.datetime) -> x509.Certificate | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    have = {str(v).lower() for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    if not wanted <= have or cert.not_valid_after_utc - RENEW_BEFORE < now:
        return None
    return cert


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def ensure_self_signed(
    data_dir: Path, names: Iterable[str], *, now: dt.datetime | None = None
) -> SelfSigned:
    """The data dir's certificate, made (or made again) when missing, expiring within 30 days
    or not naming every one of ``names``."""
    now = now or dt.datetime.now(dt.UTC)
    wanted = list(dict.fromkeys(names))
    folder = data_dir / "tls"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    existing = _usable(cert_path, wanted, now) if key_path.exists() else None
    if existing is not None:
        return SelfSigned(cert_path, key_path, fingerprint_of(existing), tuple(wanted), False)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0] if wanted else
                                            "auxilio"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Auxilio (self-signed)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_san(wanted)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return SelfSigned(cert_path, key_path, fingerprint_of(cert), tuple(wanted), True)
