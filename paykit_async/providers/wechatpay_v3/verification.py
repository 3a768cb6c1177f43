"""Which key verifies a signed reply or notification, and the verification itself.

WeChat names its key in ``Wechatpay-Serial``: the id of the WeChat Pay public key
(``PUB_KEY_ID_…``) or the serial number of a platform certificate. :class:`KeyRing` holds both
kinds and answers with a verifier, raising :class:`UnknownSerial` for a certificate serial it has
not downloaded yet (the client then refreshes its certificates once and tries again).
:func:`verify_signed` checks the Wechatpay-* headers of one message: all present, a timestamp
within ±300 s of now, not a ``WECHATPAY/SIGNTEST/`` probe, and a valid signature over
``timestamp\\nnonce\\nbody\\n``.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterable, Mapping

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from ...errors import SignatureError
from ...signing.rsa import Sha256WithRsaVerifier, reply_message

__all__ = [
    "MAX_CLOCK_OFFSET",
    "PROBE_PREFIX",
    "PUBLIC_KEY_ID_PREFIX",
    "KeyRing",
    "PlatformCertificate",
    "UnknownSerial",
    "lower_headers",
    "verify_signed",
]

#: Seconds a signed timestamp may differ from now (wechatpay-go ``FiveMinute``, wechatpay-php
#: ``MAXIMUM_CLOCK_OFFSET``).
MAX_CLOCK_OFFSET = 300
#: Signatures of WeChat's probe traffic, sent to check that merchants really verify.
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
#: Ids of WeChat Pay public keys start with this; certificate serials are hex.
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"

_MAX_SERIAL = 64
_MAX_NONCE = 64
_MAX_SIGNATURE = 1024


class UnknownSerial(SignatureError):
    """The message names a platform certificate this client has not downloaded (yet)."""

    def __init__(self, serial: str) -> None:
        super().__init__(f"signed with platform certificate {serial}, which this client does not know")
        self.serial = serial


@attrs.frozen(kw_only=True)
class PlatformCertificate:
    """One WeChat Pay platform certificate, decrypted and checked, ready to verify with.

    ``not_before`` / ``not_after`` are the certificate's validity in epoch seconds.
    """

    serial_no: str
    not_before: float
    not_after: float
    pem: bytes = attrs.field(repr=False)
    verifier: Sha256WithRsaVerifier = attrs.field(repr=False, eq=False)
    effective_time: str | None = None
    expire_time: str | None = None

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now <= self.not_after


class KeyRing:
    """The keys WeChat may sign with: one public key by id, platform certificates by serial.

    ``use_certificates`` says whether platform certificates are in use at all (no public key, or
    both during a migration). Thread-safe: certificates are swapped in whole under a lock.
    """

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey | None = None,
        public_key_id: str | None = None,
        use_certificates: bool = False,
    ) -> None:
        if (public_key is None) != (public_key_id is None):
            raise ValueError("public_key and public_key_id go together")
        self.public_key_id = public_key_id
        self._public = None if public_key is None else Sha256WithRsaVerifier(public_key)
        self.use_certificates = use_certificates
        self._lock = threading.Lock()
        self._certificates: dict[str, PlatformCertificate] = {}

    def __repr__(self) -> str:
        return f"<KeyRing public_key_id={self.public_key_id} certificates={sorted(self._certificates)}>"

    def with_certificates(self, certificates: Iterable[PlatformCertificate], *, now: float) -> KeyRing:
        """A copy that also holds ``certificates`` (to verify a certificate download with them)."""
        ring = KeyRing(use_certificates=True)
        ring.public_key_id = self.public_key_id
        ring._public = self._public
        ring.install([*self.certificates(), *certificates], now=now)
        return ring

    # -- certificates -------------------------------------------------------------------------

    def certificates(self) -> tuple[PlatformCertificate, ...]:
        with self._lock:
            return tuple(self._certificates.values())

    def install(self, certificates: Iterable[PlatformCertificate], *, now: float) -> None:
        """Add downloaded certificates (replacing same serials) and drop expired ones."""
        with self._lock:
            merged = dict(self._certificates)
            for certificate in certificates:
                merged[certificate.serial_no] = certificate
            self._certificates = {s: c for s, c in merged.items() if c.not_after >= now}

    def knows(self, serial: str) -> bool:
        with self._lock:
            return _normal(serial) in self._certificates

    def has_usable_certificate(self, now: float) -> bool:
        with self._lock:
            return any(c.valid_at(now) for c in self._certificates.values())

    def latest_expiry(self, now: float) -> float | None:
        """The end of validity of the longest-lived usable certificate, if any."""
        with self._lock:
            ends = [c.not_after for c in self._certificates.values() if c.valid_at(now)]
        return max(ends) if ends else None

    # -- lookup -------------------------------------------------------------------------------

    def verifier_for(self, serial: str, now: float) -> Sha256WithRsaVerifier:
        """The verifier of the key named ``serial``; a :class:`SignatureError` when none applies."""
        public_id = self.public_key_id
        if (
            public_id is not None
            and self._public is not None
            and hmac.compare_digest(serial.encode(), public_id.encode())
        ):
            return self._public
        if serial.startswith(PUBLIC_KEY_ID_PREFIX):
            raise SignatureError(
                f"signed with WeChat Pay public key {serial}, but this client is configured with "
                f"{public_id or 'no public key'}"
            )
        if not self.use_certificates:
            raise SignatureError(
                f"signed with platform certificate {serial}, but this client verifies with the WeChat Pay "
                "public key only (pass platform_certificates=True during a migration)"
            )
        with self._lock:
            certificate = self._certificates.get(_normal(serial))
        if certificate is None:
            raise UnknownSerial(serial)
        if not certificate.valid_at(now):
            raise SignatureError(f"platform certificate {serial} is not valid now (expired or not yet valid)")
        return certificate.verifier


def _normal(serial: str) -> str:
    return serial.strip().upper()


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased (a plain dict, a framework's header object or (name, value) pairs)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in items:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        lowered[key.lower()] = text
    return lowered


def verify_signed(
    headers: Mapping[str, str], body: bytes, keys: KeyRing, *, now: float, what: str = "reply"
) -> str:
    """Verify the Wechatpay-* headers (lower-case names) of a message; return the key's serial.

    Raises :class:`SignatureError` (:class:`UnknownSerial` for a certificate not downloaded yet).
    """
    timestamp = headers.get("wechatpay-timestamp", "").strip()
    nonce = headers.get("wechatpay-nonce", "").strip()
    signature = headers.get("wechatpay-signature", "").strip()
    serial = headers.get("wechatpay-serial", "").strip()
    if not (timestamp and nonce and signature and serial):
        raise SignatureError(
            f"the {what} is not signed (a Wechatpay-* header is missing): refusing to trust it"
        )
    if signature.startswith(PROBE_PREFIX):
        raise SignatureError(
            f"the {what} carries a WECHATPAY/SIGNTEST probe signature: refused, as it must be"
        )
    if (
        len(signature) > _MAX_SIGNATURE
        or len(nonce) > _MAX_NONCE
        or len(serial) > _MAX_SERIAL
        or not (nonce.isascii() and serial.isascii())
    ):
        raise SignatureError(f"the {what}'s Wechatpay-* headers are malformed")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureError(f"the {what}'s Wechatpay-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_CLOCK_OFFSET:
        raise SignatureError(
            f"the {what}'s Wechatpay-Timestamp is more than {MAX_CLOCK_OFFSET} s from now "
            "(a replayed message, or this machine's clock is wrong)"
        )
    verifier = keys.verifier_for(serial, now)
    if not verifier.verify(reply_message(timestamp, nonce, body), signature):
        raise SignatureError(f"the {what}'s signature does not verify: refusing to trust it")
    return serial
