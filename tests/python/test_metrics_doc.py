"""docs/metrics.md, the vocabulary shared with the Rust side, lists exactly the metrics the
Python package exports, with the same types and labels."""

from __future__ import annotations

import re
from pathlib import Path

from tailguard.metrics import METRICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_the_shared_table_matches_the_python_vocabulary() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `(tailguard_\w+)` \| (\w+) \| ([^|]+) \|", line)
        if match:
            name, kind, labels = match.groups()
            rows[name] = (kind, tuple(re.findall(r"`(\w+)`", labels)))
    assert rows == {name: (m.kind, m.labels) for name, m in METRICS.items()}
