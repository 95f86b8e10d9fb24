"""One testing API: ``set_testing`` is a plain call and a context manager, as in stamina; the old
``zero_sleeps()`` still works, with a DeprecationWarning (issue 16, the Python layer)."""

from __future__ import annotations

import time
import warnings

import pytest

import tailguard as tg
from tailguard import testing


def test_the_package_and_testing_module_export_one_set_testing() -> None:
    assert tg.set_testing is testing.set_testing
    assert tg.is_testing is testing.is_testing


def test_as_a_context_manager_it_restores_the_previous_setting() -> None:
    assert not tg.is_testing()
    with tg.set_testing(True):
        assert tg.is_testing()
        with testing.set_testing(False):
            assert not tg.is_testing()
        assert tg.is_testing()
    assert not tg.is_testing()


def test_it_restores_the_previous_setting_on_an_exception() -> None:
    with pytest.raises(KeyError):
        with tg.set_testing(True):
            assert tg.is_testing()
            raise KeyError("boom")
    assert not tg.is_testing()
    tg.set_testing(True)
    with pytest.raises(KeyError):
        with tg.set_testing(False):
            raise KeyError("boom")
    assert tg.is_testing()


def test_the_setting_applies_when_called_not_when_entered() -> None:
    restore = tg.set_testing(True)
    assert tg.is_testing() and restore.previous is False
    with restore:
        assert tg.is_testing()
    assert not tg.is_testing()


def test_it_makes_a_retry_loop_sleep_zero() -> None:
    calls = []

    @tg.retry(attempts=3, backoff=tg.Backoff.constant(30.0))
    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return len(calls)

    started = time.monotonic()
    with tg.set_testing(True):
        assert flaky() == 3
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("enabled", [1, None, "yes"])
def test_it_wants_a_bool(enabled: object) -> None:
    with pytest.raises(TypeError, match="`enabled` must be a bool"):
        tg.set_testing(enabled)  # type: ignore[arg-type]
    assert not tg.is_testing()


def test_zero_sleeps_still_works_and_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match=r"set_testing\(True\)") as caught:
        block = testing.zero_sleeps()
    assert caught[0].filename == __file__
    assert not tg.is_testing()  # as before: only the block turns it on
    with block:
        assert tg.is_testing()
    assert not tg.is_testing()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(KeyError):
            with testing.zero_sleeps():
                raise KeyError("boom")
    assert not tg.is_testing()
