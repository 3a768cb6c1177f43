"""Bad input is a ValidationError before any I/O, and no secret reaches a repr or an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from paykit_async import ValidationError, WeChatPayV3Client
from paykit_async.providers.wechatpay_v3 import FundsFrom, RefundGoodsDetail
from paykit_async.transport.wire import TransportSettings, WireRequest, WireResponse

from . import spec

pytestmark = pytest.mark.anyio

APIV3_KEY = "v3SecretKeyOf32CharactersExactly"
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
KEY = spec.new_key()
PLATFORM = spec.new_key()


class NoNetwork:
    """A transport that fails the test if anything is sent."""

    def configure(self, settings: TransportSettings) -> None:
        return None

    async def send(self, request: WireRequest) -> WireResponse:
        raise AssertionError(f"sent {request.method} {request.url} despite invalid input")

    async def aclose(self) -> None:
        return None


def _client(**kwargs: Any) -> WeChatPayV3Client:
    options: dict[str, Any] = {
        "wechatpay_public_key": spec.public_pem(PLATFORM),
        "wechatpay_public_key_id": "PUB_KEY_ID_0001",
        "transport": NoNetwork(),
    }
    options.update(kwargs)
    return WeChatPayV3Client("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY, **options)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("19000001 9", spec.private_pem(KEY), SERIAL, APIV3_KEY), {}, "mchid"),
        (("1900000109", b"not a key", SERIAL, APIV3_KEY), {}, "private_key"),
        (("1900000109", "/nonexistent/apiclient_key.pem", SERIAL, APIV3_KEY), {}, "private_key"),
        (("1900000109", spec.private_pem(KEY), "not-hex!", APIV3_KEY), {}, "certificate_serial_no"),
        (("1900000109", spec.private_pem(KEY), SERIAL, "short"), {}, "apiv3_key"),
        (("1900000109", spec.private_pem(KEY), SERIAL, "é" * 32), {}, "apiv3_key"),
        (
            ("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY),
            {"wechatpay_public_key_id": "PUB_KEY_ID_1"},
            None,
        ),
        (
            ("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY),
            {"wechatpay_public_key": spec.public_pem(PLATFORM)},
            "wechatpay_public_key_id",
        ),
        (
            ("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY),
            {"wechatpay_public_key": b"junk", "wechatpay_public_key_id": "PUB_KEY_ID_1"},
            "wechatpay_public_key",
        ),
        (("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY), {"platform_certificates": False}, None),
        (("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY), {"sub_mchid": ""}, "sub_mchid"),
        (("1900000109", spec.private_pem(KEY), SERIAL, APIV3_KEY), {"base_url": "ftp://x"}, "base_url"),
    ],
)
def test_constructor_refuses_bad_configuration(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(ValidationError) as caught:
        WeChatPayV3Client(*args, **kwargs)
    if field is not None:
        assert caught.value.field == field
    assert APIV3_KEY not in str(caught.value)


def test_keys_of_the_wrong_kind_or_size_are_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    curve = ec.generate_private_key(ec.SECP256R1())
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    for pem, match in (
        (spec.private_pem(small), "2048"),  # type: ignore[arg-type]
        (
            curve.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "RSA",
        ),
        (encrypted, "encrypted"),
    ):
        with pytest.raises(ValidationError, match=match) as caught:
            WeChatPayV3Client("1900000109", pem, SERIAL, APIV3_KEY, wechatpay_public_key_id="PUB_KEY_ID_1",
                              wechatpay_public_key=spec.public_pem(PLATFORM))  # fmt: skip
        assert "BEGIN" not in str(caught.value)
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_bytes(spec.private_pem(KEY))
    client = WeChatPayV3Client(
        "1900000109",
        str(key_file),
        SERIAL.lower(),
        APIV3_KEY,
        wechatpay_public_key=spec.public_pem(PLATFORM).decode(),
        wechatpay_public_key_id="PUB_KEY_ID_1",
    )
    assert client.certificate_serial_no == SERIAL


REFUND: dict[str, Any] = {"refund": 100, "total": 300, "out_trade_no": "T1"}
GOODS: dict[str, Any] = {"merchant_goods_id": "1", "unit_price": 1, "refund_amount": 1, "refund_quantity": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"refund": 301}, "refund"),
        ({"refund": 0}, "refund"),
        ({"refund": 1.0}, "refund"),
        ({"refund": True}, "refund"),
        ({"total": "300"}, "total"),
        ({"transaction_id": "4200001"}, "out_trade_no"),
        ({"out_trade_no": None}, "out_trade_no"),
        ({"out_trade_no": "T 1"}, "out_trade_no"),
        ({"out_refund_no": "R#1"}, "out_refund_no"),
        ({"out_refund_no": "R" * 65}, "out_refund_no"),
        ({"reason": "退" * 27}, "reason"),
        ({"reason": ""}, "reason"),
        ({"notify_url": "https://shop.example/notify?order=1"}, "notify_url"),
        ({"notify_url": "ftp://shop.example/notify"}, "notify_url"),
        ({"funds_account": "BASIC"}, "funds_account"),
        ({"currency": "cny"}, "currency"),
        ({"goods_detail": []}, "goods_detail"),
        ({"goods_detail": [{**GOODS, "unit_price": 1.5}]}, "goods_detail unit_price"),
        ({"goods_detail": [{**GOODS, "extra": 1}]}, "goods_detail"),
        ({"amount_from": [FundsFrom(account="AVAILABLE", amount=101)]}, "amount_from"),
        ({"amount_from": [{"account": "AVAILABLE"}]}, "amount_from amount"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)  # fmt: skip
async def test_refund_arguments_are_checked_before_any_io(changes: dict[str, Any], field: str) -> None:
    async with _client() as client:
        with pytest.raises(ValidationError) as caught:
            await client.refund(**{**REFUND, **changes})
    assert caught.value.field == field


async def test_funds_account_is_only_available() -> None:
    """A refund request's ``funds_account`` takes the one documented value, ``AVAILABLE``.

    /work/shared/specs/wechatpay-v3.md:64-65 — "``funds_account`` (``AVAILABLE``)"; wechatpay-go
    ``services/refunddomestic/models.go`` enumerates ``ReqFundsAccount`` as ``AVAILABLE`` alone
    (UNSETTLED, BASIC... are values of the *reply's* ``funds_account``). Anything else would only be
    refused by WeChat after the send (PARAM_ERROR): it is a ValidationError before any I/O.
    """
    async with _client() as client:
        with pytest.raises(ValidationError) as caught:
            await client.refund(**REFUND, funds_account="UNSETTLED")
    assert caught.value.field == "funds_account"


async def test_valid_goods_detail_and_amount_from_are_accepted_shapes() -> None:
    from paykit_async.providers.wechatpay_v3.requests import encode_body, refund_fields

    fields = refund_fields(
        sub_mchid="1900000001",
        refund=100,
        total=300,
        out_trade_no=None,
        transaction_id="4200000000000000000000000001",
        out_refund_no="R-1",
        reason="退款",
        notify_url="https://shop.example/notify",
        funds_account="AVAILABLE",
        currency="CNY",
        goods_detail=[
            RefundGoodsDetail(merchant_goods_id="SKU1", unit_price=100, refund_amount=100, refund_quantity=1)
        ],
        amount_from=[FundsFrom(account="AVAILABLE", amount=100)],
    )
    assert encode_body(fields).decode() == (
        '{"sub_mchid":"1900000001","transaction_id":"4200000000000000000000000001","out_refund_no":"R-1",'
        '"reason":"退款","notify_url":"https://shop.example/notify","funds_account":"AVAILABLE",'
        '"amount":{"refund":100,"from":[{"account":"AVAILABLE","amount":100}],"total":300,"currency":"CNY"},'
        '"goods_detail":[{"merchant_goods_id":"SKU1","unit_price":100,"refund_amount":100,"refund_quantity":1}]}'
    )


async def test_query_and_close_check_their_numbers() -> None:
    async with _client() as client:
        with pytest.raises(ValidationError):
            await client.query_refund("R#1")
        with pytest.raises(ValidationError):
            await client.close_order("T" * 33)
        with pytest.raises(ValidationError, match="public key"):
            await client.refresh_certificates()


def test_no_secret_in_any_repr() -> None:
    client = _client(sub_mchid="1900000001")
    pem = spec.private_pem(KEY).decode()
    body = pem.split("\n")[1]
    shown = " ".join(
        repr(x)
        for x in (
            client,
            client.dialect,
            client.certificates,
            client.certificates.keys,
            client._notifications,
            client._cipher,
        )
    )
    assert APIV3_KEY not in shown
    assert body not in shown
    assert "mchid=1900000109" in repr(client)
    assert "sub_mchid=1900000001" in repr(client)


async def test_keyed_refunds_derive_their_number_like_every_other_provider() -> None:
    # A lost journal must not mint a new number: the client, refund_many and the CLI all derive
    # the same documented number from (provider, merchant, key).
    from paykit_async import derive_refund_no
    from paykit_async.batch import refund_number_rule

    client = _client()
    expected = derive_refund_no(provider="wechatpay-v3", merchant="1900000109", key="order-7:refund-1")
    assert client.derived_refund_no("order-7:refund-1") == expected
    operation = await client.validate_refund(
        refund=100, total=300, out_trade_no="T7", idempotency_key="order-7:refund-1"
    )
    assert operation.refund_no == expected
    rule = refund_number_rule(client)
    assert rule is not None
    fixed, number = rule.fix({"out_trade_no": "T7"}, key="order-7:refund-1", merchant=client.refund_merchant)
    assert number == expected == fixed["out_refund_no"]
    partner = _client(sub_mchid="1900000001")
    assert partner.derived_refund_no("k") == derive_refund_no(
        provider="wechatpay-v3", merchant="1900000109/1900000001", key="k"
    )
