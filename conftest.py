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
from collections.abc import Iterator

import pytest

from tests.pgcluster import (
    PgCluster,
    ServerBinariesMissing,
    find_bindir,
    running_cluster,
)

collect_ignore_glob = ["tests/notebooks/*", "tests/fixtures/*", "outputs/*"]

_ARCHIVE = tempfile.mkdtemp(prefix="veerunbook-test-archive-")
os.environ.setdefault("VEERUNBOOK_ARCHIVE", _ARCHIVE)


def pytest_unconfigure() -> None:
    shutil.rmtree(_ARCHIVE, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on loopback, shared by the whole session.

    Without server binaries the tests that use it are skipped, except under CI (the
    environment variable CI set), where a missing server fails them.
    """
    try:
        bindir = find_bindir()
    except ServerBinariesMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with running_cluster(bindir) as cluster:
        yield cluster
