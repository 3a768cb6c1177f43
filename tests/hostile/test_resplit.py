"""Re-split signed strings are never believed (issue 12, finding 5).

``k=v&k=v`` is ambiguous when a value holds ``&``: a genuinely signed message whose free text
holds ``&mchid=…&out_trade_no=VICTIM…`` can be re-split into another field set with the same
signed string. The rule (paykit_async.signing.canonical): a signed string is believed only as its
split reading, so no signed value may hold ``&name=`` and every name must be a plain name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from paykit_async import EftPayClient, PayJSClient, SignatureError
from paykit_async.signing import KeyedMd5Signer, ambiguous_field, canonical_string, is_blank, is_php_empty

from .support import (
    EFT_SECRET,
    EFT_UCK,
    HOSTILE,
    PAYJS_KEY,
    PAYJS_MCHID,
    WECHAT_APPID,
    WECHAT_MCH_ID,
    always,
    eft_sign,
    json_of,
    payjs_client,
    payjs_sign,
    wechat_client,
    wechat_sign,
    xml_of,
)

BACKENDS = ["asyncio", "trio"]
VICTIM = "VICTIM-ORDER-9"


def _payjs() -> PayJSClient:
    return PayJSClient(PAYJS_MCHID, PAYJS_KEY, base_url="http://127.0.0.1:9")


def _form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def _genuine_payjs_notification() -> dict[str, str]:
    """What PAYJS signs for a real 1-fen order whose ``attach`` the customer chose."""
    smuggled = (
        f"x&mchid={PAYJS_MCHID}&openid=o1&out_trade_no={VICTIM}&payjs_order_id=P9&return_code=1"
        "&time_end=2024-01-01 00:00:00&total_fee=99999&transaction_id=T9&zz="
    )
    fields = {
        "attach": smuggled,
        "mchid": PAYJS_MCHID,
        "openid": "o-real",
        "out_trade_no": "REAL-ORDER-1",
        "payjs_order_id": "P1",
        "return_code": "1",
        "time_end": "2024-01-01 00:00:01",
        "total_fee": "1",
        "transaction_id": "T1",
    }
    return {**fields, "sign": payjs_sign(fields)}


def _resplit_payjs_notification(genuine: dict[str, str]) -> dict[str, str]:
    """The attacker's field set: the smuggled fields, with the genuine ones hidden in ``zz``."""
    rest = {k: v for k, v in genuine.items() if k not in ("attach", "sign")}
    hidden = "&" + "&".join(f"{k}={rest[k]}" for k in sorted(rest))
    forged = {
        "attach": "x",
        "mchid": PAYJS_MCHID,
        "openid": "o1",
        "out_trade_no": VICTIM,
        "payjs_order_id": "P9",
        "return_code": "1",
        "time_end": "2024-01-01 00:00:00",
        "total_fee": "99999",
        "transaction_id": "T9",
        "zz": hidden,
        "sign": genuine["sign"],
    }
    return forged


def test_the_issue_reproducer_is_a_genuine_signature() -> None:
    genuine = _genuine_payjs_notification()
    forged = _resplit_payjs_notification(genuine)
    signer = KeyedMd5Signer(key=PAYJS_KEY, is_empty=is_php_empty)
    # The same signed string, so the signature alone cannot tell them apart.
    assert canonical_string(forged, is_empty=is_php_empty) == canonical_string(genuine, is_empty=is_php_empty)
    assert signer.verify(forged, genuine["sign"])


def test_a_resplit_payjs_notification_is_refused() -> None:
    forged = _resplit_payjs_notification(_genuine_payjs_notification())
    with pytest.raises(SignatureError, match="ambiguous") as caught:
        _payjs().parse_notification(_form(forged))
    assert "zz" in caught.value.message


def test_the_genuine_but_ambiguous_notification_is_refused_too() -> None:
    # Its signed string reads as the attacker's fields as well: neither reading can be believed.
    with pytest.raises(SignatureError, match="attach"):
        _payjs().parse_notification(_form(_genuine_payjs_notification()))


def _signed_notification(attach: str) -> bytes:
    """A genuinely signed PAYJS notification form body whose ``attach`` is ``attach``."""
    fields = {
        "attach": attach,
        "mchid": PAYJS_MCHID,
        "out_trade_no": "O1",
        "payjs_order_id": "P1",
        "return_code": "1",
        "total_fee": "100",
    }
    return _form({**fields, "sign": payjs_sign(fields)})


@pytest.mark.parametrize(
    "attach", ["a&b", "Tom & Jerry=cats", "a&", "&", "a&&b", "x=1", "a&b c=d", "50% & more"]
)
def test_values_with_ampersands_that_cannot_split_are_accepted(attach: str) -> None:
    note = _payjs().parse_notification(_signed_notification(attach))
    assert note.attach == attach


@pytest.mark.parametrize("attach", ["a&b=c", "x&total_fee=1", "&k=", "x&jsapi[appId]=y", "a&B_2=z"])
def test_values_that_could_split_are_refused(attach: str) -> None:
    with pytest.raises(SignatureError, match="ambiguous"):
        _payjs().parse_notification(_signed_notification(attach))


@pytest.mark.parametrize("name", ["a&b", "a=b", "a b", "a[b]", "", "a.b"])
def test_field_names_that_are_not_plain_are_refused(name: str) -> None:
    fields = {"mchid": PAYJS_MCHID, "out_trade_no": "O1", "payjs_order_id": "P1", "return_code": "1"}
    fields |= {"total_fee": "100", name: "v"}
    with pytest.raises(SignatureError):
        _payjs().parse_notification(_form({**fields, "sign": payjs_sign(fields)}))


def test_a_name_holding_a_newline_cannot_re_split_a_signed_value() -> None:
    # The genuine notification is believed: "&b\nnote=" is no split point (a newline is not part
    # of a plain name). Re-split at it, the same signed string reads as a shorter attach plus a
    # field "b\nnote" — whose name the fast path took for two plain names joined by its newline.
    genuine = {
        "attach": "paid in app&b\nnote=late",
        "mchid": PAYJS_MCHID,
        "out_trade_no": "O1",
        "payjs_order_id": "P1",
        "return_code": "1",
        "total_fee": "100",
    }
    sign = payjs_sign(genuine)
    forged = {**genuine, "attach": "paid in app", "b\nnote": "late"}
    assert canonical_string(forged, is_empty=is_php_empty) == canonical_string(genuine, is_empty=is_php_empty)
    assert _payjs().parse_notification(_form({**genuine, "sign": sign})).attach == genuine["attach"]
    with pytest.raises(SignatureError, match="ambiguous"):
        _payjs().parse_notification(_form({**forged, "sign": sign}))
    assert ambiguous_field(forged, is_empty=is_php_empty) == repr("b\nnote")


def test_a_name_holding_a_newline_cannot_re_split_an_eftpay_notification() -> None:
    genuine = {
        "out_trade_no": "REAL-1",
        "refund_desc": "sorry&refund_e\nx=1",
        "refund_no": "R-REAL",
        "trade_status": "TRADE_CLOSED",
        "trade_type": "REFUND",
        "transaction_amount": "0.01",
        "user_confirm_key": EFT_UCK,
    }
    sign = eft_sign(genuine)
    forged = {**genuine, "refund_desc": "sorry", "refund_e\nx": "1", "sign": sign}
    assert eft_sign(forged) == sign
    client = EftPayClient(EFT_UCK, EFT_SECRET, base_url="http://127.0.0.1:9")
    believed = client.parse_notification(json_of({**genuine, "sign": sign}))
    assert believed.raw["refund_desc"] == genuine["refund_desc"]
    with pytest.raises(SignatureError, match="ambiguous"):
        client.parse_notification(json_of(forged))


def test_a_resplit_eftpay_notification_is_refused() -> None:
    genuine = {
        "out_trade_no": "REAL-1",
        "refund_desc": f"sorry&refund_no={VICTIM}&trade_status=TRADE_CLOSED&transaction_amount=9999.00&zz=",
        "refund_no": "R-REAL",
        "trade_status": "TRADE_FAIL",
        "trade_type": "REFUND",
        "transaction_amount": "0.01",
        "user_confirm_key": EFT_UCK,
    }
    sign = eft_sign(genuine)
    rest = {k: v for k, v in genuine.items() if k not in ("out_trade_no", "refund_desc")}
    forged = {
        "out_trade_no": "REAL-1",
        "refund_desc": "sorry",
        "refund_no": VICTIM,
        "trade_status": "TRADE_CLOSED",
        "transaction_amount": "9999.00",
        "zz": "&" + "&".join(f"{k}={rest[k]}" for k in sorted(rest)),
        "sign": sign,
    }
    assert eft_sign(forged) == sign  # a genuine signature over the same string
    client = EftPayClient(EFT_UCK, EFT_SECRET, base_url="http://127.0.0.1:9")
    for body in (json_of(forged), json_of({**genuine, "sign": sign})):
        with pytest.raises(SignatureError, match="ambiguous"):
            client.parse_notification(body)


def _wechat_query_reply(**extra: str) -> dict[str, str]:
    fields = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": WECHAT_APPID,
        "mch_id": WECHAT_MCH_ID,
        "nonce_str": "n1",
        "result_code": "SUCCESS",
        "out_trade_no": "T1",
        "transaction_id": "4200",
        "total_fee": "100",
        "refund_count": "1",
        "out_refund_no_0": "R1",
        "refund_id_0": "5000",
        "refund_fee_0": "100",
        "refund_status_0": "PROCESSING",
        **extra,
    }
    fields["sign"] = wechat_sign(fields)
    return fields


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resplit_wechat_reply_is_refused(backend: str) -> None:
    # Text in a signed reply (refund_recv_accout_0) that reads as the rest of a reply.
    smuggled = (
        "零钱&refund_status_0=SUCCESS&result_code=SUCCESS&return_code=SUCCESS&return_msg=OK"
        "&total_fee=100&transaction_id=4200&zz="
    )
    genuine = _wechat_query_reply(refund_recv_accout_0=smuggled)
    names = sorted(k for k in genuine if k != "sign")
    text = "&".join(f"{k}={genuine[k]}" for k in names)
    # The attacker's reading: the smuggled SUCCESS becomes refund_status_0, the real reply's
    # remaining fields (its PROCESSING among them) hide in the value of "zz".
    head, tail = text.split("&zz=", 1)
    forged = dict(pair.split("=", 1) for pair in head.split("&"))
    forged["zz"] = tail
    forged["sign"] = genuine["sign"]
    assert wechat_sign(forged) == genuine["sign"]
    assert forged["refund_status_0"] == "SUCCESS"

    async def main() -> None:
        for reply in (forged, genuine):
            async with wechat_client(always(200, xml_of(reply))) as client:
                with pytest.raises(SignatureError, match="ambiguous"):
                    await client.query_refund(out_refund_no="R1")

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resplit_payjs_reply_is_refused(backend: str) -> None:
    fields = {"return_code": "1", "payjs_order_id": "P1", "status": "0", "attach": "x&status=1&zz="}
    fields["sign"] = payjs_sign(fields)

    async def main() -> None:
        async with payjs_client(always(200, json_of(fields))) as client:
            with pytest.raises(SignatureError, match="ambiguous"):
                await client.check(payjs_order_id="P1")

    anyio.run(main, backend=backend)


# -- the rule, as a property: at most one reading of any signed string is ever believed --------

_NAME_AT = re.compile(r"&(?=[A-Za-z0-9_]+(?:\[[A-Za-z0-9_]*\])*=)")


def readings(text: str) -> Iterator[dict[str, str]]:
    """Every field set whose WeChat/eftPay canonical string is ``text`` (cut at ``&name=``)."""
    cuts = [m.start() for m in _NAME_AT.finditer(text)][:10]
    for chosen in itertools.product((False, True), repeat=len(cuts)):
        bounds = [0] + [c + 1 for c, use in zip(cuts, chosen, strict=True) if use]
        ends = [c for c, use in zip(cuts, chosen, strict=True) if use] + [len(text)]
        pairs = [text[b:e].split("=", 1) for b, e in zip(bounds, ends, strict=True)]
        if any(len(pair) != 2 or not pair[1] for pair in pairs):
            continue
        names = [pair[0] for pair in pairs]
        if names != sorted(set(names)) or names != sorted(names):
            continue
        yield dict(pairs)  # type: ignore[arg-type]


_NAMES = st.sampled_from(["a", "b", "c", "k", "refund_no", "total_fee", "x_1", "zz"])
_VALUES = st.lists(
    st.sampled_from(["x", "1", "&", "=", "&a=", "&total_fee=9", "&zz=", "&k", " ", "&x_1=2", "中"]),
    min_size=1,
    max_size=5,
).map("".join)


@HOSTILE
@given(st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=5))
def test_at_most_one_reading_of_a_signed_string_is_ever_believed(fields: dict[str, str]) -> None:
    text = canonical_string(fields)
    believed = []
    for reading in readings(text):
        assert canonical_string(reading) == text  # each is a genuine re-split of the same string
        if ambiguous_field(reading, is_empty=is_blank) is None:
            believed.append(reading)
    assert len(believed) <= 1
    if ambiguous_field(fields) is None:
        assert believed == [fields]


def _ambiguous_field_by_field(fields: dict[object, object], is_empty: object) -> bool:
    """The re-split rule written out field by field, as the module docstring states it."""
    for name, value in fields.items():
        if name == "sign" or is_empty(value):  # type: ignore[operator]
            continue
        if not isinstance(name, str) or re.fullmatch("[A-Za-z0-9_]+", name) is None:
            return True
        if isinstance(value, str) and re.search(r"&[A-Za-z0-9_]+(?:\[[A-Za-z0-9_]*\])*=", value):
            return True
    return False


_ANY_NAMES = st.one_of(
    st.text(st.sampled_from("ab_9 &=[]\n\x00中"), max_size=4), st.integers(0, 3), st.none()
)
_ANY_VALUES = st.one_of(
    st.text(st.sampled_from("ab1 &=[]\n中"), max_size=8), st.sampled_from(["", "0", 0, 1, None, True])
)


@HOSTILE
@given(
    st.dictionaries(_ANY_NAMES, _ANY_VALUES, max_size=6),
    st.sampled_from([is_blank, is_php_empty]),
)
@example({"a\nb": "v"}, is_blank)
@example({"attach": "x", "b\nnote": "late"}, is_php_empty)
def test_the_fast_path_of_the_resplit_check_agrees_with_the_rule(
    fields: dict[object, object], is_empty: object
) -> None:
    # ambiguous_field answers flat text fields in two C-level passes; it must say exactly what
    # the field-by-field rule says, for any names (non-str too), values and empty rule.
    assert (ambiguous_field(fields, is_empty=is_empty) is not None) == _ambiguous_field_by_field(  # type: ignore[arg-type]
        fields, is_empty
    )
