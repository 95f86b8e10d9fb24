"""The README's examples of the HTTP integrations and the metrics run as shown: each Python
block of its "HTTP clients and metrics" section is executed against a local server standing in
for the demo server at 127.0.0.1:8080."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from http_server import Server

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> List[str]:
    text = README.read_text()
    start = text.index("### HTTP clients and metrics")
    # The section ends at the next heading of its level or above (a later "### ..." section
    # is not part of it, nor run by this test).
    following = re.search(r"\n#{2,3} ", text[start + 1 :])
    end = start + 1 + following.start() if following else len(text)
    section = text[start:end]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


def test_the_section_has_an_example_per_integration() -> None:
    examples = _examples()
    assert len(examples) == 5
    for module in (
        "tailguard.httpx.Transport",
        "tailguard.httpx.AsyncTransport",
        "tailguard.aiohttp",
        "tailguard.metrics.prometheus",
        "tailguard.metrics.otel",
    ):
        assert any(module in e for e in examples), module


@pytest.mark.parametrize("index", range(5))
def test_each_example_runs_as_shown(server: Server, index: int) -> None:
    source = _examples()[index].replace("http://127.0.0.1:8080", server.url)
    # A fresh interpreter, as a user pasting it would run it.
    done = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    if "generate_latest" in source:
        assert f'tailguard_breaker_state{{host="{server.host}",name="api",state="closed"}} 1.0' in printed
    elif "observe(" in source:
        assert '"name": "tailguard_breaker_state"' in printed and '"name": "db"' in printed
    else:
        assert printed.startswith("200 ok")
        assert len(server.seen()) == 1
