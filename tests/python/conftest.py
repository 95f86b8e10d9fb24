"""Shared settings for the tailguard suite."""

from __future__ import annotations

from typing import Iterator

import pytest
from hypothesis import settings

import tailguard

# Keep property tests quick: the suite must stay well under a minute on a loaded machine.
settings.register_profile("tailguard", max_examples=60, deadline=None)
settings.load_profile("tailguard")


@pytest.fixture(autouse=True)
def _testing_mode_is_off() -> Iterator[None]:
    """Every test starts with real sleeps, and may not leak testing mode to the next."""
    with tailguard.set_testing(False):
        yield
