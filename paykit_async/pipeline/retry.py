"""Retries: an immutable policy, a shared retry budget, and the middleware that applies them.

Every retry re-sends the same operation — the same refund number and amounts. What is retryable
is decided by the error itself (``PaykitError.retryable``), which each provider's decoder sets
from its documented error table; this layer knows no provider. When the last attempt of a refund
leaves the outcome unknown, the operation's ``settle`` query decides it, and if it cannot, the
caller gets :class:`RefundOutcomeUnknown` with the refund number — never a definite failure.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random

import attrs

from ..errors import (
    PaykitError,
    RefundOutcomeUnknown,
    SignatureError,
    TransportError,
    ValidationError,
)
from ..retry_after import parse_retry_after
from .clock import Clock, MonotonicClock, deadline_scope
from .core import Handler, Operation, Outcome, watch_sending
from .deadline import deadline_of_call, sharing_deadline

__all__ = ["RetryBudget", "RetryMiddleware", "RetryPolicy", "parse_retry_after"]

logger = logging.getLogger("paykit_async.retry")

#: Time an attempt may spend beyond its transport's total timeout (encoding, signing, decoding)
#: for the call's deadline scope to be left out (see ``RetryMiddleware._ends_in_time``).
_BOUND_MARGIN = 1.0


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0 or math.isnan(value):
        raise ValidationError(f"must be >= 0, got {value!r}", field=attribute.name)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry one operation.

    Backoff is "full jitter": attempt *n* waits ``uniform(0, min(max_delay, initial_delay *
    2**(n-1)))``, but never less than a server hint (``Retry-After``, a provider's minimum delay)
    capped at ``max_retry_after``. ``deadline`` (seconds, default 60) bounds the whole call:
    every attempt, every wait, the query that settles an unknown refund outcome and the
    idempotency store's bookkeeping. An attempt still running when it passes is abandoned (its
    outcome is unknown) and the call ends — a refund with ``RefundOutcomeUnknown``.
    """

    attempts: int = attrs.field(default=4)
    initial_delay: float = attrs.field(default=0.5, validator=_positive)
    max_delay: float = attrs.field(default=8.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    deadline: float | None = attrs.field(default=60.0)
    jitter: bool = True

    @attempts.validator
    def _check_attempts(self, _attribute: object, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError(f"must be an int >= 1, got {value!r}", field="attempts")

    @deadline.validator
    def _check_deadline(self, _attribute: object, value: float | None) -> None:
        if value is not None and (math.isnan(value) or value <= 0):
            raise ValidationError(f"must be > 0 or None, got {value!r}", field="deadline")

    @classmethod
    def none(cls) -> RetryPolicy:
        """Send once, never retry (an unknown refund outcome is still settled by query)."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry), ignoring hints."""
        ceiling = min(self.max_delay, self.initial_delay * (2 ** (retry_number - 1)))
        return rng.uniform(0, ceiling) if self.jitter else ceiling

    def delay(self, retry_number: int, hint: float | None, rng: random.Random) -> float:
        """The wait before retry ``retry_number``: the backoff, raised to a server hint (capped)."""
        wait = self.backoff(retry_number, rng)
        if hint is not None:
            wait = max(wait, min(hint, self.max_retry_after))
        return wait


class RetryBudget:
    """A token bucket shared by all operations of one client (botocore "standard" style).

    Each retry takes ``retry_cost`` tokens (``timeout_cost`` after a transport failure, which is
    costlier for a struggling provider); each success puts one back. When the bucket cannot pay
    for a retry, the failure is raised at once instead, so a batch cannot turn an outage into a
    retry storm. First attempts are never refused. One budget per client, no global state.
    """

    __slots__ = ("capacity", "retry_cost", "timeout_cost", "tokens")

    def __init__(self, capacity: int = 500, retry_cost: int = 5, timeout_cost: int = 10) -> None:
        costs = (("capacity", capacity), ("retry_cost", retry_cost), ("timeout_cost", timeout_cost))
        for name, value in costs:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"must be an int >= 0, got {value!r}", field=name)
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.tokens = capacity

    def __repr__(self) -> str:
        return f"<RetryBudget {self.tokens}/{self.capacity}>"

    def try_acquire(self, error: BaseException) -> bool:
        """Pays for one retry after ``error``; False (nothing taken) when the bucket cannot."""
        cost = self.timeout_cost if isinstance(error, TransportError) else self.retry_cost
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def on_success(self) -> None:
        """Returns one token after a successful call."""
        if self.tokens < self.capacity:
            self.tokens += 1


class RetryMiddleware:
    """Retries retryable failures of one operation with the same fields, within the policy.

    ``SignatureError`` and ``ValidationError`` are never retried. For refunds whose outcome is
    still unknown after the last attempt, ``operation.settle`` is asked; if it cannot tell,
    :class:`RefundOutcomeUnknown` carrying the refund number is raised. The policy's deadline
    bounds all of it, the settle query included (see :mod:`paykit_async.pipeline.deadline`).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.budget = budget if budget is not None else RetryBudget()
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self._rng = rng if rng is not None else random.Random()

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        policy, clock = self.policy, self.clock
        # The call's deadline is published (for the settle query, which runs through the client's
        # pipeline again) only around that query: a context variable set per call costs on every call.
        deadline = deadline_of_call(clock, policy.deadline)
        attempt = 1
        # Once one attempt may have been executed, a later refusal (e.g. "system busy") does
        # not prove the refund was not made: the outcome stays unknown until a query settles it.
        maybe_executed = False
        while True:
            try:
                current = attrs.evolve(operation, attempt=attempt) if attempt > 1 else operation
                if deadline is None or self._ends_in_time(call_next, deadline):
                    outcome = await call_next(current)
                else:
                    outcome = await self._attempt(current, call_next, deadline)
            except PaykitError as error:
                maybe_executed = maybe_executed or error.outcome_unknown
                if isinstance(error, SignatureError | ValidationError) or not error.retryable:
                    return await self._give_up(operation, error, attempt, maybe_executed, deadline)
                if attempt >= policy.attempts:
                    return await self._give_up(operation, error, attempt, maybe_executed, deadline)
                wait = policy.delay(attempt, getattr(error, "retry_after", None), self._rng)
                if deadline is not None and clock.now() + wait >= deadline:
                    return await self._give_up(operation, error, attempt, maybe_executed, deadline)
                if not self.budget.try_acquire(error):
                    logger.warning("retry budget exhausted; not retrying %s", operation.name)
                    return await self._give_up(operation, error, attempt, maybe_executed, deadline)
                logger.info(
                    "retrying %s.%s (attempt %d failed: %s); waiting %.2fs",
                    operation.provider,
                    operation.name,
                    attempt,
                    type(error).__name__,
                    wait,
                )
                await clock.sleep(wait)
                attempt += 1
                continue
            self.budget.on_success()
            return attrs.evolve(outcome, attempts=attempt) if attempt != outcome.attempts else outcome

    def _ends_in_time(self, call_next: Handler, deadline: float) -> bool:
        """Whether an attempt started now certainly ends before ``deadline`` without a scope of
        its own: ``call_next`` leads to the exchange on a transport that bounds each send by its
        total timeout (nothing in between that can wait: no pacer, only middlewares with a true
        ``passes_attempt_bound``), that bound ends well before the deadline,
        and the deadline is on the real clock the transport's timeout runs on. Then the
        transport's timer is the attempt's only one; a cancel scope here could never fire first."""
        bound_of = getattr(call_next, "attempt_bound", None)
        if bound_of is None or type(self.clock) is not MonotonicClock:
            return False
        bound = bound_of()
        return bound is not None and self.clock.now() + bound + _BOUND_MARGIN < deadline

    async def _attempt(self, operation: Operation, call_next: Handler, deadline: float) -> Outcome:
        """One attempt, abandoned when the call's deadline passes (its outcome is then unknown)."""
        if self.clock.now() >= deadline:
            raise TransportError(
                f"the call's deadline ({self.policy.deadline} s) passed before this attempt was sent",
                sent=False,
            )
        answered: list[Outcome] = []
        with watch_sending() as sending, deadline_scope(self.clock, deadline):
            answered.append(await call_next(operation))
        if answered:
            return answered[0]
        # The deadline's scope cancelled the attempt (and swallowed the cancellation).
        if not sending[0]:
            # Cut off while waiting for its turn (a rate limit) or in a middleware: never sent.
            raise TransportError(
                f"the call's deadline ({self.policy.deadline} s) passed before this attempt was sent",
                sent=False,
            )
        raise TransportError(
            f"no reply within the call's deadline ({self.policy.deadline} s); the attempt was abandoned",
            sent=None,
        )

    async def _give_up(
        self,
        operation: Operation,
        error: PaykitError,
        attempts: int,
        maybe_executed: bool = False,
        deadline: float | None = None,
    ) -> Outcome:
        """Raises ``error`` — unless it (or an earlier attempt) leaves a refund's outcome unknown:
        then settle it by query within what is left of the deadline, and if that cannot decide,
        raise :class:`RefundOutcomeUnknown` (never a definite failure)."""
        if not (operation.is_refund and (error.outcome_unknown or maybe_executed)):
            raise error
        refund_no = operation.refund_no or ""
        settle = operation.settle
        if settle is not None and (deadline is None or self.clock.now() < deadline):
            settled: Outcome | None = None
            decided = False
            try:
                # The query runs through the client's pipeline, where the retry layer finds this
                # call's deadline and stays within it; the scope is the hard stop.
                scope = contextlib.nullcontext() if deadline is None else deadline_scope(self.clock, deadline)
                with sharing_deadline(self.clock, deadline), scope:
                    settled = await settle(operation)
                    decided = True
            except Exception as query_error:  # cancellation is a BaseException: it propagates
                logger.warning(
                    "settling refund %s by query failed: %s", refund_no, type(query_error).__name__
                )
            else:
                if not decided:
                    logger.warning("settling refund %s by query ran out of time", refund_no)
                elif settled is not None:
                    return attrs.evolve(settled, attempts=attempts, settled_by_query=True)
                else:
                    # The provider verifiably has no such refund: the failure is definite.
                    raise error
        raise RefundOutcomeUnknown(
            f"the outcome of refund {refund_no} is unknown after {attempts} attempt(s) "
            f"({type(error).__name__}); retry with the same refund number or query it",
            refund_no=refund_no,
            cause=error,
        )
