"""The fake WeChat Pay v2: refund, refundv2, refund query and close order, with encrypted notifications.

Protocol problems (bad XML, bad signature, unknown merchant) answer ``return_code=FAIL`` with a
``return_msg`` and no signature, as WeChat does; business problems answer ``result_code=FAIL``
with ``err_code``/``err_code_des``, signed with the request's ``sign_type``. Fields the
simulator does not know (the legacy ``op_user_id``, for instance) are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..codecs import decode_xml, encode_xml
from ..errors import DecodeError, ValidationError
from ..signing import KeyedHmacSha256Signer, KeyedMd5Signer, Signer
from .clock import china_time
from .faults import Fault, FaultKind
from .http import HttpReply, HttpRequest
from .ledger import Order, Refund
from .state import Handled, ProviderHandler, WeChatRefundRefused, tamper

__all__ = ["WeChatPayHandler", "encrypt_req_info"]

XML = "text/xml; charset=utf-8"
AMOUNT_MISMATCH = "订单金额或退款金额与之前请求不一致，请核实后再试"
#: :class:`WeChatRefundRefused` rule → (err_code, err_code_des).
_REFUSALS = {
    "mismatch": ("PARAM_ERROR", AMOUNT_MISMATCH),
    "unpaid": ("ERROR", "订单未支付"),
    "total": ("PARAM_ERROR", "订单金额与实际支付金额不一致"),
    "too_many": ("ERROR", "订单退款次数已超过限制"),
    "over": ("ERROR", "申请退款金额超过订单可退金额"),
    "balance": ("NOTENOUGH", "基本账户余额不足，请充值后重新发起"),
    "overdue": ("TRADE_OVERDUE", "订单已经超过退款期限"),
}
#: Merchant numbers (out_trade_no, out_refund_no; transaction_id is digits): the spec's charset.
_NUMBER = re.compile(r"[0-9A-Za-z_\-|*@]+\Z")
#: Refund request fields whose format the spec fixes: name → (longest length, pattern or choices).
_FORMATS: dict[str, tuple[int, re.Pattern[str] | frozenset[str] | None]] = {
    "nonce_str": (32, None),
    "out_trade_no": (32, _NUMBER),
    "transaction_id": (32, _NUMBER),
    "out_refund_no": (64, _NUMBER),
    "refund_desc": (80, None),
    "notify_url": (256, None),
    "refund_account": (
        len("REFUND_SOURCE_UNSETTLED_FUNDS"),
        frozenset({"REFUND_SOURCE_UNSETTLED_FUNDS", "REFUND_SOURCE_RECHARGE_FUNDS"}),
    ),
}
_CERT_PAGE = (
    b"<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>No required SSL certificate was sent</center>\r\n</body>\r\n</html>\r\n"
)
_REFUND_STATUS = {"SUCCESS": "SUCCESS", "CLOSED": "REFUNDCLOSE", "FAIL": "REFUNDCLOSE", "CHANGE": "CHANGE"}
_RETRYABLE = (("SYSTEMERROR", "系统超时"), ("BIZERR_NEED_RETRY", "退款业务流程错误，需要商户触发重试来解决"))


def encrypt_req_info(plaintext: bytes, api_key: str) -> str:
    """Encrypt a notification's inner XML: AES-256-ECB under ``md5hex(api_key)``, PKCS#7, base64."""
    key = hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")  # noqa: S324 - protocol
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the protocol's choice
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


class _Refused(Exception):
    """A business error to answer with ``result_code=FAIL``."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(code)
        self.code = code
        self.description = description


class WeChatPayHandler(ProviderHandler):
    """WeChat Pay API v2 under ``/wechatpay``."""

    name = "wechatpay"
    prefix = "/wechatpay"
    routes: Mapping[str, str] = {
        "/secapi/pay/refund": "refund",
        "/secapi/pay/refundv2": "refundv2",
        "/pay/refundquery": "refundquery",
        "/pay/closeorder": "closeorder",
    }

    def server_error_reply(self, status: int) -> HttpReply:
        return HttpReply(
            status=status,
            content_type="text/html",
            body=f"<html><body><h1>{status} Server Error</h1></body></html>".encode(),
        )

    # -- request handling ---------------------------------------------------------------------

    async def handle(self, endpoint: str, request: HttpRequest, fault: Fault) -> Handled:
        merchant = self.state.config.wechatpay
        if endpoint.startswith("refund") and endpoint != "refundquery" and request.client_cert is False:
            return Handled(
                reply=HttpReply(status=400, content_type="text/html", body=_CERT_PAGE), outcome="NOCERT"
            )
        if request.method != "POST":
            return self._protocol_error("请使用post方法", outcome="REQUIRE_POST_METHOD")
        try:
            fields = decode_xml(request.body)
        except DecodeError:
            return self._protocol_error("XML格式错误", outcome="XML_FORMAT_ERROR")
        sign_type = fields.get("sign_type") or "MD5"
        if sign_type not in ("MD5", "HMAC-SHA256"):
            return self._protocol_error("sign_type参数格式错误", fields, outcome="PARAM_ERROR")
        if fields.get("appid") != merchant.appid or fields.get("mch_id") != merchant.mch_id:
            return self._protocol_error("appid和mch_id不匹配", fields, outcome="MCHID_NOT_EXIST")
        signer = self._signer(sign_type)
        if not fields.get("nonce_str") or not signer.verify(fields, fields.get("sign", "")):
            return self._protocol_error("签名错误", fields, outcome="SIGNERROR")
        if fault.kind is FaultKind.RATE_LIMITED:
            return self._business_error(signer, fields, fault, "FREQUENCY_LIMITED", "频率限制")
        if fault.kind is FaultKind.RETRYABLE_CODE:
            code, text = _RETRYABLE[int(fault.draw * 1000) % 2]
            return self._business_error(signer, fields, fault, code, text)
        try:
            with self.state.ledger.lock:
                self.state.settle_due()
                if endpoint in ("refund", "refundv2"):
                    result = self._refund(fields, endpoint)
                    self.state.settle_due()
                elif endpoint == "refundquery":
                    result = self._refund_query(fields)
                else:
                    result = self._close_order(fields)
        except _Refused as refused:
            return self._business_error(signer, fields, fault, refused.code, refused.description)
        reply = self._envelope(fields) | {"result_code": "SUCCESS"} | result
        return Handled(reply=self._signed(signer, reply, fault), fields=fields)

    def _signer(self, sign_type: str) -> Signer:
        key = self.state.config.wechatpay.api_key
        if sign_type == "HMAC-SHA256":
            return KeyedHmacSha256Signer(key=key)
        return KeyedMd5Signer(key=key)

    def _envelope(self, fields: Mapping[str, str]) -> dict[str, str]:
        merchant = self.state.config.wechatpay
        reply = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": merchant.appid,
            "mch_id": merchant.mch_id,
            "nonce_str": secrets.token_hex(16),
        }
        for name in ("sub_appid", "sub_mch_id"):
            if fields.get(name):
                reply[name] = fields[name]
        return reply

    def _signed(self, signer: Signer, reply: dict[str, str], fault: Fault) -> HttpReply:
        sign = signer.sign(reply)
        reply["sign"] = tamper(sign) if fault.kind is FaultKind.BAD_SIGNATURE else sign
        return HttpReply(content_type=XML, body=encode_xml(reply))

    def _protocol_error(
        self, message: str, fields: Mapping[str, str] | None = None, *, outcome: str
    ) -> Handled:
        body = encode_xml({"return_code": "FAIL", "return_msg": message})
        return Handled(
            reply=HttpReply(content_type=XML, body=body), fields=dict(fields or {}), outcome=outcome
        )

    def _business_error(
        self, signer: Signer, fields: Mapping[str, str], fault: Fault, code: str, description: str
    ) -> Handled:
        reply = self._envelope(fields) | {
            "result_code": "FAIL",
            "err_code": code,
            "err_code_des": description,
        }
        return Handled(reply=self._signed(signer, reply, fault), fields=fields, outcome=code)

    # -- business rules -----------------------------------------------------------------------

    def _find_order(self, fields: Mapping[str, str], *, total: int | None, paid: bool = True) -> Order:
        out_trade_no = fields.get("out_trade_no", "")
        transaction_id = fields.get("transaction_id", "")
        if not (out_trade_no or transaction_id):
            raise _Refused("PARAM_ERROR", "transaction_id和out_trade_no必须填写其中一个")
        order = self.find_wechat_order(out_trade_no, transaction_id, total=total, paid=paid)
        if order is None:
            raise _Refused("ORDERNOTEXIST", "订单不存在")
        return order

    def _refund(self, fields: Mapping[str, str], endpoint: str) -> dict[str, str]:
        _check_formats(fields)
        refund_no = fields.get("out_refund_no", "")
        total_fee = _fen(fields.get("total_fee", ""), "total_fee")
        refund_fee = _fen(fields.get("refund_fee", ""), "refund_fee")
        if not refund_no:
            raise _Refused("PARAM_ERROR", "缺少参数out_refund_no")
        if refund_fee <= 0 or refund_fee > total_fee:
            raise _Refused("PARAM_ERROR", "退款金额必须大于0且不能大于订单金额")
        order = self._find_order(fields, total=total_fee)
        kept = {k: fields[k] for k in ("refund_account", "refund_desc", "refund_fee_type") if fields.get(k)}
        kept["endpoint"] = endpoint
        try:
            refund = self.execute_wechat_refund(
                order,
                refund_no=refund_no,
                refund_fee=refund_fee,
                total=total_fee,
                refund_id_prefix="50000",
                notify_url=fields.get("notify_url", ""),
                fields=kept,
                refund_within=self.state.config.wechatpay_refund_within,
            )
        except WeChatRefundRefused as refused:
            raise _Refused(*_REFUSALS[refused.rule]) from None
        return self._refund_reply(order, refund)

    def _refund_reply(self, order: Order, refund: Refund) -> dict[str, str]:
        reply = {
            "transaction_id": order.provider_no,
            "out_trade_no": order.order_no,
            "out_refund_no": refund.refund_no,
            "refund_id": refund.refund_id,
            "refund_fee": str(refund.amount),
            "settlement_refund_fee": str(refund.amount),
            "total_fee": str(order.total),
            "settlement_total_fee": str(order.total),
            "fee_type": "CNY",
            "cash_fee": str(order.total),
            "cash_fee_type": "CNY",
            "cash_refund_fee": str(refund.amount),
            "coupon_refund_fee": "0",
            "coupon_refund_count": "0",
        }
        if refund.fields.get("endpoint") == "refundv2":
            reply["promotion_detail"] = '{"promotion_detail":[]}'
        return reply

    def _refund_query(self, fields: Mapping[str, str]) -> dict[str, str]:
        ledger = self.state.ledger
        refunds: list[Refund]
        order: Order | None
        if fields.get("refund_id") or fields.get("out_refund_no"):
            refund = (
                ledger.refund_by_id(self.name, fields["refund_id"])
                if fields.get("refund_id")
                else ledger.refund(self.name, fields["out_refund_no"])
            )
            if refund is None:
                raise _Refused("REFUNDNOTEXIST", "退款订单查询失败")
            refunds = [refund]
            order = ledger.order(self.name, order_no=refund.order_no)
        elif fields.get("transaction_id") or fields.get("out_trade_no"):
            order = ledger.order(
                self.name,
                order_no=fields.get("out_trade_no", "") if not fields.get("transaction_id") else "",
                provider_no=fields.get("transaction_id", ""),
            )
            refunds = ledger.refunds_of(order) if order is not None else []
        else:
            raise _Refused(
                "PARAM_ERROR", "out_refund_no、out_trade_no、transaction_id、refund_id必须填写其中一个"
            )
        if order is None or not refunds:
            raise _Refused("REFUNDNOTEXIST", "退款订单查询失败")
        offset_text = fields.get("offset", "")
        offset = (
            int(offset_text)
            if offset_text.isascii() and offset_text.isdigit() and len(offset_text) < 9
            else 0
        )
        page = refunds[offset : offset + 10]
        if not page:
            raise _Refused("REFUNDNOTEXIST", "退款订单查询失败")
        reply = {
            "transaction_id": order.provider_no,
            "out_trade_no": order.order_no,
            "total_fee": str(order.total),
            "cash_fee": str(order.total),
            "fee_type": "CNY",
            "refund_count": str(len(page)),
            "total_refund_count": str(len(refunds)),
        }
        if offset_text:
            reply["offset"] = str(offset)
        for n, refund in enumerate(page):
            status = _REFUND_STATUS.get(refund.state, "PROCESSING")
            reply |= {
                f"out_refund_no_{n}": refund.refund_no,
                f"refund_id_{n}": refund.refund_id,
                f"refund_channel_{n}": "ORIGINAL",
                f"refund_fee_{n}": str(refund.amount),
                f"settlement_refund_fee_{n}": str(refund.amount),
                f"refund_status_{n}": status,
                f"refund_account_{n}": refund.fields.get("refund_account", "REFUND_SOURCE_UNSETTLED_FUNDS"),
                f"refund_recv_accout_{n}": "支付用户的零钱",
                f"coupon_refund_count_{n}": "0",
            }
            if refund.state == "SUCCESS" and refund.completed_at is not None:
                reply[f"refund_success_time_{n}"] = china_time(refund.completed_at, "%Y-%m-%d %H:%M:%S")
        return reply

    def _close_order(self, fields: Mapping[str, str]) -> dict[str, str]:
        if not fields.get("out_trade_no"):
            raise _Refused("PARAM_ERROR", "缺少参数out_trade_no")
        order = self._find_order(
            {"out_trade_no": fields["out_trade_no"]},
            total=self.state.config.payjs_auto_order_amount,
            paid=False,
        )
        if order.paid:
            raise _Refused("ORDERPAID", "订单已支付，不能发起关单")
        if order.closed:
            raise _Refused("ORDERCLOSED", "订单已关闭，无法重复关闭")
        if self.state.now() - order.created_at < self.state.config.wechatpay_close_after:
            raise _Refused("ERROR", "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟")
        self.state.ledger.close_order(order)
        return {"result_msg": "OK"}

    # -- notifications ------------------------------------------------------------------------

    def refund_completed(self, refund: Refund) -> None:
        if not refund.notify_url:
            return
        merchant = self.state.config.wechatpay
        order = self.state.ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        inner = {
            "transaction_id": order.provider_no,
            "out_trade_no": order.order_no,
            "refund_id": refund.refund_id,
            "out_refund_no": refund.refund_no,
            "total_fee": str(order.total),
            "settlement_total_fee": str(order.total),
            "refund_fee": str(refund.amount),
            "settlement_refund_fee": str(refund.amount),
            "refund_status": _REFUND_STATUS.get(refund.state, refund.state),
            "refund_recv_accout": "支付用户的零钱",
            "refund_account": refund.fields.get("refund_account", "REFUND_SOURCE_UNSETTLED_FUNDS"),
            "refund_request_source": "API",
        }
        if refund.state == "SUCCESS" and refund.completed_at is not None:
            inner["success_time"] = china_time(refund.completed_at, "%Y-%m-%d %H:%M:%S")
        outer = {
            "return_code": "SUCCESS",
            "appid": merchant.appid,
            "mch_id": merchant.mch_id,
            "nonce_str": secrets.token_hex(16),
            "req_info": encrypt_req_info(encode_xml(inner, root="root"), merchant.api_key),
        }
        self.state.outbox.add(
            provider=self.name,
            kind="refund",
            reference=refund.refund_no,
            url=refund.notify_url,
            body=encode_xml(outer),
            content_type=XML,
            acknowledged=_wechat_acknowledged,
            now=self.state.now(),
        )


def _wechat_acknowledged(status: int, body: bytes) -> bool:
    if status != 200:
        return False
    try:
        return decode_xml(body).get("return_code") == "SUCCESS"
    except (DecodeError, ValidationError):
        return False


def _check_formats(fields: Mapping[str, str]) -> None:
    """The refund request's lengths and charsets (specs/wechatpay-v2.md, refund request fields):
    WeChat refuses a value outside them with PARAM_ERROR before looking at the order."""
    for name, (longest, allowed) in _FORMATS.items():
        value = fields.get(name, "")
        if not value:
            continue
        if (
            len(value) > longest
            or (isinstance(allowed, re.Pattern) and allowed.match(value) is None)
            or (isinstance(allowed, frozenset) and value not in allowed)
        ):
            raise _Refused("PARAM_ERROR", f"{name}参数格式错误")


def _fen(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise _Refused("PARAM_ERROR", f"{name}参数格式错误")
    return int(text)
