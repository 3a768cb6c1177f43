"""Simulator settings: merchant credentials, ledger rules, timing and faults, from Python or TOML.

The TOML sections and keys match the client constructors, so one file configures both sides::

    [wechatpay]
    appid = "wx8888888888888888"
    mch_id = "1900000109"
    api_key = "..."

    [wechatpay-v3]
    mchid = "1900000109"
    certificate_serial_no = "..."
    apiv3_key = "..."                # 32 characters
    private_key = "apiclient_key.pem"  # optional: generated when absent

    [payjs]
    mchid = "..."
    key = "..."

    [eftpay]
    user_confirm_key = "..."
    secret = "..."

    [simulator]
    auto_orders = true
    completion_delay = 1.0

    [faults]
    seed = 7
    [[faults.rules]]
    provider = "wechatpay"
    endpoint = "refund"
    drop_after = 0.1

Every key is listed in :data:`CONFIG_SECTIONS`; ``paykit simulator sample-config`` prints a file
with all of them at their defaults (:mod:`~paykit_async.simulator.sample_config`).
"""

from __future__ import annotations

import os
import sys
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..errors import ValidationError
from ..redaction import path_for_message
from .faults import FaultPlan, FaultRule

__all__ = [
    "CONFIG_SECTIONS",
    "DEMO_EFTPAY",
    "DEMO_PAYJS",
    "DEMO_WECHATPAY",
    "DEMO_WECHATPAY_V3",
    "EftPayMerchant",
    "PayJSMerchant",
    "SimulatorConfig",
    "WeChatPayMerchant",
    "WeChatPayV3Merchant",
    "config_from_mapping",
    "load_config",
]


@attrs.frozen(kw_only=True)
class WeChatPayMerchant:
    """The WeChat Pay v2 merchant the simulator accepts (``WeChatPayClient(appid, mch_id, api_key)``)."""

    appid: str
    mch_id: str
    api_key: str = attrs.field(repr=False)
    balance: int | None = None
    """Refund balance in fen; ``None`` is unlimited. Refunds beyond it answer ``NOTENOUGH``."""


V3_MODES = ("public_key", "certificate")


@attrs.frozen(kw_only=True)
class WeChatPayV3Merchant:
    """The WeChat Pay API v3 merchant the simulator accepts.

    Keys match ``WeChatPayV3Client``'s: ``private_key`` is the merchant API private key (a path or
    PEM; generated on first use when None — read it back with ``Simulator.wechatpay_v3_keys()``),
    ``certificate_serial_no`` its certificate's serial, ``apiv3_key`` the 32-character APIv3 key.
    The simulator's own (WeChat's) keys are always generated: a public key with id
    ``wechatpay_public_key_id`` and a platform certificate. ``mode`` picks what signs replies and
    notifications: ``"public_key"`` (the default, as for merchants since 2025) or
    ``"certificate"`` (a request naming the public key in ``Wechatpay-Serial`` still gets a
    reply signed with it, as during a migration).
    """

    mchid: str
    certificate_serial_no: str
    apiv3_key: str = attrs.field(repr=False)
    wechatpay_public_key_id: str = "PUB_KEY_ID_0119000010920260101000000000000"
    private_key: str | bytes | None = attrs.field(default=None, repr=False)
    mode: str = attrs.field(default="public_key")
    balance: int | None = None
    """Refund balance in fen; ``None`` is unlimited. Refunds beyond it answer ``NOT_ENOUGH``."""

    @mode.validator
    def _check_mode(self, _attribute: object, value: str) -> None:
        if value not in V3_MODES:
            raise ValidationError(f"must be one of {', '.join(V3_MODES)}", field="mode")

    @apiv3_key.validator
    def _check_apiv3_key(self, _attribute: object, value: str) -> None:
        if not isinstance(value, str) or len(value.encode("utf-8")) != 32:
            raise ValidationError("must be exactly 32 bytes", field="apiv3_key")


@attrs.frozen(kw_only=True)
class PayJSMerchant:
    """The PAYJS merchant the simulator accepts (``PayJSClient(mchid, key)``)."""

    mchid: str
    key: str = attrs.field(repr=False)
    unsettled_balance: int | None = None
    """Unsettled funds in fen; a refund succeeds only while they exceed the refund. ``None``: unlimited."""


@attrs.frozen(kw_only=True)
class EftPayMerchant:
    """The eftPay merchant the simulator accepts (``EftPayClient(user_confirm_key, secret)``)."""

    user_confirm_key: str
    secret: str = attrs.field(repr=False)
    balance: Decimal | None = None
    """Refund balance; ``None`` is unlimited."""


#: Demo credentials: public, for the simulator only — never valid at a real provider.
DEMO_WECHATPAY = WeChatPayMerchant(
    appid="wxd930ea5d5a258f4f",
    mch_id="1900000109",
    api_key="simulatorsimulatorsimulator00001",
)
DEMO_WECHATPAY_V3 = WeChatPayV3Merchant(
    mchid="1900000109",
    certificate_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    apiv3_key="simulatorV3apiv3keysimulator0001",
)
DEMO_PAYJS = PayJSMerchant(mchid="1500000001", key="simulator-payjs-key")
DEMO_EFTPAY = EftPayMerchant(user_confirm_key="S0000001", secret="simulator-eftpay-secret")  # noqa: S106


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValidationError("must not be negative", field=attribute.name)


REFUND_OUTCOMES = ("success", "closed", "change", "fail")


def _outcome(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in REFUND_OUTCOMES:
        raise ValidationError(f"must be one of {', '.join(REFUND_OUTCOMES)}", field=attribute.name)


@attrs.frozen(kw_only=True)
class SimulatorConfig:
    """Everything the simulator does, as one immutable value.

    ``completion_delay`` is how long (simulator clock seconds) a refund stays PROCESSING;
    ``refund_outcome`` picks its end: ``"success"``, ``"closed"`` (WeChat REFUNDCLOSE, eftPay
    TRADE_FAIL), ``"change"`` (WeChat CHANGE) or ``"fail"`` (eftPay TRADE_FAIL).
    ``payjs_unsigned_duplicate``: a second refund of a PAYJS order answers ``return_code=1``
    without ``sign``, as the real service has been seen to; when False it answers the signed
    "already refunded" failure.
    """

    wechatpay: WeChatPayMerchant = DEMO_WECHATPAY
    wechatpay_v3: WeChatPayV3Merchant = DEMO_WECHATPAY_V3
    payjs: PayJSMerchant = DEMO_PAYJS
    eftpay: EftPayMerchant = DEMO_EFTPAY
    auto_orders: bool = False
    payjs_auto_order_amount: int = 100
    completion_delay: float = attrs.field(default=1.0, validator=_positive)
    refund_outcome: str = attrs.field(default="success", validator=_outcome)
    payjs_unsigned_duplicate: bool = True
    wechatpay_max_refunds: int = 50
    wechatpay_close_after: float = 300.0
    wechatpay_refund_within: float = attrs.field(default=365 * 86400.0, validator=_positive)
    """A WeChat Pay v2 order can be refunded this long after creation (simulator clock seconds);
    a new refund of an older order answers ``TRADE_OVERDUE`` (1 year, as WeChat Pay)."""
    payjs_close_within: float = 30 * 86400.0
    payjs_reverse_within: float = 7 * 86400.0
    eftpay_time_tolerance: float = 600.0
    notify_schedule: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 15.0)
    """Delays (seconds) of the notification attempts after a refund completes; the real
    providers redeliver over hours."""
    notify_poll_interval: float = attrs.field(default=0.05, validator=_positive)
    notify_ca_file: str | None = None
    faults: FaultPlan = attrs.field(factory=FaultPlan)
    rate_limit: int | None = attrs.field(default=None)
    """Requests per second each merchant may send (a sliding one-second window); beyond it the
    provider's over-limit reply (see :mod:`~paykit_async.simulator.ratelimit`). None: no limit."""

    @rate_limit.validator
    def _check_rate_limit(self, _attribute: object, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValidationError("must be a whole number of requests per second >= 1", field="rate_limit")

    @property
    def uses_demo_credentials(self) -> bool:
        """True when WeChat Pay v2, PAYJS or eftPay runs with the public demo credentials (the
        v3 merchant's keys are generated per simulator; see ``Simulator.wechatpay_v3_keys()``)."""
        return self.wechatpay == DEMO_WECHATPAY or self.payjs == DEMO_PAYJS or self.eftpay == DEMO_EFTPAY


#: Keys of ``[simulator]``: the plain settings of :class:`SimulatorConfig`.
_SIMULATOR_KEYS = tuple(
    field.name
    for field in attrs.fields(SimulatorConfig)
    if field.name not in ("wechatpay", "wechatpay_v3", "payjs", "eftpay", "faults")
)

#: ``[wechatpay-v3]`` keys that only the client reads (the CLI and the simulator share one file).
_V3_CLIENT_ONLY_KEYS = ("wechatpay_public_key", "sub_mchid", "base_url", "ca_file", "max_connections")

#: Every section of a simulator TOML file and the attrs class whose fields are its keys.
CONFIG_SECTIONS: Mapping[str, tuple[str, ...]] = {
    "wechatpay": tuple(f.name for f in attrs.fields(WeChatPayMerchant)),
    "wechatpay-v3": tuple(f.name for f in attrs.fields(WeChatPayV3Merchant)) + _V3_CLIENT_ONLY_KEYS,
    "payjs": tuple(f.name for f in attrs.fields(PayJSMerchant)),
    "eftpay": tuple(f.name for f in attrs.fields(EftPayMerchant)),
    "simulator": _SIMULATOR_KEYS,
    "faults": ("seed", "rules"),
    "faults.rules": tuple(f.name for f in attrs.fields(FaultRule)),
}


def load_config(path: str | os.PathLike[str], **overrides: Any) -> SimulatorConfig:
    """Read a TOML file into a :class:`SimulatorConfig`; ``overrides`` win over the file.

    Uses ``tomllib`` (Python 3.11+) or ``tomli`` on 3.10, imported only here so that the
    simulator itself needs neither. Every problem — unreadable file, invalid TOML, an unknown
    section or key, a value of the wrong type — is a :class:`ValidationError` naming the file and
    the key, in one line.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    name = path_for_message(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"cannot read {name}: {exc.strerror}", field="config") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{name} is not UTF-8 text", field="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{name} is not valid TOML: {exc}", field="config") from None
    try:
        return config_from_mapping(data, **overrides)
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.message.removeprefix('config: ')}", field="config") from None


def config_from_mapping(data: Mapping[str, Any], **overrides: Any) -> SimulatorConfig:
    """Build a :class:`SimulatorConfig` from parsed TOML (sections as in :func:`load_config`)."""
    unknown = sorted(set(data) - {name for name in CONFIG_SECTIONS if "." not in name})
    if unknown:
        raise ValidationError(
            f"unknown section(s) {', '.join(f'[{name}]' for name in unknown)}; expected "
            f"{', '.join(f'[{name}]' for name in CONFIG_SECTIONS if '.' not in name)}",
            field="config",
        )
    kwargs: dict[str, Any] = {}
    try:
        if "wechatpay" in data:
            kwargs["wechatpay"] = WeChatPayMerchant(**_section(data, "wechatpay", WeChatPayMerchant))
        if "wechatpay-v3" in data:
            kwargs["wechatpay_v3"] = WeChatPayV3Merchant(**_v3_section(data))
        if "payjs" in data:
            kwargs["payjs"] = PayJSMerchant(**_section(data, "payjs", PayJSMerchant))
        if "eftpay" in data:
            kwargs["eftpay"] = EftPayMerchant(**_section(data, "eftpay", EftPayMerchant))
        if "simulator" in data:
            kwargs.update(_section(data, "simulator", SimulatorConfig, keys=_SIMULATOR_KEYS))
        if "faults" in data:
            faults = _section(data, "faults", FaultPlan)
            rules = faults.pop("rules", ())
            kwargs["faults"] = FaultPlan(rules=tuple(rules), **faults)
        kwargs.update(overrides)
        return SimulatorConfig(**kwargs)
    except ValidationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"bad simulator configuration: {exc}", field="config") from None


def _section(
    data: Mapping[str, Any], name: str, cls: type[Any], *, keys: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """``data[name]`` as keyword arguments of ``cls``: known keys only, values of the field's type."""
    shown = "[[faults.rules]]" if name == "faults.rules" else f"[{name}]"
    section = data.get(name, {})
    if not isinstance(section, Mapping):
        raise ValidationError(f"{shown} must be a table", field="config")
    allowed = keys if keys is not None else CONFIG_SECTIONS[name]
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ValidationError(
            f"unknown key(s) {', '.join(unknown)} in {shown}; expected {', '.join(allowed)}", field="config"
        )
    missing = [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING and f.name not in section]
    if missing:
        raise ValidationError(f"{shown} is missing {', '.join(missing)}", field="config")
    hints = typing.get_type_hints(cls)
    return {key: _value(shown, key, value, hints[key]) for key, value in section.items()}


def _v3_section(data: Mapping[str, Any]) -> dict[str, Any]:
    """``[wechatpay-v3]`` without the keys that only the client reads."""
    section = data["wechatpay-v3"]
    if not isinstance(section, Mapping):
        raise ValidationError("[wechatpay-v3] must be a table", field="config")
    simulator_only = {k: v for k, v in section.items() if k not in _V3_CLIENT_ONLY_KEYS}
    return _section({"wechatpay-v3": simulator_only}, "wechatpay-v3", WeChatPayV3Merchant)


def _value(section: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` checked (and converted) for a field annotated ``hint``."""
    where = f"{section} {key}"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        # Optional fields: TOML has no null, so the value is of the other type (a str for
        # ``str | bytes`` fields such as a key file's path).
        hint = str if str in args else args[0]
        args = list(typing.get_args(hint))
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # mch_id = 1900000109 means "1900000109"
        if isinstance(value, str):
            return value
        raise ValidationError(f"{where} must be a string", field="config")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValidationError(f"{where} must be true or false", field="config")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValidationError(f"{where} must be a whole number", field="config")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValidationError(f"{where} must be a number", field="config")
    if hint is Decimal:
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                return Decimal(str(value))
            except ArithmeticError:
                pass
        raise ValidationError(f'{where} must be an amount such as "12.50"', field="config")
    if typing.get_origin(hint) is tuple and key == "notify_schedule":
        if isinstance(value, list):
            return tuple(_value(section, key, item, float) for item in value)
        raise ValidationError(f"{where} must be a list of numbers", field="config")
    if typing.get_origin(hint) is tuple and key == "rules":
        if isinstance(value, list) and all(isinstance(rule, Mapping) for rule in value):
            return tuple(
                FaultRule(**_section({"faults.rules": rule}, "faults.rules", FaultRule)) for rule in value
            )
        raise ValidationError(f"{where} must be [[faults.rules]] tables", field="config")
    raise ValidationError(f"{where} is not a setting of the TOML file", field="config")  # pragma: no cover
