"""The fake WeChat Pay API v3: refund, refund query, close order, platform certificates, and
signed, AES-GCM-encrypted refund notifications, under ``/wechatpay-v3``.

Every request's ``Authorization`` signature is verified with the merchant's public key (bad ones
get an unsigned 401 SIGN_ERROR, as WeChat does); every other reply — errors included — is
signed over ``timestamp\\nnonce\\nbody\\n``. The simulator's WeChat-side keys (an RSA public key and
a platform certificate) are generated on first use, as is the merchant's API key when the
configuration gives none. Protocol timestamps (the ±5-minute window of requests, the stamps of
replies and notifications) use the real wall clock; business time (refund completion, order
age) uses the simulator's clock. This module uses ``cryptography`` directly, not the client's
signing code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from .clock import CHINA
from .config import WeChatPayV3Merchant
from .faults import Fault, FaultKind
from .http import HttpReply, HttpRequest
from .ledger import Refund
from .state import Handled, ProviderHandler, WeChatRefundRefused, tamper

__all__ = ["WeChatPayV3Handler", "WeChatPayV3Keys"]

JSON = "application/json"
REFUNDS = "/v3/refund/domestic/refunds"
CLOSE = re.compile(r"/v3/pay(/partner)?/transactions/out-trade-no/([^/]+)/close\Z")
_NUMBER = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}\Z")
_AUTH_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*\Z')
_MAX_ITEMS = 8
#: Ledger states → v3 refund status (CHANGE is WeChat's ABNORMAL; FAIL ends CLOSED).
_STATUS = {"SUCCESS": "SUCCESS", "CLOSED": "CLOSED", "FAIL": "CLOSED", "CHANGE": "ABNORMAL"}
_EVENT = {"SUCCESS": "REFUND.SUCCESS", "CLOSED": "REFUND.CLOSED", "ABNORMAL": "REFUND.ABNORMAL"}
_SYSTEM_ERROR = ("SYSTEM_ERROR", "系统错误")
AMOUNT_MISMATCH = "同一商户退款单号的退款金额或订单与之前请求不一致，请核实后再试"
#: :class:`WeChatRefundRefused` rule → (HTTP status, code, message).
_REFUSALS = {
    "mismatch": (400, "INVALID_REQUEST", AMOUNT_MISMATCH),
    "unpaid": (400, "INVALID_REQUEST", "订单未支付"),
    "total": (400, "PARAM_ERROR", "订单金额与实际支付金额不一致"),
    "too_many": (400, "INVALID_REQUEST", "订单退款次数已超过限制"),
    "over": (400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
    "balance": (403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起"),
}


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_merchant_key(source: str | bytes) -> rsa.RSAPrivateKey:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant's private_key must be an RSA key")
    return key


@attrs.frozen(kw_only=True)
class PlatformCertificate:
    """One of the simulator's platform certificates, with its private key."""

    serial: str
    key: rsa.RSAPrivateKey = attrs.field(repr=False)
    pem: bytes = attrs.field(repr=False)
    not_before: dt.datetime
    not_after: dt.datetime


def _issue_certificate(serial: int, now: float) -> PlatformCertificate:
    key = _new_key()
    start = dt.datetime.fromtimestamp(now, dt.timezone.utc) - dt.timedelta(hours=1)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paykit simulator (not Tenpay)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "WeChat Pay APIv3 platform certificate (simulated)"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )
    return PlatformCertificate(
        serial=format(serial, "X"),
        key=key,
        pem=certificate.public_bytes(serialization.Encoding.PEM),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


@attrs.frozen(kw_only=True)
class WeChatPayV3Keys:
    """What a client needs to talk to the simulator's WeChat Pay v3 (public-key mode)::

        keys = sim.wechatpay_v3_keys()
        client = WeChatPayV3Client(**keys.client_kwargs(), base_url=sim.base_url("wechatpay-v3"), ...)

    ``private_key`` is the merchant's API private key (PEM) and ``wechatpay_public_key`` the
    simulator's WeChat Pay public key (PEM). Simulator keys: never valid at WeChat.
    """

    mchid: str
    private_key: bytes = attrs.field(repr=False)
    certificate_serial_no: str
    apiv3_key: str = attrs.field(repr=False)
    wechatpay_public_key: bytes = attrs.field(repr=False)
    wechatpay_public_key_id: str

    def client_kwargs(self, *, public_key: bool = True) -> dict[str, Any]:
        """``WeChatPayV3Client`` keyword arguments; without ``public_key`` the client runs in
        platform-certificate mode."""
        kwargs: dict[str, Any] = {
            "mchid": self.mchid,
            "private_key": self.private_key,
            "certificate_serial_no": self.certificate_serial_no,
            "apiv3_key": self.apiv3_key,
        }
        if public_key:
            kwargs["wechatpay_public_key"] = self.wechatpay_public_key
            kwargs["wechatpay_public_key_id"] = self.wechatpay_public_key_id
        return kwargs

    def write(self, directory: str | os.PathLike[str]) -> dict[str, str]:
        """Write ``apiclient_key.pem`` (mode 0600) and ``wechatpay_public_key.pem``; return the
        config keys pointing at them (``private_key``, ``wechatpay_public_key``)."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        key_path = root / "apiclient_key.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.private_key)
        public_path = root / "wechatpay_public_key.pem"
        public_path.write_bytes(self.wechatpay_public_key)
        return {"private_key": str(key_path), "wechatpay_public_key": str(public_path)}


class _KeyMaterial:
    """The simulator's v3 keys, generated once on first use (RSA key generation takes a while)."""

    def __init__(self, merchant: WeChatPayV3Merchant) -> None:
        self._merchant = merchant
        self._lock = threading.Lock()
        self._ready = False
        self.merchant_key: rsa.RSAPrivateKey
        self.merchant_public: rsa.RSAPublicKey
        self.public_key: rsa.RSAPrivateKey
        self.certificates: list[PlatformCertificate] = []

    def ensure(self) -> _KeyMaterial:
        if self._ready:
            return self
        with self._lock:
            if not self._ready:
                source = self._merchant.private_key
                self.merchant_key = _load_merchant_key(source) if source is not None else _new_key()
                self.merchant_public = self.merchant_key.public_key()
                self.public_key = _new_key()
                self.certificates = [_issue_certificate(0x6A1C3D5E7F9B0001, time.time())]
                self._ready = True
        return self

    def rotate(self) -> PlatformCertificate:
        self.ensure()
        with self._lock:
            serial = int(self.certificates[-1].serial, 16) + 1
            certificate = _issue_certificate(serial, time.time())
            self.certificates = [*self.certificates, certificate]
            return certificate

    def keys(self) -> WeChatPayV3Keys:
        self.ensure()
        merchant = self._merchant
        return WeChatPayV3Keys(
            mchid=merchant.mchid,
            private_key=_pem_private(self.merchant_key),
            certificate_serial_no=merchant.certificate_serial_no,
            apiv3_key=merchant.apiv3_key,
            wechatpay_public_key=_pem_public(self.public_key.public_key()),
            wechatpay_public_key_id=merchant.wechatpay_public_key_id,
        )


class _Refused(Exception):
    """A business error to answer with a signed ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


class WeChatPayV3Handler(ProviderHandler):
    """WeChat Pay API v3 under ``/wechatpay-v3``."""

    name = "wechatpay-v3"
    prefix = "/wechatpay-v3"
    routes: Mapping[str, str] = {REFUNDS: "refund", "/v3/certificates": "certificates"}

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.material = _KeyMaterial(self.merchant)

    @property
    def merchant(self) -> WeChatPayV3Merchant:
        merchant: WeChatPayV3Merchant = self.state.config.wechatpay_v3
        return merchant

    def match_route(self, path: str) -> str | None:
        if path.startswith(REFUNDS + "/"):
            return "refundquery"
        if CLOSE.match(path):
            return "closeorder"
        return None

    # -- signing ------------------------------------------------------------------------------

    def _signing_key(self, request: HttpRequest | None) -> tuple[str, rsa.RSAPrivateKey]:
        material = self.material.ensure()
        merchant = self.merchant
        asked = request.headers.get("wechatpay-serial") if request is not None else None
        if merchant.mode == "public_key" or asked == merchant.wechatpay_public_key_id:
            return merchant.wechatpay_public_key_id, material.public_key
        current = material.certificates[-1]
        return current.serial, current.key

    def sign_headers(
        self, body: bytes, request: HttpRequest | None = None, *, bad: bool = False
    ) -> dict[str, str]:
        """The Wechatpay-* headers of ``body``, stamped now (``bad``: a verifiably wrong signature)."""
        serial, key = self._signing_key(request)
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        return {
            "wechatpay-timestamp": timestamp,
            "wechatpay-nonce": nonce,
            "wechatpay-serial": serial,
            "wechatpay-signature": tamper(signature) if bad else signature,
            "request-id": secrets.token_hex(12),
        }

    def _signed(
        self,
        status: int,
        document: Mapping[str, Any] | None,
        request: HttpRequest | None,
        fault: Fault | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        body = b"" if document is None else json.dumps(document, ensure_ascii=False).encode()
        bad = fault is not None and fault.kind is FaultKind.BAD_SIGNATURE
        signed = self.sign_headers(body, request, bad=bad)
        signed.update(headers or {})
        return HttpReply(status=status, content_type=JSON if body else "", body=body, headers=signed)

    def server_error_reply(self, status: int) -> HttpReply:
        code, message = _SYSTEM_ERROR
        return self._signed(status, {"code": code, "message": message}, None)

    # -- requests -----------------------------------------------------------------------------

    def _authenticate(self, request: HttpRequest) -> str | None:
        """None when the request's signature verifies, else why not."""
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme != "WECHATPAY2-SHA256-RSA2048":
            return "Authorization 不是 WECHATPAY2-SHA256-RSA2048"
        items: dict[str, str] = {}
        parts = rest.split(",")
        if len(parts) > _MAX_ITEMS:
            return "Authorization 格式错误"
        for part in parts:
            match = _AUTH_ITEM.match(part)
            if match is None:
                return "Authorization 格式错误"
            items[match.group(1)] = match.group(2)
        needed = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
        if any(not items.get(name) for name in needed):
            return "Authorization 缺少参数"
        merchant = self.merchant
        if items["mchid"] != merchant.mchid:
            return "商户号与签名不匹配"
        if items["serial_no"].upper() != merchant.certificate_serial_no.upper():
            return "商户证书序列号有误"
        stamp = items["timestamp"]
        if not (stamp.isdigit() and len(stamp) <= 12) or abs(time.time() - int(stamp)) > 300:
            return "请求时间戳已过期"
        message = f"{request.method}\n{request.target}\n{stamp}\n{items['nonce_str']}\n".encode()
        message += request.body + b"\n"
        try:
            raw = base64.b64decode(items["signature"], validate=True)
            self.material.ensure().merchant_public.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return "签名错误"
        return None

    async def handle(self, endpoint: str, request: HttpRequest, fault: Fault) -> Handled:
        problem = self._authenticate(request)
        if problem is not None:
            body = json.dumps({"code": "SIGN_ERROR", "message": problem}, ensure_ascii=False).encode()
            # WeChat cannot sign a reply to a request it could not authenticate.
            return Handled(reply=HttpReply(status=401, content_type=JSON, body=body), outcome="SIGN_ERROR")
        expected = "GET" if endpoint in ("refundquery", "certificates") else "POST"
        if request.method != expected:
            return self._refusal(
                request, fault, _Refused(405, "INVALID_REQUEST", f"请使用{expected}方法"), {}
            )
        fields: dict[str, Any] = {}
        if expected == "POST":
            try:
                parsed = json.loads(request.body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return self._refusal(request, fault, _Refused(400, "PARAM_ERROR", "请求体不是合法的JSON"), {})
            if not isinstance(parsed, dict):
                return self._refusal(request, fault, _Refused(400, "PARAM_ERROR", "请求体不是JSON对象"), {})
            fields = parsed
        if fault.kind is FaultKind.RATE_LIMITED:
            refused = _Refused(429, "FREQUENCY_LIMITED", "频率超限")
            return self._refusal(request, fault, refused, fields, {"retry-after": str(fault.retry_after)})
        if fault.kind is FaultKind.RETRYABLE_CODE:
            return self._refusal(request, fault, _Refused(500, *_SYSTEM_ERROR), fields)
        status, document = 200, None
        try:
            with self.state.ledger.lock:
                self.state.settle_due()
                if endpoint == "refund":
                    refund_no = self._refund(fields)
                    self.state.settle_due()
                    document = self._refund_document(self._refund_of(refund_no))
                elif endpoint == "refundquery":
                    document, fields = self._query(request)
                elif endpoint == "closeorder":
                    self._close(request, fields)
                    status = 204
                else:
                    document = self._certificate_list()
        except _Refused as refused:
            return self._refusal(request, fault, refused, fields)
        return Handled(reply=self._signed(status, document, request, fault), fields=fields)

    def _refusal(
        self,
        request: HttpRequest,
        fault: Fault,
        refused: _Refused,
        fields: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> Handled:
        document = {"code": refused.code, "message": refused.message}
        reply = self._signed(refused.status, document, request, fault, headers)
        return Handled(reply=reply, fields=dict(fields), outcome=refused.code)

    # -- business rules -----------------------------------------------------------------------

    def _refund_of(self, refund_no: str) -> Refund:
        refund = self.state.ledger.refund(self.name, refund_no)
        assert refund is not None
        return refund

    def _refund(self, fields: Mapping[str, Any]) -> str:
        """Execute (or find) the refund ``fields`` ask for; return its number."""
        refund_no = fields.get("out_refund_no")
        if not isinstance(refund_no, str) or not _NUMBER.match(refund_no):
            raise _Refused(400, "PARAM_ERROR", "out_refund_no 格式错误")
        out_trade_no, transaction_id = fields.get("out_trade_no"), fields.get("transaction_id")
        if not isinstance(out_trade_no, str | None) or not isinstance(transaction_id, str | None):
            raise _Refused(400, "PARAM_ERROR", "订单号格式错误")
        if not (out_trade_no or transaction_id):
            raise _Refused(400, "PARAM_ERROR", "transaction_id和out_trade_no必须填写其中一个")
        amount = fields.get("amount")
        if not isinstance(amount, Mapping):
            raise _Refused(400, "PARAM_ERROR", "缺少参数amount")
        refund_fee, total = _fen(amount.get("refund"), "refund"), _fen(amount.get("total"), "total")
        if amount.get("currency") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "currency 仅支持 CNY")
        if refund_fee <= 0 or refund_fee > total:
            raise _Refused(400, "PARAM_ERROR", "退款金额必须大于0且不能大于订单金额")
        reason = fields.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason.encode("utf-8")) > 80):
            raise _Refused(400, "PARAM_ERROR", "reason 不能超过80字节")
        if "funds_account" in fields and fields["funds_account"] != "AVAILABLE":
            raise _Refused(400, "PARAM_ERROR", "funds_account 仅支持 AVAILABLE")
        order = self.find_wechat_order(out_trade_no or "", transaction_id or "", total=total, paid=True)
        if order is None:
            raise _Refused(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        kept = {
            k: str(fields[k])
            for k in ("reason", "funds_account", "sub_mchid")
            if isinstance(fields.get(k), str)
        }
        try:
            self.execute_wechat_refund(
                order,
                refund_no=refund_no,
                refund_fee=refund_fee,
                total=total,
                refund_id_prefix="50300",
                notify_url=str(fields.get("notify_url") or ""),
                fields=kept,
            )
        except WeChatRefundRefused as refused:
            raise _Refused(*_REFUSALS[refused.rule]) from None
        return refund_no

    def _refund_document(self, refund: Refund) -> dict[str, Any]:
        order = self.state.ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        status = _STATUS.get(refund.state, "PROCESSING")
        document: dict[str, Any] = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.refund_no,
            "transaction_id": order.provider_no,
            "out_trade_no": order.order_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": _rfc3339(refund.created_at),
            "status": status,
            "amount": {
                "total": order.total,
                "refund": refund.amount,
                "from": [],
                "payer_total": order.total,
                "payer_refund": refund.amount,
                "settlement_refund": refund.amount,
                "settlement_total": order.total,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if status == "SUCCESS" and refund.completed_at is not None:
            document["success_time"] = _rfc3339(refund.completed_at)
        if refund.fields.get("funds_account"):
            document["funds_account"] = refund.fields["funds_account"]
        return document

    def _query(self, request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        path, _, query = request.target.partition("?")
        refund_no = unquote(path.rsplit("/", 1)[-1])
        fields: dict[str, Any] = {"out_refund_no": refund_no}
        refund = self.state.ledger.refund(self.name, refund_no)
        sub_mchid = parse_qs(query).get("sub_mchid", [None])[0]
        if sub_mchid is not None:
            fields["sub_mchid"] = sub_mchid
        if refund is None or refund.fields.get("sub_mchid") != sub_mchid:
            raise _Refused(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._refund_document(refund), fields

    def _close(self, request: HttpRequest, fields: Mapping[str, Any]) -> None:
        match = CLOSE.match(request.target.split("?")[0].removeprefix(self.prefix))
        assert match is not None
        partner, out_trade_no = match.group(1) is not None, unquote(match.group(2))
        mchid = self.merchant.mchid
        if partner:
            if fields.get("sp_mchid") != mchid or not isinstance(fields.get("sub_mchid"), str):
                raise _Refused(400, "PARAM_ERROR", "sp_mchid 或 sub_mchid 有误")
        elif fields.get("mchid") != mchid:
            raise _Refused(400, "PARAM_ERROR", "mchid 与请求签名的商户号不一致")
        order = self.find_wechat_order(
            out_trade_no, "", total=self.state.config.payjs_auto_order_amount, paid=False
        )
        if order is None or order.closed:
            return  # WeChat answers 204 for an unknown or already closed order too
        if order.paid:
            raise _Refused(403, "TRADE_ERROR", "订单已支付，不能发起关单")
        if self.state.now() - order.created_at < self.state.config.wechatpay_close_after:
            raise _Refused(400, "INVALID_REQUEST", "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟")
        self.state.ledger.close_order(order)
        return

    def _certificate_list(self) -> dict[str, Any]:
        cipher = AESGCM(self.merchant.apiv3_key.encode())
        data = []
        for certificate in self.material.ensure().certificates:
            nonce = secrets.token_hex(6)
            sealed = cipher.encrypt(nonce.encode(), certificate.pem, b"certificate")
            data.append(
                {
                    "serial_no": certificate.serial,
                    "effective_time": certificate.not_before.astimezone(CHINA).isoformat(),
                    "expire_time": certificate.not_after.astimezone(CHINA).isoformat(),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": base64.b64encode(sealed).decode(),
                    },
                }
            )
        return {"data": data}

    # -- notifications ------------------------------------------------------------------------

    def refund_completed(self, refund: Refund) -> None:
        if not refund.notify_url:
            return
        order = self.state.ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        status = _STATUS.get(refund.state, refund.state)
        merchant = self.merchant
        resource: dict[str, Any] = {}
        sub_mchid = refund.fields.get("sub_mchid")
        if sub_mchid:
            resource |= {"sp_mchid": merchant.mchid, "sub_mchid": sub_mchid}
        else:
            resource["mchid"] = merchant.mchid
        resource |= {
            "out_trade_no": order.order_no,
            "transaction_id": order.provider_no,
            "out_refund_no": refund.refund_no,
            "refund_id": refund.refund_id,
            "refund_status": status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": order.total,
                "refund": refund.amount,
                "payer_total": order.total,
                "payer_refund": refund.amount,
            },
        }
        if status == "SUCCESS" and refund.completed_at is not None:
            resource["success_time"] = _rfc3339(refund.completed_at)
        nonce = secrets.token_hex(6)
        sealed = AESGCM(merchant.apiv3_key.encode()).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), b"refund"
        )
        envelope = {
            "id": f"EV-{secrets.token_hex(10)}",
            "create_time": _rfc3339(self.state.now()),
            "resource_type": "encrypt-resource",
            "event_type": _EVENT.get(status, f"REFUND.{status}"),
            "summary": "退款成功" if status == "SUCCESS" else "退款状态变更",
            "resource": {
                "original_type": "refund",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode(),
                "associated_data": "refund",
                "nonce": nonce,
            },
        }
        self.state.outbox.add(
            provider=self.name,
            kind="refund",
            reference=refund.refund_no,
            url=refund.notify_url,
            body=json.dumps(envelope, ensure_ascii=False).encode(),
            content_type=JSON,
            acknowledged=_acknowledged,
            now=self.state.now(),
            sign_headers=self.sign_headers,
        )


def _acknowledged(status: int, _body: bytes) -> bool:
    return status in (200, 204)


def _fen(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**12:
        raise _Refused(400, "PARAM_ERROR", f"{name} 必须是以分为单位的整数")
    return value


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, CHINA).replace(microsecond=0).isoformat()
