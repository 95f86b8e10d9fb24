"""The integrations are optional: importing tailguard imports none of their libraries."""

from __future__ import annotations

import subprocess
import sys


def test_importing_tailguard_imports_no_integration_library() -> None:
    code = (
        "import sys, tailguard, tailguard.http, tailguard.metrics; "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'prometheus_client', 'opentelemetry') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
