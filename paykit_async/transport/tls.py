"""Client certificates and the one SSL context a transport builds from them.

Server certificate verification is always on; there is deliberately no switch to turn it off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import ValidationError
from ..redaction import path_for_message

__all__ = ["ClientCertificate", "build_ssl_context", "is_loopback_url"]

StrPath = str | os.PathLike[str]


@attrs.frozen(kw_only=True)
class ClientCertificate:
    """A merchant API certificate (WeChat Pay ``apiclient_cert``) and its private key.

    The key is kept in memory as PEM, encrypted when a password was given; ``repr`` shows only the
    certificate subject, never key material or passwords.
    """

    cert_pem: bytes = attrs.field(repr=False)
    key_pem: bytes = attrs.field(repr=False)
    password: bytes | None = attrs.field(default=None, repr=False)
    subject: str = ""

    @classmethod
    def from_pem(
        cls, cert_file: StrPath, key_file: StrPath, password: str | bytes | None = None
    ) -> ClientCertificate:
        """Load ``apiclient_cert.pem`` and ``apiclient_key.pem`` (the key may be encrypted)."""
        cert_pem = _read(cert_file, "cert_file")
        key_pem = _read(key_file, "key_file")
        pw = password.encode() if isinstance(password, str) else password
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            serialization.load_pem_private_key(key_pem, password=pw)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                "could not load the certificate or its key (wrong format or wrong password)",
                field="cert",
            ) from _hide(exc)
        return cls(cert_pem=cert_pem, key_pem=key_pem, password=pw, subject=cert.subject.rfc4514_string())

    @classmethod
    def from_pkcs12(cls, path: StrPath, password: str | bytes | None = None) -> ClientCertificate:
        """Load ``apiclient_cert.p12``. WeChat's password is the merchant id (``mch_id``)."""
        data = _read(path, "p12_file")
        pw = password.encode() if isinstance(password, str) else password
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, pw)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                "could not open the PKCS#12 file (wrong password or not PKCS#12)", field="cert"
            ) from _hide(exc)
        if key is None or cert is None:
            raise ValidationError("the PKCS#12 file holds no certificate and key", field="cert")
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(extra or [])])
        # Keep the key encrypted in memory under a fresh random password; it is only ever
        # decrypted by OpenSSL inside load_cert_chain.
        memory_pw = secrets.token_urlsafe(24).encode()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(memory_pw),
        )
        return cls(
            cert_pem=chain,
            key_pem=key_pem,
            password=memory_pw,
            subject=cert.subject.rfc4514_string(),
        )

    def load_into(self, context: ssl.SSLContext) -> None:
        """Install this certificate into ``context`` via private temp files removed at once."""
        with _private_file(self.cert_pem) as cert_path, _private_file(self.key_pem) as key_path:
            try:
                context.load_cert_chain(cert_path, key_path, password=self.password or None)
            except ssl.SSLError as exc:
                raise ValidationError(
                    "the certificate does not match its key, or the key password is wrong",
                    field="cert",
                ) from _hide(exc)


def build_ssl_context(
    certificate: ClientCertificate | None = None, ca_file: StrPath | None = None
) -> ssl.SSLContext:
    """Build the single verifying SSL context of a transport (~tens of ms: never per request).

    Trust anchors are certifi's bundle plus ``ca_file`` when given. Hostname checking and
    certificate verification stay on.
    """
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=os.fspath(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValidationError(
                f"cannot load ca_file {path_for_message(ca_file)}: {exc}", field="ca_file"
            ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        certificate.load_into(context)
    return context


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine: ``127.0.0.0/8``, ``::1`` or ``localhost``.

    Only such a host may be reached without TLS where a provider requires it (a simulator on
    this machine); every other host needs ``https://``.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path: StrPath, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror
    # Raised outside the except block: the OSError, whose filename may be key material given as a
    # path, stays out of the chain.
    raise ValidationError(f"cannot read {path_for_message(path)}: {reason}", field=what)


def _hide(exc: BaseException) -> ValidationError:
    """Replace a library exception (which could echo a password) by a bland cause."""
    return ValidationError(type(exc).__name__)


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="paykit-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
