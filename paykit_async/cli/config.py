"""Configuration for the ``paykit`` command: a TOML file plus environment variables → a client.

Sections and keys are the client constructors' keywords::

    [wechatpay]                      # WeChatPayClient
    appid = "wx..."  mch_id = "..."  api_key = "..."  sign_type = "MD5"
    base_url = "https://api.mch.weixin.qq.com"  ca_file = "..."
    cert_file = "apiclient_cert.pem"  key_file = "apiclient_key.pem"    # or:
    p12_file = "apiclient_cert.p12"   p12_password = "..."               # defaults to mch_id

    [wechatpay-v3]                   # WeChatPayV3Client
    mchid = "..."  certificate_serial_no = "..."  apiv3_key = "..."
    private_key = "apiclient_key.pem"                                   # a file
    wechatpay_public_key = "pub_key.pem"  wechatpay_public_key_id = "PUB_KEY_ID_..."
    sub_mchid = "..."  platform_certificates = true   base_url = "..."  ca_file = "..."

    [payjs]                          # PayJSClient
    mchid = "..."  key = "..."  base_url = "https://payjs.cn"

    [eftpay]                         # EftPayClient
    user_confirm_key = "..."  secret = "..."  base_url = "https://..."  tid = "..."

Every section also takes ``rate_limit`` (requests per second for the merchant, e.g. ``150``;
the ``rate_limit=`` client option — shared through Redis by ``paykit worker``) and
``rate_limit_margin`` (seconds of headroom for arrival jitter, default 0.03).

Every key may instead come from ``PAYKIT_<PROVIDER>_<KEY>`` (``PAYKIT_WECHATPAY_API_KEY``,
``PAYKIT_WECHATPAY_V3_APIV3_KEY``, ``PAYKIT_PAYJS_KEY``, ``PAYKIT_EFTPAY_SECRET`` ...); the
environment wins over the file. Error
messages name keys, never the values of secrets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import PaykitError, ValidationError
from ..pipeline.core import Middleware
from ..pipeline.retry import RetryPolicy
from ..pipeline.stores.base import IdempotencyStore
from ..transport.base import Transport
from ..transport.tls import ClientCertificate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "PROVIDERS",
    "ConfigError",
    "ProviderSettings",
    "build_client",
    "configured_providers",
    "env_name",
    "load_settings",
]

PROVIDERS = ("wechatpay", "wechatpay-v3", "payjs", "eftpay")

_COMMON = ("base_url", "ca_file", "max_connections", "rate_limit", "rate_limit_margin")
_KEYS: Mapping[str, tuple[str, ...]] = {
    "wechatpay": (
        "appid",
        "mch_id",
        "api_key",
        "sign_type",
        "sub_appid",
        "sub_mch_id",
        "cert_file",
        "key_file",
        "key_password",
        "p12_file",
        "p12_password",
        *_COMMON,
    ),
    "wechatpay-v3": (
        "mchid",
        "private_key",
        "certificate_serial_no",
        "apiv3_key",
        "wechatpay_public_key",
        "wechatpay_public_key_id",
        "sub_mchid",
        "platform_certificates",
        *_COMMON,
    ),
    "payjs": ("mchid", "key", *_COMMON),
    "eftpay": ("user_confirm_key", "secret", "tid", *_COMMON),
}
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "wechatpay": ("appid", "mch_id", "api_key"),
    "wechatpay-v3": ("mchid", "private_key", "certificate_serial_no", "apiv3_key"),
    "payjs": ("mchid", "key"),
    "eftpay": ("user_confirm_key", "secret", "base_url"),
}
#: Keys that are switches: TOML booleans or true/false (1/0, yes/no) in the environment.
_FLAGS = frozenset({"platform_certificates"})
#: Keys that are numbers of seconds: TOML numbers (fractions allowed) or their text.
_SECONDS = frozenset({"rate_limit_margin"})
#: Keys whose values are never shown.
SECRET_KEYS = frozenset({"api_key", "key", "secret", "p12_password", "key_password", "apiv3_key"})


class ConfigError(Exception):
    """A configuration problem, described in one line without any secret value."""


def env_name(provider: str, key: str) -> str:
    """The environment variable that may hold ``key`` of ``[provider]``."""
    return f"PAYKIT_{provider.upper().replace('-', '_')}_{key.upper()}"


@attrs.frozen(kw_only=True)
class ProviderSettings:
    """One provider's settings after merging the file and the environment."""

    provider: str
    values: Mapping[str, str] = attrs.field(repr=False)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_KEYS else v) for k, v in self.values.items()}
        return f"ProviderSettings(provider={self.provider!r}, values={shown!r})"


def load_settings(
    provider: str, config_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> ProviderSettings:
    """Read ``[provider]`` from ``config_file`` (optional) and the environment."""
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    if config_file is not None:
        values.update(_read_section(Path(config_file), provider))
    for key in _KEYS[provider]:
        from_env = environ.get(env_name(provider, key))
        if from_env:
            values[key] = from_env
    missing = [k for k in _REQUIRED[provider] if not values.get(k)]
    if missing:
        hints = ", ".join(f"{k} (or {env_name(provider, k)})" for k in missing)
        raise ConfigError(f"[{provider}] is missing {hints}")
    return ProviderSettings(provider=provider, values=values)


def configured_providers(
    config_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The providers ``config_file`` has a section for, or the environment has a key of."""
    environ = os.environ if environ is None else environ
    found = []
    for provider in PROVIDERS:
        in_file = config_file is not None and bool(_read_section(Path(config_file), provider))
        if in_file or any(environ.get(env_name(provider, key)) for key in _KEYS[provider]):
            found.append(provider)
    return tuple(found)


def _read_section(path: Path, provider: str) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # The parser's message carries a position, never the file's content.
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    section = data.get(provider)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"[{provider}] in {str(path)!r} must be a table")
    unknown = sorted(set(section) - set(_KEYS[provider]))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in [{provider}]; expected {', '.join(_KEYS[provider])}"
        )
    values: dict[str, str] = {}
    for key, value in section.items():
        if key in _FLAGS and isinstance(value, bool):
            values[key] = "true" if value else "false"
            continue
        if key in _SECONDS and isinstance(value, float):
            values[key] = repr(value)
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(f"[{provider}] {key} must be a string")
        values[key] = str(value)
    return values


def build_client(
    settings: ProviderSettings,
    *,
    idempotency_store: IdempotencyStore | None = None,
    middleware: Sequence[Middleware] = (),
    max_connections: int | None = None,
    retry: RetryPolicy | None = None,
    transport: Transport | None = None,
    idempotency_retry_failed: bool = False,
    rate_limit_storage: str | None = None,
    idempotency_lease: float | None = None,
) -> Any:
    """The provider client for ``settings``; :class:`ConfigError` if they are unusable.

    The section's ``rate_limit`` (requests/s for the merchant) is kept in ``rate_limit_storage``
    — a Redis URL shared by many processes — or, when None, in this process.
    """
    from ..providers.eftpay import EftPayClient
    from ..providers.payjs import PayJSClient
    from ..providers.wechatpay import WeChatPayClient
    from ..providers.wechatpay_v3 import WeChatPayV3Client

    v = dict(settings.values)
    options: dict[str, Any] = {"middleware": list(middleware)}
    if idempotency_store is not None:
        options["idempotency_store"] = idempotency_store
        options["idempotency_retry_failed"] = idempotency_retry_failed
    if retry is not None:
        options["retry"] = retry
    if transport is not None:
        options["transport"] = transport
    if v.get("base_url"):
        options["base_url"] = v["base_url"]
    if v.get("ca_file"):
        options["ca_file"] = v["ca_file"]
    connections = max_connections if max_connections is not None else _int(v, "max_connections")
    if connections is not None:
        options["max_connections"] = connections
    if idempotency_lease is not None:
        options["idempotency_lease"] = idempotency_lease
    per_second = _int(v, "rate_limit")
    if per_second is not None:
        from ..pipeline.ratelimit import RateLimit

        margin = _seconds(v, "rate_limit_margin")
        more = {} if margin is None else {"margin": margin}
        try:
            options["rate_limit"] = RateLimit(per_second=per_second, storage=rate_limit_storage, **more)
        except ValidationError as exc:
            message = exc.message
            if exc.field == "margin":
                message = "rate_limit_margin must be between 0 and 1 second"
            raise ConfigError(f"[{settings.provider}] {message}") from None
    provider = settings.provider
    try:
        if provider == "wechatpay":
            for key in ("sign_type", "sub_appid", "sub_mch_id"):
                if v.get(key):
                    options[key] = v[key]
            cert = _certificate(v)
            if cert is not None:
                options["cert"] = cert
            return WeChatPayClient(v["appid"], v["mch_id"], v["api_key"], **options)
        if provider == "wechatpay-v3":
            for key in ("wechatpay_public_key", "wechatpay_public_key_id", "sub_mchid"):
                if v.get(key):
                    options[key] = v[key]
            if v.get("platform_certificates"):
                options["platform_certificates"] = _flag(v, "platform_certificates")
            # private_key and wechatpay_public_key are file paths (or PEM text from the environment).
            return WeChatPayV3Client(
                v["mchid"], v["private_key"], v["certificate_serial_no"], v["apiv3_key"], **options
            )
        if provider == "payjs":
            return PayJSClient(v["mchid"], v["key"], **options)
        if v.get("tid"):
            options["tid"] = v["tid"]
        return EftPayClient(v["user_confirm_key"], v["secret"], **options)
    except PaykitError as exc:
        # Validation messages name the field, never a secret's value.
        raise ConfigError(f"[{provider}] {exc.message}") from None


def _certificate(v: Mapping[str, str]) -> ClientCertificate | None:
    if v.get("p12_file"):
        if v.get("cert_file") or v.get("key_file"):
            raise ConfigError("[wechatpay] give either p12_file or cert_file + key_file, not both")
        return ClientCertificate.from_pkcs12(v["p12_file"], v.get("p12_password") or v["mch_id"])
    if v.get("cert_file") or v.get("key_file"):
        if not (v.get("cert_file") and v.get("key_file")):
            raise ConfigError("[wechatpay] cert_file and key_file go together")
        return ClientCertificate.from_pem(v["cert_file"], v["key_file"], v.get("key_password") or None)
    return None


def _flag(v: Mapping[str, str], key: str) -> bool:
    text = v[key].strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key} must be true or false")


def _seconds(v: Mapping[str, str], key: str) -> float | None:
    text = v.get(key)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be a number of seconds") from None


def _int(v: Mapping[str, str], key: str) -> int | None:
    text = v.get(key)
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{key} must be a positive whole number")
    return int(text)
