"""tailguard.http without a network: Retry-After parsing and the retry verdicts of a policy."""

from __future__ import annotations

from typing import Optional

import pytest

import tailguard as tg
from tailguard.http import HttpPolicy, StatusError, parse_retry_after

NOW = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 10.0),  # RFC 850, which HTTP-dates allow
        ("Wed Oct 21 07:28:00 2015", 10.0),  # asctime's form: GMT, as every HTTP-date
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: at once
        ("-5", None),
        ("1.5", None),
        ("\uff11\uff12", None),  # full-width digits are not delta-seconds
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: Optional[str], seconds: Optional[float]) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def _status(retry_after: Optional[float]) -> StatusError:
    return StatusError("HTTP 503", 503, retry_after, response=None)


def test_the_verdicts_on_a_retried_status() -> None:
    policy = HttpPolicy(max_retry_after=10.0)
    assert policy._classify(_status(None)) is True  # the backoff's delay
    assert policy._classify(_status(3.0)) == 3.0  # exactly what the server asked
    assert policy._classify(_status(10.0)) == 10.0
    assert policy._classify(_status(10.5)) is False  # longer than the cap: not retried early
    failed = tg.AllFailedError("every hedge failed", [_status(2.0)])
    failed.__cause__ = failed.exceptions[-1]
    assert policy._classify(failed) == 2.0


def test_the_deadline_of_a_request() -> None:
    assert HttpPolicy().request_deadline(5.0) == 5.0
    assert HttpPolicy().request_deadline(None) is None
    assert HttpPolicy(deadline=2.0).request_deadline(5.0) == 2.0
    assert HttpPolicy(deadline=None).request_deadline(5.0) is None


def test_one_retry_policy_per_deadline() -> None:
    policy = HttpPolicy(attempts=5)
    first = policy.retry_policy(2.0)
    assert policy.retry_policy(2.0) is first
    assert first.deadline == 2.0 and first.attempts == 5
    assert policy.retry_policy(None).deadline is None
