"""The types say what the runtime accepts: ``mypy --strict`` passes user code that works
(``typecheck/user_code.py``, also run here) and refuses code that the runtime refuses or that
misuses a decorated function's signature (issue 19, item 11)."""

from __future__ import annotations

import os
import re
import runpy
import textwrap
from pathlib import Path
from typing import Optional

import mypy.api as mypy_api
import pytest

HERE = Path(__file__).parent
USER_CODE = HERE / "typecheck" / "user_code.py"

PRELUDE = """\
from __future__ import annotations
import asyncio
from datetime import timedelta
import tailguard as tg
from tailguard.testing import ManualClock

@tg.retry(attempts=2)
def fetch(url: str) -> int:
    return 1

@tg.retry(attempts=2)
async def aget(key: str) -> bytes:
    return b""

breaker = tg.CircuitBreaker()

class Service:
    @tg.retry(attempts=2)
    def method(self, key: str) -> int:
        return 1

    @breaker
    async def amethod(self, key: str) -> int:
        return 1
"""

# (name, code after the prelude, the one mypy error code expected in it, whether the runtime
# refuses it too)
NEGATIVE: list[tuple[str, str, str, bool]] = [
    ("clock_is_a_manual_clock", 'tg.retry(clock="x")', "call-overload", True),
    ("deadline_is_seconds", 'tg.retry(deadline="5")', "call-overload", True),
    ("retry_clock_on_policy", 'tg.Retry(clock="x")', "arg-type", True),
    ("open_duration_is_seconds", 'tg.CircuitBreaker(open_duration="30")', "arg-type", True),
    ("time_window_is_seconds", "tg.CircuitBreaker(time_window=[60])", "arg-type", True),
    ("on_is_an_exception_class", "tg.retry(on=int)", "arg-type", True),
    ("breaker_on_is_an_exception_class", "tg.CircuitBreaker(on=(str,))", "arg-type", True),
    ("retry_on_timeout_is_a_bool", "tg.Retry(retry_on_timeout=1)", "arg-type", True),
    ("budget_is_a_retry_budget", "tg.Retry(budget=0.1)", "arg-type", True),
    ("backoff_delay_is_seconds", 'tg.Backoff.constant("0.1")', "arg-type", True),
    ("hedge_budget_words", 'tg.Hedge(0.1, budget="lots")', "arg-type", True),
    ("decorated_keeps_its_parameters", "fetch(1)", "arg-type", False),
    ("decorated_keeps_its_result", 'x: str = fetch("u")', "assignment", False),
    (
        "async_decorated_keeps_its_result",
        'async def main() -> None:\n    x: int = await aget("k")',
        "assignment",
        False,
    ),
    ("method_keeps_its_parameters", "Service().method(1)", "arg-type", False),
    (
        "async_method_keeps_its_parameters",
        "async def main() -> None:\n    await Service().amethod(1)",
        "arg-type",
        False,
    ),
    ("retry_attribute_is_a_retry", "x: tg.CircuitBreaker = fetch.retry", "assignment", False),
    ("breaker_attribute_is_a_breaker", "x: tg.Retry = Service.amethod.breaker", "assignment", False),
    (
        "hedge_wants_an_async_function",
        "@tg.Hedge(0.1)\ndef sync(x: int) -> int:\n    return x",
        "arg-type",
        False,
    ),
    ("call_checks_the_arguments", 'tg.Retry().call(fetch.__wrapped__, 2)', "arg-type", False),
    # States and reasons are `Literal`s: a misspelt one can never match (issue 16).
    (
        "breaker_state_is_a_known_state",
        'ok = breaker.state == "halfopen"',
        "comparison-overlap",
        False,
    ),
    (
        "metrics_state_is_a_known_state",
        'ok = breaker.metrics().state == "half-open"',
        "comparison-overlap",
        False,
    ),
    (
        "transition_reason_is_a_known_reason",
        'def why(t: tg.BreakerTransition) -> bool:\n    return t.reason == "timeout"',
        "comparison-overlap",
        False,
    ),
    (
        "open_error_state_is_a_refusing_state",
        'def closed(e: tg.CircuitOpenError) -> bool:\n    return e.state == "closed"',
        "comparison-overlap",
        False,
    ),
    (
        "retry_error_reason_is_a_known_reason",
        'def permanent(e: tg.RetryError) -> bool:\n    return e.reason == "not_retryable"',
        "comparison-overlap",
        False,
    ),
]


def _mypy(*paths: Path) -> tuple[str, int]:
    cache = HERE.parent.parent / ".mypy_cache"
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", os.fspath(cache)]
        + [os.fspath(path) for path in paths]
    )
    return stdout + stderr, status


def test_user_code_type_checks_and_runs() -> None:
    output, status = _mypy(USER_CODE)
    assert status == 0, output
    runpy.run_path(os.fspath(USER_CODE))["main"]()


def test_misuse_is_refused_by_mypy_and_by_the_runtime(tmp_path: Path) -> None:
    files = []
    for name, code, _, _ in NEGATIVE:
        path = tmp_path / f"neg_{name}.py"
        path.write_text(PRELUDE + "\n" + textwrap.dedent(code) + "\n")
        files.append(path)
    output, status = _mypy(*files)
    assert status == 1, output
    errors: dict[str, list[tuple[int, str]]] = {}
    for line in output.splitlines():
        match = re.match(r"(?:.*[/\\])?neg_(\w+)\.py:(\d+): error: .*\[([\w-]+)\]$", line)
        if match:
            errors.setdefault(match[1], []).append((int(match[2]), match[3]))
    prelude_lines = PRELUDE.count("\n") + 1
    for name, code, expected, refused_at_runtime in NEGATIVE:
        got = errors.get(name, [])
        # Exactly the expected error, in the snippet: nothing in the prelude (which is valid
        # code) and nothing else.
        first_line = prelude_lines + 1
        last_line = first_line + code.count("\n")
        assert [code for _, code in got] == [expected], f"{name}: {got}\n{output}"
        assert first_line <= got[0][0] <= last_line, f"{name}: {got}\n{output}"
        if refused_at_runtime:
            with pytest.raises((TypeError, ValueError)):
                exec(compile(PRELUDE + code, f"neg_{name}.py", "exec"), {})


def test_the_prelude_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "prelude.py"
    path.write_text(PRELUDE)
    output, status = _mypy(path)
    assert status == 0, output
    namespace: dict[str, Optional[object]] = {}
    exec(compile(PRELUDE, "prelude.py", "exec"), namespace)
