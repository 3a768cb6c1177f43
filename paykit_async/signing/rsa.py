"""SHA256-with-RSA (PKCS#1 v1.5) signatures, as WeChat Pay API v3 uses them in both directions.

The merchant signs ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with its API private key and
sends the result in the ``Authorization: WECHATPAY2-SHA256-RSA2048 ...`` header; WeChat signs
``TIMESTAMP\\nNONCE\\nBODY\\n`` of every reply and notification with its platform certificate or
its public key. Signatures travel as standard base64. Unlike the keyed signers, these sign a
message (bytes), not a field mapping.

Keys are given as a file path or PEM (``bytes``, or a ``str`` starting with ``-----BEGIN``); a
key's material never appears in a ``repr`` or an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import ValidationError
from ..redaction import path_for_message

__all__ = [
    "AUTHORIZATION_SCHEME",
    "KeySource",
    "Sha256WithRsaSigner",
    "Sha256WithRsaVerifier",
    "authorization_header",
    "load_private_key",
    "load_public_key",
    "reply_message",
    "request_message",
]

#: The ``Authorization`` scheme of WeChat Pay API v3 requests.
AUTHORIZATION_SCHEME = "WECHATPAY2-SHA256-RSA2048"

KeySource = str | os.PathLike[str] | bytes
"""A key as the caller gives it: a file path, PEM bytes, or a PEM string."""

#: Keys outside these sizes are refused: WeChat uses 2048 bits; a huge key would make every
#: verification slow (a cheap denial of service).
_MIN_BITS = 2048
_MAX_BITS = 4096
_MAX_PEM_BYTES = 64 * 1024
_PADDING = padding.PKCS1v15()


def _read_pem(source: object, field: str) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        data = source.encode("ascii", "replace")
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        reason = None
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_PEM_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror
        if reason is not None:
            # The "path" may be key material given as a path (PEM text after some other text):
            # path_for_message never shows that, and the OSError (whose filename would) is not
            # kept in the chain: raised outside the except block.
            hint = " (PEM text must start with -----BEGIN)" if "-----BEGIN" in os.fspath(path) else ""
            raise ValidationError(f"cannot read {path_for_message(path)}: {reason}{hint}", field=field)
    else:
        raise ValidationError(f"must be a file path or PEM bytes, got {type(source).__name__}", field=field)
    if len(data) > _MAX_PEM_BYTES:
        raise ValidationError("is too large to be a PEM key", field=field)
    return data


def _check_size(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, field: str) -> None:
    if not _MIN_BITS <= key.key_size <= _MAX_BITS:
        raise ValidationError(
            f"must be an RSA key of {_MIN_BITS} to {_MAX_BITS} bits, got {key.key_size}", field=field
        )


def load_private_key(source: KeySource, *, field: str = "private_key") -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key (PKCS#8 or PKCS#1 PEM, as ``apiclient_key.pem``)."""
    data = _read_pem(source, field)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValidationError("is encrypted; give the unencrypted apiclient_key.pem", field=field) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError("is not a PEM private key", field=field) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValidationError("must be an RSA private key", field=field)
    _check_size(key, field)
    return key


def load_public_key(source: KeySource, *, field: str = "wechatpay_public_key") -> rsa.RSAPublicKey:
    """An RSA public key from ``PUBLIC KEY`` (SPKI) or ``RSA PUBLIC KEY`` PEM, or a certificate's key."""
    data = _read_pem(source, field)
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError("is not a PEM public key or certificate", field=field) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValidationError("must be an RSA public key", field=field)
    _check_size(key, field)
    return key


class Sha256WithRsaSigner:
    """Signs messages with an RSA private key: base64 of SHA256-with-RSA, PKCS#1 v1.5."""

    __slots__ = ("_key",)

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValidationError("must be an RSA private key", field="private_key")
        _check_size(private_key, "private_key")
        self._key = private_key

    @classmethod
    def from_pem(cls, source: KeySource, *, field: str = "private_key") -> Sha256WithRsaSigner:
        """The signer of the key in ``source`` (a path or PEM)."""
        return cls(load_private_key(source, field=field))

    def __repr__(self) -> str:
        return f"<Sha256WithRsaSigner {self._key.key_size}-bit>"

    @property
    def sign_type(self) -> str:
        return "SHA256-RSA2048"

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The matching public key (what the other side verifies with)."""
        return self._key.public_key()

    def sign(self, message: bytes) -> str:
        """The base64 signature of ``message``."""
        return base64.b64encode(self._key.sign(message, _PADDING, hashes.SHA256())).decode("ascii")


class Sha256WithRsaVerifier:
    """Verifies base64 SHA256-with-RSA (PKCS#1 v1.5) signatures with one RSA public key.

    Anything that is not a valid signature of the message — bad base64, a wrong length, another
    key's signature — is simply ``False``; nothing raises.
    """

    __slots__ = ("_key", "_length")

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValidationError("must be an RSA public key", field="public_key")
        _check_size(public_key, "public_key")
        self._key = public_key
        self._length = (public_key.key_size + 7) // 8

    @classmethod
    def from_pem(cls, source: KeySource, *, field: str = "wechatpay_public_key") -> Sha256WithRsaVerifier:
        """The verifier of the public key (or certificate) in ``source``."""
        return cls(load_public_key(source, field=field))

    def __repr__(self) -> str:
        return f"<Sha256WithRsaVerifier {self._key.key_size}-bit>"

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key

    def verify(self, message: bytes, signature: str) -> bool:
        """Whether ``signature`` (base64) is this key's signature of ``message``."""
        if not isinstance(signature, str) or len(signature) > 4 * (self._length + 2) // 3 + 4:
            return False
        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return False
        if len(raw) != self._length:
            return False
        try:
            self._key.verify(raw, message, _PADDING, hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def request_message(method: str, target: str, timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``.

    ``target`` is the request target exactly as sent (path and query string, no host); ``body``
    the exact bytes sent (empty for GET). Every line ends with ``\\n``, the last one included.
    """
    head = f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def reply_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat signs in replies and notifications: ``TIMESTAMP\\nNONCE\\nBODY\\n``."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization_header(
    *, mchid: str, serial_no: str, nonce: str, timestamp: int | str, signature: str
) -> str:
    """The ``Authorization`` value: the scheme, then the five items in WeChat's documented order."""
    return (
        f'{AUTHORIZATION_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )
