"""The retry middleware: timing on the no-sleep clock, classification, budget, settling, cancellation."""

from __future__ import annotations

import random
from collections.abc import Sequence

import anyio
import pytest

from paykit_async.errors import (
    DecodeError,
    HTTPStatusError,
    PaykitError,
    ProviderError,
    RefundOutcomeUnknown,
    SignatureError,
    TransportError,
    ValidationError,
)
from paykit_async.pipeline.clock import FakeClock
from paykit_async.pipeline.core import Operation, Outcome, Settler
from paykit_async.pipeline.retry import RetryBudget, RetryMiddleware, RetryPolicy

pytestmark = pytest.mark.anyio

OK = Outcome(fields={"result_code": "SUCCESS"})


class Script:
    """A handler that fails with the given errors, in order, then succeeds; records every call."""

    def __init__(self, errors: Sequence[PaykitError | None] = ()) -> None:
        self.errors = list(errors)
        self.calls: list[Operation] = []

    async def __call__(self, operation: Operation) -> Outcome:
        self.calls.append(operation)
        await anyio.lowlevel.checkpoint()
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        return OK


def refund(settle: Settler | None = None) -> Operation:
    return Operation(
        provider="p",
        name="refund",
        url="https://p.test/refund",
        fields={"out_refund_no": "R1", "refund_fee": "100"},
        refund_no_field="out_refund_no",
        settle=settle,
    )


def close_order() -> Operation:
    return Operation(provider="p", name="close", url="https://p.test/close", fields={"out_trade_no": "T1"})


def http(status: int, retry_after: float | None = None) -> HTTPStatusError:
    return HTTPStatusError(f"HTTP {status}", status_code=status, retry_after=retry_after)


def middleware(
    policy: RetryPolicy | None = None, budget: RetryBudget | None = None
) -> tuple[RetryMiddleware, FakeClock]:
    clock = FakeClock()
    return RetryMiddleware(
        policy or RetryPolicy(jitter=False), budget=budget, clock=clock, rng=random.Random(1)
    ), clock


def test_defaults_suit_a_payment_api() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.initial_delay, policy.max_delay) == (4, 0.5, 8.0)
    assert policy.jitter


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"attempts": True},
        {"initial_delay": -1.0},
        {"max_delay": float("nan")},
        {"deadline": 0.0},
    ],
)
def test_policy_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


async def test_exponential_backoff_without_jitter_is_exact_and_capped() -> None:
    retry, clock = middleware(
        RetryPolicy(attempts=7, initial_delay=0.5, max_delay=4.0, jitter=False, deadline=None)
    )
    script = Script([http(502)] * 6)
    outcome = await retry(close_order(), script)
    assert outcome.attempts == 7
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [call.attempt for call in script.calls] == [1, 2, 3, 4, 5, 6, 7]


async def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    policy = RetryPolicy(attempts=40, initial_delay=0.5, max_delay=8.0, deadline=None)
    retry, clock = middleware(policy)
    await retry(close_order(), Script([http(503)] * 39))
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(39)]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) > 30  # jittered, not a fixed schedule
    assert sum(clock.sleeps) < sum(ceilings)


async def test_retry_after_is_honoured_and_capped() -> None:
    retry, clock = middleware(RetryPolicy(max_retry_after=30.0, jitter=False, deadline=None))
    await retry(close_order(), Script([http(429, retry_after=5.0), http(503, retry_after=3600.0)]))
    assert clock.sleeps == [5.0, 30.0]


async def test_a_provider_minimum_delay_is_honoured() -> None:
    retry, clock = middleware(RetryPolicy(jitter=False))
    busy = ProviderError("FREQUENCY_LIMITED", "slow down", retryable=True, retry_after=2.5)
    await retry(close_order(), Script([busy]))
    assert clock.sleeps == [2.5]


async def test_the_deadline_bounds_the_whole_operation() -> None:
    retry, clock = middleware(
        RetryPolicy(attempts=10, initial_delay=1.0, max_delay=8.0, jitter=False, deadline=10.0)
    )
    script = Script([http(502)] * 10)
    with pytest.raises(HTTPStatusError):
        await retry(close_order(), script)
    assert clock.sleeps == [1.0, 2.0, 4.0]  # the next wait (8 s) would pass the 10 s deadline
    assert len(script.calls) == 4


@pytest.mark.parametrize(
    "error",
    [
        SignatureError("bad reply signature"),
        ValidationError("bad input", field="refund_fee"),
        http(400),
        ProviderError("NOTENOUGH", "balance", retryable=False),
        DecodeError("<!DOCTYPE refused>", retryable=False),
    ],
)
async def test_errors_that_are_never_retried(error: PaykitError) -> None:
    retry, clock = middleware()
    script = Script([error])
    with pytest.raises(type(error)):
        await retry(close_order(), script)
    assert len(script.calls) == 1
    assert clock.sleeps == []


async def test_a_signature_error_is_not_retried_even_if_marked_retryable() -> None:
    error = SignatureError("bad reply signature")
    error.retryable = True
    retry, _ = middleware()
    script = Script([error])
    with pytest.raises(SignatureError):
        await retry(close_order(), script)
    assert len(script.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        TransportError("reset", sent=None),
        TransportError("refused", sent=False),
        http(500),
        http(502),
        http(429),
        DecodeError("reply cut off", retryable=True),
        ProviderError("SYSTEMERROR", "busy", retryable=True),
    ],
)
async def test_retryable_errors_are_retried_with_the_same_refund_number(error: PaykitError) -> None:
    retry, _ = middleware()
    script = Script([error, error])
    outcome = await retry(refund(), script)
    assert outcome.attempts == 3
    assert [call.fields for call in script.calls] == [refund().fields] * 3


async def test_an_empty_budget_stops_retries_and_successes_refill_it() -> None:
    budget = RetryBudget(capacity=10, retry_cost=5, timeout_cost=10)
    retry, _ = middleware(RetryPolicy(attempts=10, jitter=False, deadline=None), budget)
    script = Script([http(502)] * 10)
    with pytest.raises(HTTPStatusError):
        await retry(close_order(), script)
    assert len(script.calls) == 3  # two retries paid for, then the bucket is empty
    assert budget.tokens == 0
    await retry(close_order(), Script())
    assert budget.tokens == 1
    timeout_script = Script([TransportError("timeout", sent=None)])
    with pytest.raises(TransportError):
        await retry(close_order(), timeout_script)  # a timeout retry costs 10
    assert len(timeout_script.calls) == 1


def test_budget_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        RetryBudget(capacity=-1)


def settler(result: Outcome | Exception | None, calls: list[str]) -> Settler:
    async def settle(operation: Operation) -> Outcome | None:
        calls.append(operation.refund_no or "")
        if isinstance(result, Exception):
            raise result
        return result

    return settle


async def test_an_unknown_refund_is_settled_by_query() -> None:
    calls: list[str] = []
    found = Outcome(fields={"refund_status_0": "SUCCESS"})
    retry, _ = middleware(RetryPolicy(attempts=2, jitter=False))
    outcome = await retry(refund(settler(found, calls)), Script([http(500), http(500)]))
    assert calls == ["R1"]
    assert outcome.settled_by_query
    assert outcome.fields == found.fields
    assert outcome.attempts == 2


async def test_a_refund_the_provider_verifiably_lacks_is_a_definite_failure() -> None:
    calls: list[str] = []
    retry, _ = middleware(RetryPolicy(attempts=1))
    with pytest.raises(HTTPStatusError):
        await retry(refund(settler(None, calls)), Script([http(500)]))
    assert calls == ["R1"]


@pytest.mark.parametrize(
    "settle_error", [TransportError("down", sent=False), RuntimeError("bug in the query")]
)
async def test_an_unsettled_refund_is_unknown_never_failed(settle_error: Exception) -> None:
    calls: list[str] = []
    retry, _ = middleware(RetryPolicy(attempts=2, jitter=False))
    cause = DecodeError("cut off", retryable=True)
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await retry(refund(settler(settle_error, calls)), Script([cause, cause]))
    assert caught.value.refund_no == "R1"
    assert caught.value.__cause__ is cause
    assert "R1" in str(caught.value)


async def test_a_signature_error_on_a_refund_is_settled_not_retried() -> None:
    calls: list[str] = []
    retry, _ = middleware()
    script = Script([SignatureError("forged reply")])
    with pytest.raises(RefundOutcomeUnknown):
        await retry(refund(settler(TransportError("down", sent=False), calls)), script)
    assert len(script.calls) == 1
    assert calls == ["R1"]


async def test_a_refund_without_a_query_is_unknown() -> None:
    retry, _ = middleware(RetryPolicy(attempts=1))
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await retry(refund(), Script([TransportError("timeout", sent=None)]))
    assert caught.value.refund_no == "R1"


async def test_a_refund_refused_before_sending_is_not_unknown() -> None:
    retry, _ = middleware(RetryPolicy(attempts=1))
    with pytest.raises(TransportError):
        await retry(refund(), Script([TransportError("connection refused", sent=False)]))


class BlockingClock(FakeClock):
    """A clock whose sleeps block until cancelled; says when one started."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        await anyio.sleep_forever()


async def test_cancellation_during_backoff_propagates() -> None:
    clock = BlockingClock()
    retry = RetryMiddleware(RetryPolicy(), clock=clock)
    script = Script([http(502)])
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(retry, refund(), script)
            await clock.sleeping.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert len(script.calls) == 1


async def test_cancellation_during_settling_propagates() -> None:
    started = anyio.Event()

    async def slow_settle(operation: Operation) -> Outcome | None:
        started.set()
        await anyio.sleep_forever()
        return None

    retry, _ = middleware(RetryPolicy(attempts=1))
    outcome_box: list[Outcome] = []
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            outcome_box.append(await retry(refund(slow_settle), Script([http(500)])))
        except PaykitError as error:  # would mean the cancellation was swallowed
            errors.append(error)
            raise

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert not outcome_box
    assert not errors


async def test_a_refusal_after_an_attempt_that_may_have_executed_is_settled_not_final() -> None:
    calls: list[str] = []
    found = Outcome(fields={"refund_status_0": "SUCCESS"})
    retry, _ = middleware()
    refusal = ProviderError("REFUND_NO_MISMATCH", "another refund has this number", retryable=False)
    outcome = await retry(refund(settler(found, calls)), Script([http(500), refusal]))
    assert calls == ["R1"]
    assert outcome.settled_by_query
