"""Hostile cases for group runs and the strict metrics reader.

A group child must not lose a SIGTERM that reaches it in the moment after the fork.
A parameter error must name the procedure whose declaration rejected the value. The
regular-expression reader of ``metrics_strict`` must return what prometheus_client
returns on every body that it accepts.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from veerunbook.errors import ParameterError
from veerunbook.metrics_parse import _parse_chunk
from veerunbook.metrics_scrape import Family
from veerunbook.metrics_strict import strict_families
from veerunbook.run_group_plan import plan_runs

FIXTURE_NOTEBOOKS = Path(__file__).parent / "notebooks"

# Runs one group of the "ok" fixture notebook in a fresh interpreter. The at-fork hook
# sends SIGTERM to the child right after the fork, as a terminal's Ctrl-C or
# systemd's stop reaches every process of the group at once, before the child's own
# code has run. The reports go to stdout as JSON.
SIGTERM_AT_FORK_SCRIPT = """
import json, os, signal, sys
from pathlib import Path
from veerunbook.redact import Redactor
from veerunbook.run_group import run_group
from veerunbook.run_group_plan import plan_runs

os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM))
planned = plan_runs(["ok"], [], [])
reports = run_group(
    planned, incident=None, target="demo", archive=Path(sys.argv[1]),
    redactor=Redactor(), jobs=1, timeout=120, output=sys.stderr,
)
print(json.dumps([[r.procedure, r.status, r.exit_code] for r in reports]))
"""


def test_child_keeps_sigterm_after_fork(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(FIXTURE_NOTEBOOKS / "ok.ipynb", notebooks / "ok.ipynb")
    env = {**os.environ, "VEERUNBOOK_NOTEBOOKS": str(notebooks)}
    for name in ("VEEFORE_ADMIN_TOKEN", "DATABASE_URL", "VEERUNBOOK_CONFIG"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_FORK_SCRIPT, str(tmp_path / "archive")],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reports = json.loads(done.stdout.splitlines()[-1])
    assert reports == [["ok", "aborted", 3]]


def test_range_error_names_declarer() -> None:
    # Only performance-degradation declares "samples" of these two ([2..120]).
    with pytest.raises(ParameterError) as caught:
        plan_runs(["triage", "performance-degradation"], [("samples", "1")], [])
    assert "performance-degradation" in str(caught.value)


def test_range_error_not_blamed_on_triage() -> None:
    with pytest.raises(ParameterError) as caught:
        plan_runs(["triage", "performance-degradation"], [("samples", "1")], [])
    assert "procedure 'triage'" not in str(caught.value)


# Pieces of exposition lines, weighted towards the strict form so that the strict
# reader accepts about a quarter of the bodies, with the values, escapes and
# whitespace where a regular expression and the library could part.
SAMPLE_NAMES = ["m", "m_total", "m_sum", "m_count", "m_bucket", "x", "a:b", "_total"]
FAMILY_TYPES = ["counter", "gauge", "histogram", "summary", "untyped"]
LABEL_NAMES = ["a", "b", "le", "quantile", "_x", "A1"]
VALUES = [
    "1", "0", "-0", "+0", "-00", "1.5", "1e3", "1E-3", "NaN", "nan", "Inf", "+Inf",
    "-Inf", "infinity", "1_0", "0x10", "1e400", "-1e400", "9" * 30, "9" * 400,
    "-0.0", ".5", "5.", "00012", "-", "1e", "1.2.3", "-nan", "-0e5",
]  # fmt: skip
TIMESTAMPS = ["1700000000000", "-1", "1.5", "NaN", "1e3", "9" * 400, "-0", "1_0"]
VALUE_PIECES = [
    "x", " ", ",", "}", "{", "=", "#", "\\\\", "\\n", '\\"', "\\t", "\\", "é",
    "\u2028", "\r", "\t", "\x85", "\ufeff",
]  # fmt: skip
HELP_TAILS = ["", " doc", ' d\\n\\\\ "q', "\tdoc", " TYPE x", "\r", ' a"b c']
BLANKS = ["", " ", "\r", "\x1c"]


def random_label_value(rng: random.Random) -> str:
    pieces = [
        rng.choice(VALUE_PIECES) if rng.random() < 0.3 else rng.choice("abc ")
        for _ in range(rng.randint(0, 5))
    ]
    return "".join(pieces)


def random_sample_line(rng: random.Random) -> str:
    line = rng.choice(SAMPLE_NAMES)
    if rng.random() < 0.6:
        labels = [
            f'{rng.choice(LABEL_NAMES)}="{random_label_value(rng)}"'
            for _ in range(rng.randint(0, 3))
        ]
        inside = ",".join(labels) + ("," if rng.random() < 0.15 else "")
        line += "{" + inside + "}"
    line += rng.choice([" ", " ", "  ", "\t"]) + rng.choice(VALUES)
    if rng.random() < 0.3:
        line += rng.choice([" ", "  ", "\t"]) + rng.choice(TIMESTAMPS)
    if rng.random() < 0.1:
        line += rng.choice([" ", "\t", "\r", " \r", "\x0b"])
    return line


def random_comment_line(rng: random.Random) -> str:
    name = rng.choice(SAMPLE_NAMES)
    if rng.random() < 0.5:
        ending = rng.choice(["", "", " ", "\r", "\t"])
        return f"# TYPE {name} {rng.choice(FAMILY_TYPES)}{ending}"
    return f"# HELP {name}{rng.choice(HELP_TAILS)}"


def random_body(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 12)):
        kind = rng.random()
        if kind < 0.6:
            lines.append(random_sample_line(rng))
        elif kind < 0.9:
            lines.append(random_comment_line(rng))
        else:
            lines.append(rng.choice(BLANKS))
    separator = "\r\n" if rng.random() < 0.2 else "\n"
    return separator.join(lines) + ("\n" if rng.random() < 0.5 else "")


def comparable(families: list[Family]) -> list[object]:
    """Return the families with each value as its repr, so NaN equals NaN."""
    return [
        (
            family.name,
            family.type,
            [(s.name, s.labels, repr(s.value), s.line) for s in family.samples],
        )
        for family in families
    ]


def test_strict_reader_matches_library() -> None:
    rng = random.Random(20261205)
    accepted = 0
    for _ in range(4000):
        text = random_body(rng)
        lines = text.split("\n")
        strict = strict_families(lines, range(len(lines)))
        if strict is None:
            continue
        accepted += 1
        library = _parse_chunk(text, lines, range(len(lines)))
        assert isinstance(library, list), (text, library)
        assert comparable(strict) == comparable(library), text
    # A generator that the strict reader always rejected would compare nothing.
    assert accepted > 500


def test_strict_reader_negative_zero() -> None:
    lines = ["m -0", "n -0.0"]
    strict = strict_families(lines, range(2))
    assert strict is not None
    values = [family.samples[0].value for family in strict]
    assert [math.copysign(1, value) for value in values] == [1.0, -1.0]
