"""Session-wide test settings.

Notebooks executed by nbval record into the archive like any other run, so the archive
root is pointed at a temporary folder for the whole session: a test run never writes
into the repository. The procedure notebooks of ``tests/notebooks`` are
fixtures (some hang or kill their kernel on purpose) and are never collected.
"""

from __future__ import annotations

import os
import shutil
import tempfile

collect_ignore_glob = ["tests/notebooks/*", "tests/fixtures/*", "outputs/*"]

_ARCHIVE = tempfile.mkdtemp(prefix="veerunbook-test-archive-")
os.environ.setdefault("VEERUNBOOK_ARCHIVE", _ARCHIVE)


def pytest_unconfigure() -> None:
    shutil.rmtree(_ARCHIVE, ignore_errors=True)
