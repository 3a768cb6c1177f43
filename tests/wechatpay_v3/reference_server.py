"""An independent WeChat Pay API v3 server for tests, written from the public spec (``spec.py``).

It is not the simulator and imports nothing from paykit_async: it verifies every request's
``Authorization`` signature itself (and refuses bad ones with 401 SIGN_ERROR), keeps a small
refund ledger (idempotent by ``out_refund_no``), signs every reply with the WeChat Pay public key
or the current platform certificate, serves ``/v3/certificates`` (encrypted with the APIv3 key),
and misbehaves on request: tampered, unsigned, stale, probe-signed or forged replies, retryable
and final errors, proxy error pages, certificate rotation. Served over TLS by uvicorn
(``tests.servers.serve_asgi``) in a thread; every method is thread-safe.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from . import spec

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

REFUNDS = "/v3/refund/domestic/refunds"
CLOSE_PREFIXES = ("/v3/pay/transactions/out-trade-no/", "/v3/pay/partner/transactions/out-trade-no/")


@attrs.frozen(kw_only=True)
class Certificate:
    """A platform certificate: its serial (upper-case hex), key and PEM."""

    serial: str
    key: rsa.RSAPrivateKey
    pem: bytes
    not_before: dt.datetime
    not_after: dt.datetime


def make_certificate(
    serial: int,
    *,
    key: rsa.RSAPrivateKey | None = None,
    valid_for: dt.timedelta = dt.timedelta(days=365 * 5),
    not_before: dt.datetime | None = None,
) -> Certificate:
    """A self-signed platform certificate with serial number ``serial``."""
    key = key if key is not None else spec.new_key()
    start = not_before if not_before is not None else dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test platform")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        serial=format(serial, "X"),
        key=key,
        pem=cert.public_bytes(serialization.Encoding.PEM),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


@attrs.frozen(kw_only=True)
class Received:
    """One request as the server saw it, with the outcome of its own signature check."""

    method: str
    target: str
    body: bytes
    headers: dict[str, str]
    authorization: dict[str, str]
    verified: bool
    status: int = 0


@attrs.frozen(kw_only=True)
class Fault:
    """What to do to the next request matching ``route`` (``refund``, ``query``, ``close``,
    ``certificates`` or ``*``). ``kind``: tamper, unsigned, stale, probe, forged, system_error
    (before the work), system_error_after (after it), frequency_limited, param_error, not_enough,
    unsigned_not_enough, proxy_502, unknown_serial (signed with a certificate that is not
    published)."""

    route: str
    kind: str


class ReferenceWeChatPayV3:
    """The server. ``sign_with`` is ``"public_key"`` or the serial of a platform certificate."""

    def __init__(
        self,
        *,
        mchid: str,
        merchant_serial: str,
        merchant_public_key: rsa.RSAPublicKey,
        apiv3_key: bytes,
        public_key_id: str | None = None,
        certificates: tuple[Certificate, ...] = (),
        sub_mchid: str | None = None,
    ) -> None:
        self.mchid = mchid
        self.merchant_serial = merchant_serial
        self.merchant_public_key = merchant_public_key
        self.apiv3_key = apiv3_key
        self.sub_mchid = sub_mchid
        self.public_key_id = public_key_id
        self.public_key = spec.new_key() if public_key_id is not None else None
        self._lock = threading.Lock()
        self.certificates: list[Certificate] = list(certificates)
        self.sign_with = "public_key" if public_key_id is not None else certificates[-1].serial
        self.orders: dict[str, int] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.executions: collections.Counter[str] = collections.Counter()
        self.received: list[Received] = []
        self.faults: collections.deque[Fault] = collections.deque()
        self.closed: set[str] = set()
        self.rogue = make_certificate(0xBADC0FFEE)

    # -- test controls --------------------------------------------------------------------------

    def add_order(self, out_trade_no: str, total: int) -> None:
        with self._lock:
            self.orders[out_trade_no] = total

    def fault(self, route: str, kind: str, times: int = 1) -> None:
        with self._lock:
            self.faults.extend(Fault(route=route, kind=kind) for _ in range(times))

    def rotate(self, certificate: Certificate, *, publish: bool = True) -> None:
        """Sign with ``certificate`` from now on (published in /v3/certificates unless not)."""
        with self._lock:
            if publish and certificate not in self.certificates:
                self.certificates.append(certificate)
            self.sign_with = certificate.serial if publish else f"unpublished:{certificate.serial}"
            if not publish:
                self.rogue = certificate

    def requests_to(self, route: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if _route(r.method, r.target.split("?")[0]) == route]

    # -- signing --------------------------------------------------------------------------------

    def _signing_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        if self.sign_with == "public_key":
            assert self.public_key is not None
            assert self.public_key_id is not None
            return self.public_key_id, self.public_key
        if self.sign_with.startswith("unpublished:"):
            return self.rogue.serial, self.rogue.key
        (certificate,) = [c for c in self.certificates if c.serial == self.sign_with]
        return certificate.serial, certificate.key

    def _reply(self, status: int, body: bytes, fault: str | None = None) -> tuple[int, dict[str, str], bytes]:
        serial, key = self._signing_key()
        headers = {"content-type": "application/json"} if body else {}
        stamp = int(time.time())
        if fault == "stale":
            stamp -= 400
        if fault == "unknown_serial":
            serial, key = self.rogue.serial, self.rogue.key
        if fault == "forged":
            key = spec.new_key()
        headers.update(spec.signed_headers(key, serial, body, timestamp=stamp))
        if fault == "probe":
            headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"][19:]
        if fault == "unsigned":
            headers = {k: v for k, v in headers.items() if not k.startswith("Wechatpay-")}
        if fault == "tamper":
            if body:
                body += b" "  # still JSON, no longer what was signed
            else:  # a 204 carries no body to alter: alter what was signed with it
                headers["Wechatpay-Nonce"] += "0"
        return status, headers, body

    def _error(
        self, status: int, code: str, message: str, fault: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
        return self._reply(status, body, fault)

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, reply_headers, reply = self.handle(scope["method"], target, headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            authorization, verified = self._authenticate(method, target, headers, body)
            path = target.split("?")[0]
            route = _route(method, path)
            fault = None
            for candidate in list(self.faults):
                if candidate.route in (route, "*"):
                    self.faults.remove(candidate)
                    fault = candidate.kind
                    break
            if not verified:
                result: tuple[int, dict[str, str], bytes] = (
                    401,
                    {"content-type": "application/json"},
                    b'{"code":"SIGN_ERROR","message":"signature verification failed"}',
                )
            else:
                result = self._dispatch(route, method, target, body, fault)
            self.received.append(
                Received(
                    method=method,
                    target=target,
                    body=body,
                    headers=headers,
                    authorization=authorization,
                    verified=verified,
                    status=result[0],
                )
            )
            return result

    def _authenticate(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[dict[str, str], bool]:
        try:
            items = spec.parse_authorization(headers.get("authorization", ""))
        except ValueError:
            return {}, False
        if items["mchid"] != self.mchid or items["serial_no"] != self.merchant_serial:
            return items, False
        if not items["timestamp"].isdigit() or abs(time.time() - int(items["timestamp"])) > 300:
            return items, False
        message = spec.request_message(method, target, items["timestamp"], items["nonce_str"], body)
        return items, spec.verifies(self.merchant_public_key, message, items["signature"])

    def _dispatch(
        self, route: str, method: str, target: str, body: bytes, fault: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if fault == "proxy_502":
            return 502, {"content-type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        if fault == "system_error":
            return self._error(500, "SYSTEM_ERROR", "系统错误")
        if fault == "frequency_limited":
            return self._error(429, "FREQUENCY_LIMITED", "频率超限")
        if fault == "param_error":
            return self._error(400, "PARAM_ERROR", "参数错误")
        if fault == "not_enough":
            return self._error(403, "NOT_ENOUGH", "余额不足")
        if fault == "unsigned_not_enough":
            return self._error(403, "NOT_ENOUGH", "余额不足", "unsigned")
        if fault == "forged_error":
            return self._error(400, "PARAM_ERROR", "参数错误", "forged")
        if route == "refund":
            status, document = self._refund(json.loads(body))
        elif route == "query":
            status, document = self._query(target)
        elif route == "close":
            status, document = self._close(target, json.loads(body))
        elif route == "certificates":
            status, document = 200, self._certificate_list(short_nonce=fault == "short_nonce")
        else:
            status, document = 404, {"code": "NOT_FOUND", "message": target}
        if fault == "system_error_after":
            return self._error(500, "SYSTEM_ERROR", "系统错误")
        reply = b"" if status == 204 else json.dumps(document, ensure_ascii=False).encode()
        return self._reply(status, reply, fault)

    # -- business --------------------------------------------------------------------------------

    def _refund(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.sub_mchid is not None and request.get("sub_mchid") != self.sub_mchid:
            return 403, {"code": "NO_AUTH", "message": "sub_mchid"}
        number = request.get("out_refund_no")
        order = request.get("out_trade_no") or request.get("transaction_id")
        amount = request.get("amount", {})
        if not isinstance(number, str) or order not in self.orders:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        existing = self.refunds.get(number)
        if existing is not None:
            if (existing["out_trade_no"], existing["amount"]["refund"]) != (order, amount.get("refund")):
                return 400, {"code": "INVALID_REQUEST", "message": "退款单号重复"}
            return 200, existing
        total = self.orders[order]
        if amount.get("total") != total or amount.get("currency") != "CNY":
            return 400, {"code": "PARAM_ERROR", "message": "订单金额不一致"}
        refunded = sum(r["amount"]["refund"] for r in self.refunds.values() if r["out_trade_no"] == order)
        if refunded + amount["refund"] > total:
            return 400, {"code": "INVALID_REQUEST", "message": "退款金额超过订单可退金额"}
        refund = {
            "refund_id": f"50300{len(self.refunds) + 1:024d}",
            "out_refund_no": number,
            "transaction_id": f"42000{len(self.orders):023d}",
            "out_trade_no": order,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": "2026-11-22T10:00:00+08:00",
            "status": "PROCESSING",
            "amount": {
                "total": total,
                "refund": amount["refund"],
                "from": [],
                "payer_total": total,
                "payer_refund": amount["refund"],
                "settlement_refund": amount["refund"],
                "settlement_total": total,
                "discount_refund": 0,
                "currency": "CNY",
            },
            "promotion_detail": [],
        }
        self.refunds[number] = refund
        self.executions[number] += 1
        return 200, refund

    def _query(self, target: str) -> tuple[int, dict[str, Any]]:
        path, _, query = target.partition("?")
        if self.sub_mchid is not None and parse_qs(query).get("sub_mchid") != [self.sub_mchid]:
            return 403, {"code": "NO_AUTH", "message": "sub_mchid"}
        from urllib.parse import unquote

        number = unquote(path.removeprefix(REFUNDS + "/"))
        refund = self.refunds.get(number)
        if refund is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
        return 200, {**refund, "status": "SUCCESS", "success_time": "2026-11-22T10:00:05+08:00"}

    def _close(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        partner = target.startswith(CLOSE_PREFIXES[1])
        expected = {"sp_mchid": self.mchid, "sub_mchid": self.sub_mchid} if partner else {"mchid": self.mchid}
        if partner != (self.sub_mchid is not None) or request != expected:
            return 400, {"code": "PARAM_ERROR", "message": "mchid"}
        self.closed.add(target.split("/")[-2])
        return 204, {}

    def _certificate_list(self, *, short_nonce: bool = False) -> dict[str, Any]:
        data = []
        for certificate in self.certificates:
            nonce = secrets.token_hex(6)
            data.append(
                {
                    "serial_no": certificate.serial,
                    "effective_time": certificate.not_before.isoformat(),
                    "expire_time": certificate.not_after.isoformat(),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        # short_nonce: 7 bytes, fewer than an AES-GCM implementation takes.
                        "nonce": nonce[:7] if short_nonce else nonce,
                        "associated_data": "certificate",
                        "ciphertext": spec.encrypt(
                            self.apiv3_key, certificate.pem, nonce=nonce, associated_data="certificate"
                        ),
                    },
                }
            )
        return {"data": data}


def _route(method: str, path: str) -> str:
    if path == REFUNDS and method == "POST":
        return "refund"
    if path.startswith(REFUNDS + "/") and method == "GET":
        return "query"
    if path.startswith(CLOSE_PREFIXES) and path.endswith("/close") and method == "POST":
        return "close"
    if path == "/v3/certificates" and method == "GET":
        return "certificates"
    return "unknown"
