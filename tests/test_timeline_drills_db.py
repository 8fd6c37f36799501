"""Timelines of the database drills equal the events derived from their journals.

The derivation and the drill runner live in ``test_timeline_drills.py``. This file
contains further scenarios, so that pytest-xdist runs them on another worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_timeline_drills import drill_rows


@pytest.mark.parametrize(
    "scenario", ["db-outage", "pool-exhaustion", "data-corruption", "memory-pressure"]
)
def test_drill_timeline_matches_journal(scenario: str, tmp_path: Path) -> None:
    actual, expected, _ = drill_rows(scenario, tmp_path)
    assert len(actual) == len(expected)
    assert actual == expected
    assert actual[0] == (1, "incident", None)
