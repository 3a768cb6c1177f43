"""A refund service on FastAPI: ``POST /refunds/{provider}`` and the providers' notification endpoints.

Run it (``pip install "paykit_async[asgi]" fastapi uvicorn``), in this directory::

    PAYKIT_CONFIG=paykit.toml uvicorn app:app

``PAYKIT_CONFIG`` names the TOML file of the ``paykit`` command — sections ``[wechatpay]``,
``[wechatpay-v3]``, ``[payjs]``, ``[eftpay]`` whose keys are the client constructors' keywords —
and ``PAYKIT_<PROVIDER>_<KEY>`` variables override it (keep secrets there). Every provider with a
section gets a client, created in the lifespan and closed at shutdown. ``PAYKIT_STORE`` is where
idempotency keys and handled notifications are remembered: a SQLite file path or a ``redis://``
URL, shared by every process serving this app (default: in memory, one process).

``POST /refunds/{provider}``: the JSON body holds the provider's ``refund()`` keywords (eftPay:
with ``notify_url`` it is ``apply_refund()``); the ``Idempotency-Key`` header becomes
``idempotency_key``, so a retried request never refunds twice. Answers:

- 200 ``{"status": "accepted", "refund_no": ..., "replayed": ..., "attempts": ..., "result": {...}}``;
- 202 ``{"status": "unknown", "refund_no": ...}`` when the provider may or may not have executed
  the refund: send the same request with the same ``Idempotency-Key`` again later (it resumes the
  same refund number; never a new one);
- 400 for a body that is not a JSON object, 404 for a provider that is not configured, 422 for
  bad fields (``{"error": {"type": "validation_error", "field": ..., "message": ...}}``);
- 409 when the ``Idempotency-Key`` was used for a different request (nothing was sent);
- 422 ``{"error": {"type": "provider_error", "code": ..., "message": ...}}`` when the provider
  refused (e.g. ``NOTENOUGH``), 503 when it was unavailable (retryable, nothing executed).

Notifications: ``POST /notify/wechatpay``, ``/notify/wechatpay-v3``, ``/notify/payjs``,
``/notify/eftpay`` (use these as ``notify_url``). Each is :func:`paykit_async.asgi.notification_app`:
verified (WeChat Pay confirmed by query), handled once per notification however often it is
redelivered, answered in the provider's format. ``GET /notifications`` lists what this process
handled (a stand-in for your database).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from paykit_async import (
    IdempotencyConflict,
    IdempotencyStore,
    MemoryStore,
    PaykitError,
    ProviderError,
    RedisStore,
    RefundOutcomeUnknown,
    SQLiteStore,
    ValidationError,
)
from paykit_async.asgi import notification_app
from paykit_async.cli.config import PROVIDERS, build_client, configured_providers, load_settings

logger = logging.getLogger("fastapi_service")


def open_store(where: str | None) -> IdempotencyStore:
    """``PAYKIT_STORE``: a ``redis://`` URL, a SQLite path, or nothing (memory, one process)."""
    if not where:
        return MemoryStore()
    if where.startswith(("redis://", "rediss://")):
        return RedisStore(where)
    return SQLiteStore(where)


def recorder(app: FastAPI, provider: str) -> Callable[[Any], Any]:
    """The notification handler: record what happened (your database update goes here)."""

    async def handle(notification: Any) -> None:
        if provider == "payjs":
            reference, status = notification.payjs_order_id, "PAID" if notification.paid else "UNPAID"
        elif provider == "eftpay":
            reference, status = (
                notification.refund_no or notification.out_trade_no,
                str(notification.trade_status),
            )
        else:
            reference, status = notification.out_refund_no, notification.refund_status
        logger.info("%s notification: %s is %s", provider, reference, status)
        app.state.handled.append({"provider": provider, "reference": reference, "status": status})

    return handle


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    config_file = os.environ.get("PAYKIT_CONFIG")
    store = open_store(os.environ.get("PAYKIT_STORE"))
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.aclose)
        clients: dict[str, Any] = {}
        for provider in configured_providers(config_file):
            client = build_client(load_settings(provider, config_file), idempotency_store=store)
            stack.push_async_callback(client.aclose)
            clients[provider] = client
        if not clients:
            raise RuntimeError("PAYKIT_CONFIG (or PAYKIT_<PROVIDER>_* variables) configures no provider")
        app.state.clients = clients
        app.state.handled = []
        app.state.notify = {
            provider: notification_app(client, recorder(app, provider), idempotency_store=store)
            for provider, client in clients.items()
        }
        logger.info("serving %s", ", ".join(clients))
        yield
        logger.info("shutting down: closing %d client(s)", len(clients))


app = FastAPI(title="paykit_async refund service", lifespan=lifespan)


class ProviderNotifications:
    """Forwards to the provider's notification app, which the lifespan created."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["app"].state.notify.get(self.provider)
        if endpoint is None:
            response = JSONResponse(_error("unknown_provider", f"{self.provider} is not configured"), 404)
            await response(scope, receive, send)
            return
        await endpoint(scope, receive, send)


# A mount at /notify whose routes match the exact paths: a bare ``app.mount("/notify/payjs", ...)``
# would redirect /notify/payjs to /notify/payjs/, and providers do not follow redirects.
app.mount(
    "/notify",
    Router(routes=[Route(f"/{p}", ProviderNotifications(p), methods=["POST"]) for p in PROVIDERS]),
)


@app.get("/notifications")
async def handled_notifications(request: Request) -> list[dict[str, str]]:
    return list(request.app.state.handled)


@app.post("/refunds/{provider}")
async def refund(provider: str, request: Request) -> JSONResponse:
    client = request.app.state.clients.get(provider)
    if client is None:
        return JSONResponse(_error("unknown_provider", f"{provider!r} is not configured"), 404)
    try:
        keywords = json.loads(await request.body(), parse_float=Decimal)  # money stays exact
    except ValueError:
        return JSONResponse(_error("invalid_json", "the body must be a JSON object"), 400)
    if not isinstance(keywords, dict):
        return JSONResponse(_error("invalid_json", "the body must be a JSON object"), 400)
    key = request.headers.get("idempotency-key")
    if key is not None:
        keywords["idempotency_key"] = key
    method = client.apply_refund if provider == "eftpay" and "notify_url" in keywords else client.refund
    problem = _check_keywords(method, keywords)
    if problem is not None:
        return JSONResponse(_error("validation_error", problem), 422)
    try:
        result = await method(**keywords)
    except ValidationError as error:
        return JSONResponse(_error("validation_error", error.message, field=error.field), 422)
    except IdempotencyConflict as error:
        return JSONResponse(_error("idempotency_conflict", error.message), 409)
    except RefundOutcomeUnknown as error:
        body = {"status": "unknown", "refund_no": error.refund_no, "message": error.message}
        return JSONResponse(body, 202)
    except ProviderError as error:
        body = _error("provider_error", error.message, code=error.code, retryable=error.retryable)
        return JSONResponse(body, 503 if error.retryable else 422)
    except PaykitError as error:  # nothing was executed (e.g. the connection was refused)
        return JSONResponse(_error(type(error).__name__, error.message, retryable=error.retryable), 503)
    rule = client.refund_number_rule
    return JSONResponse(
        {
            "status": "accepted",
            "refund_no": getattr(result, rule.field),
            "replayed": result.replayed,
            "attempts": result.attempts,
            "result": _jsonable(result),
        }
    )


def _check_keywords(method: Callable[..., Any], keywords: dict[str, Any]) -> str | None:
    parameters = inspect.signature(method).parameters
    unknown = sorted(set(keywords) - set(parameters))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(parameters)}"
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in keywords
    ]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    return None


def _error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


def _jsonable(result: object) -> dict[str, Any]:
    def value(_instance: object, _attribute: object, item: Any) -> Any:
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, Enum):
            return item.value
        return item

    return attrs.asdict(result, filter=lambda attribute, _: attribute.name != "raw", value_serializer=value)
