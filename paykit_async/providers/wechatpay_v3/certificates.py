"""Platform certificates: download ``/v3/certificates``, decrypt, check, verify, and keep fresh.

Used when no WeChat Pay public key is configured (or beside one, during a migration). Nothing
happens in the client's constructor: the first operation (or notification) downloads the list.
Each certificate is decrypted with the APIv3 key (AEAD_AES_256_GCM — only WeChat and the merchant
know that key, so this authenticates the content), parsed, and checked against its announced
serial number; the reply itself must then verify with one of the certificates — the one being
downloaded on the first download, as the official downloaders do.

Refreshing is bounded: at most one download at a time (others wait for it); an unknown serial
triggers at most one download per ``min_interval`` seconds (a serial still unknown after it is
refused), and a failed download is not retried within that interval either, so a forged
``Wechatpay-Serial`` cannot make the client loop or hammer the endpoint. Certificates are
refreshed every ``refresh_every`` seconds and when the longest-lived one gets within
``expiry_margin`` of its end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ...errors import DecodeError, PaykitError, SignatureError
from ...signing.rsa import Sha256WithRsaVerifier
from ...transport.wire import WireResponse
from .aead import ALGORITHM, AeadAes256Gcm
from .parsing import json_object
from .verification import KeyRing, PlatformCertificate, UnknownSerial, verify_signed

__all__ = ["CertificatesUnavailable", "PlatformCertificates", "parse_certificates"]

T = TypeVar("T")

logger = logging.getLogger("paykit_async.wechatpay_v3")

_MAX_CERTIFICATES = 16
_MAX_SERIAL_CHARS = 40


class CertificatesUnavailable(PaykitError):
    """The platform certificates could not be downloaded, so nothing was sent.

    ``retryable`` follows the download's own failure (its ``__cause__``).
    """

    outcome_unknown = False

    def __init__(self, message: str, *, cause: PaykitError) -> None:
        super().__init__(message)
        self.retryable = cause.retryable
        self.__cause__ = cause


def _decrypt_one(item: object, cipher: AeadAes256Gcm, now: float) -> PlatformCertificate | None:
    if not isinstance(item, Mapping):
        raise DecodeError("a certificate entry is not an object")
    serial = item.get("serial_no")
    encrypted = item.get("encrypt_certificate")
    if not isinstance(serial, str) or not isinstance(encrypted, Mapping):
        raise DecodeError("a certificate entry lacks serial_no or encrypt_certificate")
    if not (0 < len(serial) <= _MAX_SERIAL_CHARS and all(c in "0123456789abcdefABCDEF" for c in serial)):
        raise DecodeError("a certificate serial_no is not a hex serial number")
    if encrypted.get("algorithm") != ALGORITHM:
        raise DecodeError(f"certificate {serial} is not encrypted with {ALGORITHM}")
    nonce, aad, ciphertext = (encrypted.get(k) for k in ("nonce", "associated_data", "ciphertext"))
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(aad, str | None):
        raise DecodeError(f"certificate {serial}'s encrypt_certificate is incomplete")
    pem = cipher.decrypt(nonce=nonce, associated_data=aad or "", ciphertext=ciphertext)
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SignatureError(
            f"certificate {serial} decrypted to something that is not a certificate"
        ) from None
    if certificate.serial_number != int(serial, 16):
        raise SignatureError(f"certificate {serial} carries another serial number")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError(f"certificate {serial} does not hold an RSA key")
    not_after = certificate.not_valid_after_utc.timestamp()
    if not_after < now:
        return None  # expired: of no use
    return PlatformCertificate(
        serial_no=serial.upper(),
        not_before=certificate.not_valid_before_utc.timestamp(),
        not_after=not_after,
        pem=pem,
        verifier=Sha256WithRsaVerifier(key),
        effective_time=_text(item.get("effective_time")),
        expire_time=_text(item.get("expire_time")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_certificates(
    response: WireResponse, *, cipher: AeadAes256Gcm, keys: KeyRing, now: float
) -> list[PlatformCertificate]:
    """The certificates of a 200 ``/v3/certificates`` reply, after verifying the reply with them
    (or with one already known). Raises :class:`DecodeError` or :class:`SignatureError`."""
    document = json_object(response.content, what="certificate list", after_send=False)
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise DecodeError("the certificate list holds no certificates", after_send=False)
    if len(data) > _MAX_CERTIFICATES:
        raise DecodeError(
            f"the certificate list holds more than {_MAX_CERTIFICATES} certificates", after_send=False
        )
    certificates = [c for c in (_decrypt_one(item, cipher, now) for item in data) if c is not None]
    # Verify the reply with the key it names: a downloaded certificate, one already pinned, or the
    # public key (in a migration).
    bootstrap = keys.with_certificates(certificates, now=now)
    verify_signed(response.headers, response.content, bootstrap, now=now, what="certificate list")
    return certificates


Downloader = Callable[[], Awaitable[list[PlatformCertificate]]]


class PlatformCertificates:
    """Keeps a :class:`KeyRing`'s platform certificates present and fresh, with bounded downloads."""

    def __init__(
        self,
        *,
        keys: KeyRing,
        download: Downloader,
        wall_clock: Callable[[], float],
        min_interval: float = 60.0,
        refresh_every: float = 12 * 3600.0,
        expiry_margin: float = 24 * 3600.0,
    ) -> None:
        self.keys = keys
        self._download = download
        self._clock = wall_clock
        self.min_interval = min_interval
        self.refresh_every = refresh_every
        self.expiry_margin = expiry_margin
        self._lock = anyio.Lock()
        self._last_attempt: float | None = None
        self._last_serial_refresh: float | None = None
        self._last_success: float | None = None
        self._last_error: PaykitError | None = None
        self.downloads = 0

    def __repr__(self) -> str:
        return f"<PlatformCertificates {len(self.keys.certificates())} downloads={self.downloads}>"

    def _due(self, now: float) -> bool:
        if self._last_success is None or now - self._last_success >= self.refresh_every:
            return True
        latest = self.keys.latest_expiry(now)
        return latest is None or latest - now < self.expiry_margin

    def _may_try(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self.min_interval

    def ready(self) -> bool:
        """Whether :meth:`ensure_ready` has nothing to do now (nothing to download or wait for)."""
        keys = self.keys
        if not keys.use_certificates:
            return True
        now = self._clock()
        return keys.has_usable_certificate(now) and not (self._due(now) and self._may_try(now))

    async def ensure_ready(self) -> None:
        """Before an operation: download when there is no usable certificate, refresh when due.

        A failed refresh is logged while a usable certificate remains; with none, the failure is
        raised as :class:`CertificatesUnavailable` (nothing was sent).
        """
        if self.ready():
            return
        keys = self.keys
        async with self._lock:
            now = self._clock()
            usable = keys.has_usable_certificate(now)
            if usable and not (self._due(now) and self._may_try(now)):
                return
            # During a migration the public key still verifies what WeChat signs with it, so a
            # missing certificate list is no reason to stop.
            fallback = keys.public_key_id is not None
            if not self._may_try(now):
                if usable or fallback:
                    return
                raise self._unavailable(self._last_error) from self._last_error
            try:
                await self._fetch(now)
            except PaykitError as error:
                if not (fallback or keys.has_usable_certificate(self._clock())):
                    raise self._unavailable(error) from error
                logger.warning("refreshing the WeChat Pay platform certificates failed: %s", error)

    async def refresh_for(self, serial: str) -> bool:
        """After a message named an unknown certificate: refresh once (bounded); True when the
        serial is known afterwards."""
        if not self.keys.use_certificates:
            return False
        async with self._lock:
            if self.keys.knows(serial):
                return True
            now = self._clock()
            last = self._last_serial_refresh
            if last is not None and now - last < self.min_interval:
                logger.warning("unknown platform certificate %s; not refreshing again so soon", serial[:64])
                return False
            self._last_serial_refresh = now
            try:
                await self._fetch(now)
            except PaykitError as error:
                logger.warning("refreshing the WeChat Pay platform certificates failed: %s", error)
                return False
            return self.keys.knows(serial)

    async def verified(self, check: Callable[[], T]) -> T:
        """``check()`` (verifying one message); when it names a platform certificate not
        downloaded yet, once more after :meth:`refresh_for` found it — the same message, never
        a re-sent request."""
        try:
            return check()
        except UnknownSerial as unknown:
            if not await self.refresh_for(unknown.serial):
                raise
            return check()

    async def refresh(self) -> tuple[PlatformCertificate, ...]:
        """Download now (still at most one download at a time); return the certificates held."""
        async with self._lock:
            await self._fetch(self._clock())
        return self.keys.certificates()

    async def _fetch(self, now: float) -> None:
        self._last_attempt = now
        self.downloads += 1
        try:
            certificates = await self._download()
        except PaykitError as error:
            self._last_error = error
            raise
        self.keys.install(certificates, now=self._clock())
        self._last_success = self._clock()
        self._last_error = None
        logger.info("WeChat Pay platform certificates: %s", ", ".join(c.serial_no for c in certificates))

    def _unavailable(self, error: PaykitError | None) -> CertificatesUnavailable:
        cause = error if error is not None else SignatureError("no platform certificate could be obtained")
        return CertificatesUnavailable(
            f"the WeChat Pay platform certificates could not be downloaded ({type(cause).__name__}: "
            f"{cause.message}); nothing was sent",
            cause=cause,
        )
