"""The public API is pinned: names in ``__all__`` and the signatures design.md promises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import attrs

import paykit_async

EXPECTED_ALL = {
    "AiohttpTransport", "BatchOutcome", "BatchStatus", "ClientCertificate", "DecodeError", "EftPayClient",
    "FakeClock", "HTTPStatusError", "Handler", "HttpxTransport", "IdempotencyConflict",
    "IdempotencyMiddleware", "IdempotencyStore", "IdempotencyStoreError", "InvalidRequest",
    "KeyedHmacSha256Signer", "KeyedMd5Signer",
    "LoggingMiddleware", "MemoryStore", "Middleware", "NotificationReply", "Operation", "Outcome",
    "PayJSClient", "PaykitError", "RateLimit",
    "PrefixedSha256Signer", "ProviderError", "RedisStore", "RefundBatch", "RefundDetail", "RefundGoods",
    "RefundNotProven", "RefundNumberRule", "RefundOutcomeUnknown", "RetryBudget", "RetryPolicy",
    "SQLiteStore", "SignatureError", "Signer", "Timeouts", "TradeStatus", "Transport", "TransportError",
    "TransportSettings", "UnsignedReplyError", "ValidationError", "WeChatPayClient", "WeChatPayV3Client",
    "WireRequest",
    "WireResponse", "__version__", "derive_refund_no", "new_refund_no", "refund_many",
}  # fmt: skip


def test_all_is_pinned_and_every_name_exists() -> None:
    assert set(paykit_async.__all__) == EXPECTED_ALL
    assert len(paykit_async.__all__) == len(EXPECTED_ALL)
    for name in paykit_async.__all__:
        assert hasattr(paykit_async, name), name


def _params(func: object) -> list[tuple[str, str, object]]:
    signature = inspect.signature(func)  # type: ignore[arg-type]
    return [
        (p.name, p.kind.name, p.default if p.default is not inspect.Parameter.empty else "<required>")
        for p in signature.parameters.values()
        if p.name != "self"
    ]


def _starts_with(actual: list[tuple[str, str, object]], expected: list[tuple[str, str, object]]) -> None:
    """The design's parameters come first, unchanged; more keyword-only ones may follow."""
    assert actual[: len(expected)] == expected
    assert all(kind in ("KEYWORD_ONLY", "VAR_KEYWORD") for _, kind, _ in actual[len(expected) :])


KW, POS = "KEYWORD_ONLY", "POSITIONAL_OR_KEYWORD"
REQ = "<required>"


def test_wechatpay_signatures_follow_the_design() -> None:
    client = paykit_async.WeChatPayClient
    _starts_with(
        _params(client),
        [("appid", POS, REQ), ("mch_id", POS, REQ), ("api_key", POS, REQ), ("sign_type", KW, "MD5"),
         ("cert", KW, None), ("sub_appid", KW, None), ("sub_mch_id", KW, None),
         ("base_url", KW, "https://api.mch.weixin.qq.com")],
    )  # fmt: skip
    _starts_with(
        _params(client.refund),
        [("total_fee", KW, REQ), ("refund_fee", KW, REQ), ("out_trade_no", KW, None),
         ("transaction_id", KW, None), ("out_refund_no", KW, None), ("refund_fee_type", KW, None),
         ("refund_desc", KW, None), ("refund_account", KW, None), ("notify_url", KW, None),
         ("detail", KW, None)],
    )  # fmt: skip
    assert _params(client.query_refund) == [
        ("out_refund_no", KW, None), ("refund_id", KW, None), ("transaction_id", KW, None),
        ("out_trade_no", KW, None), ("offset", KW, None),
    ]  # fmt: skip
    assert _params(client.close_order) == [("out_trade_no", KW, REQ)]
    assert [name for name, _, _ in _params(client.parse_refund_notification)] == ["body"]


def test_wechatpay_v3_signatures_follow_the_design() -> None:
    client = paykit_async.WeChatPayV3Client
    _starts_with(
        _params(client),
        [("mchid", POS, REQ), ("private_key", POS, REQ), ("certificate_serial_no", POS, REQ),
         ("apiv3_key", POS, REQ), ("wechatpay_public_key", KW, None), ("wechatpay_public_key_id", KW, None),
         ("sub_mchid", KW, None), ("base_url", KW, "https://api.mch.weixin.qq.com")],
    )  # fmt: skip
    _starts_with(
        _params(client.refund),
        [("refund", KW, REQ), ("total", KW, REQ), ("out_trade_no", KW, None), ("transaction_id", KW, None),
         ("out_refund_no", KW, None), ("reason", KW, None), ("notify_url", KW, None),
         ("funds_account", KW, None), ("currency", KW, "CNY"), ("goods_detail", KW, None),
         ("idempotency_key", KW, None)],
    )  # fmt: skip
    assert _params(client.query_refund) == [("out_refund_no", POS, REQ)]
    assert _params(client.close_order) == [("out_trade_no", POS, REQ)]
    assert [name for name, _, _ in _params(client.parse_refund_notification)] == ["headers", "body"]
    assert [name for name, _, _ in _params(client.receive_refund_notification)] == ["headers", "body"]
    assert inspect.iscoroutinefunction(client.receive_refund_notification)
    assert not inspect.iscoroutinefunction(client.parse_refund_notification)


def test_payjs_signatures_follow_the_design() -> None:
    client = paykit_async.PayJSClient
    _starts_with(
        _params(client),
        [("mchid", POS, REQ), ("key", POS, REQ), ("base_url", KW, "https://payjs.cn")],
    )
    for method in ("refund", "close", "reverse", "check"):
        _starts_with(_params(getattr(client, method)), [("payjs_order_id", KW, REQ)])
    assert [name for name, _, _ in _params(client.parse_notification)] == ["body"]


def test_eftpay_signatures_follow_the_design() -> None:
    client = paykit_async.EftPayClient
    _starts_with(
        _params(client),
        [("user_confirm_key", POS, REQ), ("secret", POS, REQ), ("base_url", KW, REQ), ("tid", KW, None)],
    )
    _starts_with(
        _params(client.refund),
        [("paytype", KW, REQ), ("payment_type", KW, REQ), ("out_trade_no", KW, REQ),
         ("transaction_amount", KW, REQ), ("total_fee", KW, REQ), ("refund_no", KW, None),
         ("tid", KW, None), ("refund_desc", KW, None)],
    )  # fmt: skip
    assert ("notify_url", KW, REQ) in _params(client.apply_refund)
    _starts_with(
        _params(client.query),
        [("out_trade_no", KW, REQ), ("paytype", KW, REQ), ("payment_type", KW, REQ),
         ("refund_no", KW, None)],
    )  # fmt: skip
    assert [name for name, _, _ in _params(client.parse_notification)] == ["body"]


def test_every_client_shares_the_common_options() -> None:
    from paykit_async.client_base import ClientOptions

    assert {"retry", "transport", "ca_file", "middleware", "idempotency_store"} <= set(
        ClientOptions.__annotations__
    )
    for client in (
        paykit_async.WeChatPayClient,
        paykit_async.WeChatPayV3Client,
        paykit_async.PayJSClient,
        paykit_async.EftPayClient,
    ):
        assert hasattr(client, "__aenter__")
        assert hasattr(client, "__aexit__")
        assert isinstance(client.refund_number_rule, paykit_async.RefundNumberRule)
        refund = inspect.signature(client.refund).parameters
        assert refund["idempotency_key"].default is None


def test_certificate_constructors_follow_the_design() -> None:
    cert = paykit_async.ClientCertificate
    assert _params(cert.from_pem) == [
        ("cert_file", POS, REQ), ("key_file", POS, REQ), ("password", POS, None),
    ]  # fmt: skip
    assert _params(cert.from_pkcs12) == [("path", POS, REQ), ("password", POS, None)]


def test_error_tree() -> None:
    base = paykit_async.PaykitError
    for name in (
        "TransportError", "SignatureError", "DecodeError", "ProviderError", "ValidationError",
        "IdempotencyConflict", "IdempotencyStoreError", "RefundOutcomeUnknown", "HTTPStatusError",
    ):  # fmt: skip
        assert issubclass(getattr(paykit_async, name), base), name
    assert issubclass(paykit_async.ValidationError, ValueError)
    error = paykit_async.ProviderError("SYSTEMERROR", "busy", retryable=True, raw={"a": "1"})
    assert (error.code, error.message, error.retryable, dict(error.raw)) == (
        "SYSTEMERROR",
        "busy",
        True,
        {"a": "1"},
    )


def _attrs_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(paykit_async.__path__, "paykit_async."):
        if info.name.endswith(("pytest_plugin", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and attrs.has(value) and value.__module__ == info.name:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_attrs_class_in_the_package_is_frozen_slotted_and_keyword_only() -> None:
    classes = _attrs_classes()
    assert len(classes) > 30
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        assert "__slots__" in cls.__dict__, f"{name} is not slotted"
        assert all(field.kw_only for field in attrs.fields(cls)), f"{name} is not keyword-only"
        assert cls.__setattr__ is not object.__setattr__, f"{name} is not frozen"


def test_the_library_never_imports_the_command_line() -> None:
    # (httpx itself imports click and rich when they are installed, so only our modules are checked.)
    code = (
        "import sys, paykit_async, paykit_async.simulator; "
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] == ['paykit_async', 'cli']); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_errors_is_the_ground_floor() -> None:
    # errors.py may import only the Retry-After parser, which imports nothing from the package.
    import ast

    for module, allowed in (("errors", {"retry_after"}), ("retry_after", set())):
        tree = ast.parse(Path(paykit_async.__file__).with_name(f"{module}.py").read_text())
        relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
        assert relative <= allowed, (module, relative)
