"""The integration modules document every public name: each module, class, method and
function of tailguard.http, .httpx, .aiohttp and .metrics (and its exporters) has a docstring."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "tailguard.http",
    "tailguard.httpx",
    "tailguard.aiohttp",
    "tailguard.metrics",
    "tailguard.metrics.prometheus",
    "tailguard.metrics.otel",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    missing = [] if (module.__doc__ or "").strip() else [name]
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isclass(obj):
            if obj.__module__ != name:
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(f"{name}.{public}")
            for member, attr in vars(obj).items():
                if member.startswith("_") or not callable(attr):
                    continue
                if not (getattr(attr, "__doc__", None) or "").strip():
                    missing.append(f"{name}.{public}.{member}")
        elif callable(obj) and not (obj.__doc__ or "").strip():
            missing.append(f"{name}.{public}")
    assert missing == []
