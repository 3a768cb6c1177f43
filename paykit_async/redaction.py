"""What an error message may show of a value that can hold a secret: a file path, a Redis URL.

A careless operator puts a key where a path belongs (``PAYKIT_WECHATPAY_V3_PRIVATE_KEY`` holding
``openssl pkcs12 -nodes`` output, which opens with ``Bag Attributes`` rather than ``-----BEGIN``;
a key file's PEM text in ``key_file``), or a Redis password with an unescaped ``/``, ``#`` or
``@`` in a URL — which every URL parser then splits into a host, a port, a database number that
its error message quotes. Messages show such values only through these functions. This module
imports only :mod:`paykit_async.errors` (the ground floor).
"""

from __future__ import annotations

import os

from .errors import ValidationError

__all__ = ["check_redis_url", "path_for_message", "url_for_message"]

#: Longer "paths" are not shown: a key's base64 is about 1,600 characters, a real path far less.
_MAX_SHOWN_PATH = 512
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def path_for_message(path: object) -> str:
    """``repr`` of ``path`` when it looks like a file path, else a placeholder that shows nothing
    of it: it holds a line break or another control character, PEM armour (``-----``), or is
    longer than any plausible path — key material given where a path was expected."""
    try:
        text = os.fsdecode(path)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"<a {type(path).__name__}, not shown>"
    if len(text) > _MAX_SHOWN_PATH or "-----" in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return f"<{len(text)} characters that are not a file path, not shown>"
    return repr(text)


def url_for_message(url: object) -> str:
    """``url`` without anything that may be a credential: the user info (everything before the
    last ``@``), the query and the fragment are dropped; a "port" that is not a number (a password
    cut by an unescaped character) hides the host part too. Never raises."""
    if not isinstance(url, str):
        return f"<a {type(url).__name__}, not shown>"
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.isascii() or not scheme.isalnum():
        return "<not a URL, not shown>"
    rest = rest[rest.rfind("@") + 1 :]  # the user info ends at the last '@', whatever it holds
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    authority, slash, path = rest.partition("/")
    if not authority.endswith("]") and ":" in authority:
        port = authority.rpartition(":")[2]
        if not port.isdigit():
            authority = "<not shown>"
    if any(ord(c) < 32 or ord(c) == 127 for c in authority + path):
        return f"{scheme}://<not shown>"
    return f"{scheme}://{authority}{slash}{path}"


def check_redis_url(url: object, field: str) -> str:
    """``url`` if it is a ``redis://``, ``rediss://`` or ``unix://`` URL whose user info (the
    password) is percent-encoded; else a :class:`ValidationError` that does not show the password.

    An unescaped ``/ ? # @`` in a password makes URL parsers read part of it as the host, port or
    database — and quote it in their errors — so such a URL is refused before any parser sees it.
    """
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        raise ValidationError("must be a redis://, rediss:// or unix:// URL", field=field)
    rest = url.partition("://")[2]
    at = rest.rfind("@")
    if at >= 0 and any(c in rest[:at] for c in "/?#@"):
        raise ValidationError(
            f"{url_for_message(url)}: the user name and password must be percent-encoded "
            "(/ as %2F, ? as %3F, # as %23, @ as %40)",
            field=field,
        )
    return url
