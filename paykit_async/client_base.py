"""What every provider client shares: transport setup, the middleware pipeline, ``async with``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TypedDict

from .errors import ValidationError
from .pipeline.clock import Clock
from .pipeline.core import Dialect, Exchange, Middleware, Operation, Outcome, Pipeline
from .pipeline.retry import RetryBudget, RetryMiddleware, RetryPolicy
from .transport.base import Transport
from .transport.httpx_transport import HttpxTransport
from .transport.tls import ClientCertificate
from .transport.wire import Timeouts, TransportSettings

if TYPE_CHECKING:
    from typing_extensions import Self

    from .pipeline.stores.base import IdempotencyStore

__all__ = ["BaseClient", "ClientOptions"]


class ClientOptions(TypedDict, total=False):
    """Keyword options every provider client accepts (``**options: Unpack[ClientOptions]``)."""

    ca_file: str | os.PathLike[str] | None
    retry: RetryPolicy | None
    transport: Transport | None
    middleware: Sequence[Middleware]
    idempotency_store: IdempotencyStore | None
    timeouts: Timeouts | None
    max_connections: int
    retry_budget: RetryBudget | None
    clock: Clock | None


class BaseClient:
    """Owns one transport (and so one connection pool and one SSL context) and one pipeline.

    Middleware order, outermost first: idempotency (when a store is given), retry, then the
    user's ``middleware`` — which therefore run once per attempt — then the exchange.
    """

    provider: str = ""

    def __init__(
        self,
        *,
        dialect: Dialect,
        base_url: str,
        cert: ClientCertificate | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        middleware: Sequence[Middleware] = (),
        idempotency_store: IdempotencyStore | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        retry_budget: RetryBudget | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValidationError(
                "must start with https:// (or http:// for a local simulator)", field="base_url"
            )
        self.base_url = base_url.rstrip("/")
        self.cert = cert
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.idempotency_store = idempotency_store
        self.max_connections = max_connections
        self.transport: Transport = transport if transport is not None else HttpxTransport()
        self.transport.configure(
            TransportSettings(
                certificate=cert,
                ca_file=None if ca_file is None else os.fspath(ca_file),
                timeouts=timeouts if timeouts is not None else Timeouts(),
                max_connections=max_connections,
            )
        )
        layers: list[Middleware] = []
        if idempotency_store is not None:
            from .pipeline.idempotency import IdempotencyMiddleware

            layers.append(IdempotencyMiddleware(idempotency_store))
        layers.append(RetryMiddleware(self.retry_policy, budget=self.retry_budget, clock=clock))
        layers.extend(middleware)
        self.dialect = dialect
        self.pipeline = Pipeline(layers, Exchange(dialect=dialect, transport=self.transport))

    def add_middleware(self, middleware: Middleware, *, outer: bool = False) -> None:
        """Add a middleware after construction (integrations such as :mod:`paykit_async.otel`).

        By default it runs once per attempt, innermost (nearest the wire, after the ``middleware=``
        given to the constructor); with ``outer=True`` it wraps the whole call — idempotency,
        retries, waits and settle queries — and runs once per operation. Add middlewares before
        the client is used concurrently.
        """
        layers = self.pipeline.middlewares
        layers = (middleware, *layers) if outer else (*layers, middleware)
        self.pipeline = Pipeline(layers, self.pipeline.handler)

    async def _call(self, operation: Operation) -> Outcome:
        return await self.pipeline(operation)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def aclose(self) -> None:
        """Close the transport's connections."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
