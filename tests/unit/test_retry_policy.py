"""RetryPolicy: defaults, linear and exponential backoff, the cap, and validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioning.tasks import Backoff, RetryPolicy


def test_defaults_are_the_original_platforms() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff is Backoff.EXPONENTIAL
    assert policy.initial_delay == 5
    assert policy.max_delay == 300


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(2, 5.0), (3, 10.0), (4, 15.0), (5, 20.0), (10, 45.0)],
)
def test_linear_backoff_grows_by_the_initial_delay(attempt: int, delay: float) -> None:
    policy = RetryPolicy(backoff="linear", initial_delay=5, max_delay=1000)
    assert policy.delay_before(attempt) == delay


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(2, 5.0), (3, 10.0), (4, 20.0), (5, 40.0), (6, 80.0)],
)
def test_exponential_backoff_doubles(attempt: int, delay: float) -> None:
    policy = RetryPolicy(backoff="exponential", initial_delay=5, max_delay=1000)
    assert policy.delay_before(attempt) == delay


def test_exponential_backoff_with_a_fractional_start() -> None:
    policy = RetryPolicy(backoff="exponential", initial_delay=0.5, max_delay=100)
    assert [policy.delay_before(n) for n in range(2, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize("backoff", ["linear", "exponential"])
def test_the_delay_is_capped_at_max_delay(backoff: str) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=10, max_delay=25)
    delays = [policy.delay_before(n) for n in range(2, 12)]
    assert max(delays) == 25.0
    assert delays[-1] == 25.0
    assert delays == sorted(delays)


@pytest.mark.parametrize("backoff", ["linear", "exponential"])
def test_the_cap_holds_for_the_largest_allowed_attempt(backoff: str) -> None:
    policy = RetryPolicy(backoff=backoff, max_attempts=100, initial_delay=86_400, max_delay=60)
    assert policy.delay_before(101) == 60.0


@pytest.mark.parametrize("backoff", ["linear", "exponential"])
def test_a_max_delay_below_the_initial_delay_wins(backoff: str) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=50, max_delay=20)
    assert policy.delay_before(2) == 20.0


@pytest.mark.parametrize("backoff", ["linear", "exponential"])
def test_zero_initial_delay_retries_at_once(backoff: str) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=0)
    assert [policy.delay_before(n) for n in range(2, 6)] == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("attempt", [0, 1])
def test_attempts_before_the_first_retry_wait_like_the_first_retry(attempt: int) -> None:
    policy = RetryPolicy(backoff="exponential", initial_delay=5)
    assert policy.delay_before(attempt) == policy.delay_before(2) == 5.0


def test_the_delay_is_a_float() -> None:
    assert isinstance(RetryPolicy(initial_delay=3).delay_before(3), float)
    assert isinstance(RetryPolicy(backoff="linear").delay_before(2), float)


def test_exponential_cap_never_overflows() -> None:
    policy = RetryPolicy(backoff="exponential", initial_delay=5.0, max_delay=300)
    assert policy.delay_before(2000) == 300.0


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": 0},
        {"max_attempts": 101},
        {"initial_delay": -1},
        {"initial_delay": 86_401},
        {"max_delay": -0.5},
        {"max_delay": 86_401},
        {"backoff": "fibonacci"},
        {"jitter": True},
    ],
)
def test_invalid_policies_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(fields)


def test_limits_are_inclusive() -> None:
    policy = RetryPolicy(max_attempts=100, initial_delay=86_400, max_delay=86_400)
    assert policy.max_attempts == 100
    assert RetryPolicy(max_attempts=1, initial_delay=0, max_delay=0).delay_before(2) == 0.0


def test_a_policy_is_immutable() -> None:
    policy = RetryPolicy()
    with pytest.raises(ValidationError):
        policy.max_attempts = 5  # type: ignore[misc]
