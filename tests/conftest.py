"""Shared fixtures: where the real datasets are (``../shared/data`` beside the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SEELE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder; tests that need it skip (saying why) where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set SEELE_SHARED_DATA)")
    return SHARED_DATA


def read_jsonl_rows(path: Path, indices: list[int]) -> list[dict]:
    """Rows at ``indices`` of a JSONL file, read directly (independent of our loaders)."""
    wanted, rows = set(indices), {}
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i in wanted:
                rows[i] = json.loads(line)
            if len(rows) == len(wanted):
                break
    return [rows[i] for i in indices]
