"""The timeline page and a run notebook's HTML copy in headless Chromium.

Chromium (Debian package ``chromium``) loads each page from the file system, takes a
screenshot and dumps the DOM after its scripts ran. With ``--enable-logging=stderr``
it writes every console message and uncaught page error to stderr as
``CONSOLE`` lines with the page's URL, which the tests read. ``--no-sandbox`` is
needed when the tests run as root, as in CI containers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tests.test_report_html import INCIDENT, PLANTED_SECRET, build_incident
from veerunbook.cli import main
from veerunbook.redact import Redactor
from veerunbook.report_html import render_run_notebooks

CHROMIUM_HINT = (
    "chromium was not found on PATH; install the Debian package chromium "
    "(apt-get install --no-install-recommends chromium)."
)
_BROWSER_TIMEOUT_S = 120


def find_chromium() -> str:
    """Return Chromium's path, failing under CI and skipping elsewhere if missing."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    if os.environ.get("CI"):
        pytest.fail(CHROMIUM_HINT)
    pytest.skip(CHROMIUM_HINT)


def open_page(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        find_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
        *extra,
        page.absolute().as_uri(),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=_BROWSER_TIMEOUT_S,
    )


def page_messages(stderr: str, page: Path) -> list[str]:
    """Return the console lines Chromium logged for ``page``."""
    uri = page.absolute().as_uri()
    return [line for line in stderr.splitlines() if "CONSOLE" in line and uri in line]


def visible_text(dom: str) -> str:
    """Return the DOM's text with tags removed and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review incident with its timeline page and notebook copy written."""
    find_chromium()
    base = tmp_path_factory.mktemp("browser")
    folder = build_incident(base / "archive", base / "notebooks")
    render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    args = ["timeline", INCIDENT, "--format", "html"]
    assert main([*args, "--archive", str(folder.parent)]) == 0
    return folder


@pytest.fixture(scope="module")
def timeline_page(folder: Path) -> Path:
    return folder / "reports" / "timeline.html"


@pytest.fixture(scope="module")
def timeline_dom(timeline_page: Path) -> subprocess.CompletedProcess[str]:
    return open_page(timeline_page, "--dump-dom")


@pytest.fixture(scope="module")
def screenshot(timeline_page: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shot = tmp_path_factory.mktemp("shots") / "timeline.png"
    result = open_page(timeline_page, f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    return shot


def test_timeline_dom_dumped(timeline_dom: subprocess.CompletedProcess[str]) -> None:
    assert timeline_dom.returncode == 0, timeline_dom.stderr[-2000:]
    assert "</html>" in timeline_dom.stdout


def test_timeline_shows_incident(
    timeline_dom: subprocess.CompletedProcess[str],
) -> None:
    text = visible_text(timeline_dom.stdout)
    assert f"Timeline of {INCIDENT}" in text
    assert "checkout errors" in text


def test_timeline_shows_run_and_verdict(
    timeline_dom: subprocess.CompletedProcess[str],
) -> None:
    assert "review-fixture findings" in visible_text(timeline_dom.stdout)


def test_timeline_shows_action(
    timeline_dom: subprocess.CompletedProcess[str],
) -> None:
    assert "restart checkout: 3 pods restarted" in visible_text(timeline_dom.stdout)


def test_timeline_links_notebook_copy(
    timeline_dom: subprocess.CompletedProcess[str],
) -> None:
    link = r'href="\.\./runs/[^"]+-review-fixture\.html"'
    assert re.search(link, timeline_dom.stdout)


def test_timeline_no_console_messages(
    timeline_dom: subprocess.CompletedProcess[str], timeline_page: Path
) -> None:
    assert page_messages(timeline_dom.stderr, timeline_page) == []


def test_screenshot_written(screenshot: Path) -> None:
    assert screenshot.stat().st_size > 0


def test_screenshot_not_blank(screenshot: Path) -> None:
    pixels = imread(str(screenshot))
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 1


def test_notebook_copy_in_browser(folder: Path) -> None:
    copy = next((folder / "runs").glob("*-review-fixture.html"))
    result = open_page(copy, "--dump-dom")
    text = visible_text(result.stdout)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "checkout p95 is 2450 ms" in text
    assert "POST /api/checkout" in text
    assert "token in use: ***" in text
    assert PLANTED_SECRET not in result.stdout
    assert page_messages(result.stderr, copy) == []
