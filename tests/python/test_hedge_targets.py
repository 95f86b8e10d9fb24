"""Replica-aware hedging over a list of targets: a hedge never goes to a target still running
the call, nor to one `healthy` rejects; with nowhere to go it fails at once."""

from __future__ import annotations

import asyncio

import pytest

import tailguard as tg


def test_hedges_go_to_targets_not_running_the_call_and_healthy() -> None:
    sent: list[str] = []

    async def fetch(target: str) -> str:
        sent.append(target)
        if target == "a":
            await asyncio.sleep(10)  # the primary is stuck
        await asyncio.sleep(0.001)
        return target

    async def main() -> str:
        return await tg.hedge(
            fetch,
            targets=["a", "b", "c"],
            healthy=lambda t: t != "b",  # b's breaker is half-open
            delay=0.005,
            max_attempts=3,
            budget="unlimited",
        )

    assert asyncio.run(main()) == "c"
    assert sent == ["a", "c"]


def test_a_hedge_with_nowhere_to_go_fails_and_the_primary_carries_on() -> None:
    sent: list[str] = []

    async def fetch(target: str) -> str:
        sent.append(target)
        await asyncio.sleep(0.02)
        return target

    async def main() -> str:
        return await tg.hedge(
            fetch,
            targets=["a", "b"],
            healthy=lambda t: t == "a",
            delay=0.001,
            budget="unlimited",
        )

    assert asyncio.run(main()) == "a"
    assert sent == ["a"]


def test_the_primary_skips_an_unhealthy_first_target() -> None:
    async def fetch(target: str) -> str:
        await asyncio.sleep(0)
        return target

    async def main() -> str:
        return await tg.hedge(fetch, targets=["a", "b"], healthy=lambda t: t != "a", delay=1.0)

    assert asyncio.run(main()) == "b"


def test_targets_are_checked() -> None:
    async def fetch(target: str) -> str:
        return target

    async def main() -> None:
        with pytest.raises(tg.ConfigError) as info:
            await tg.hedge(fetch, targets=[], delay=1.0)
        assert info.value.parameter == "targets"
        with pytest.raises(tg.ConfigError):
            await tg.hedge(lambda: fetch("x"), healthy=lambda t: True, delay=1.0)  # type: ignore[call-overload]
        assert issubclass(tg.NoTargetError, LookupError)

    asyncio.run(main())
