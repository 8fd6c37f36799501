"""HTML copies of run notebooks: conversion, masking, journaling and the CLI option.

The incident is built once per module: one real run of a small notebook through the
runner (a kernel, papermill, the archive), then an acknowledgement, an action and a
resolution written with the incident and Journal APIs. Each test works on a copy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from veerunbook.cli import main
from veerunbook.incident import incident_dir, open_or_update
from veerunbook.journal import Journal, sha256_file
from veerunbook.redact import Redactor
from veerunbook.report_html import (
    EXISTS,
    FAILED,
    WRITTEN,
    notebook_html,
    render_run_notebooks,
)
from veerunbook.runner import run_procedure
from veerunbook.verify import verify

INCIDENT = "INC-REVIEW-1"
PROCEDURE = "review-fixture"
# A secret added to the configuration after the run: the runner did not know it, so
# the archived notebook contains it, and the HTML copy must not.
PLANTED_SECRET = "planted-Sekret-7f3a9c"
SECRET_ENV = "REVIEW_FIXTURE_SECRET"

_CELLS = [
    "import os\n\nimport matplotlib\n\nmatplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\nimport pandas as pd",
    "print('checkout p95 is 2450 ms')\nprint('token in use:', os.environ['"
    + SECRET_ENV
    + "'])",
    "pd.DataFrame([{'route': 'POST /api/checkout', 'requests': 40, '5xx': 3}])",
    "figure, axis = plt.subplots()\naxis.plot([1, 2, 3], [2.0, 7.5, 1.0])\n"
    "axis.set_title('5xx error rate (%)')\nplt.show()",
    "from veerunbook.record import start_run\n\nrun = start_run('"
    + PROCEDURE
    + "')\nrun.check('5xx error rate', 'fail', observed=7.5, unit='%', "
    "expected='<= 5')",
]


def fixture_notebook(folder: Path) -> Path:
    """Write a procedure notebook with text, a table, a figure and a check."""
    params = new_code_cell(
        'incident: str = ""  # incident id\n'
        'target: str = "demo"  # target\n'
        'archive: str = ""  # archive root'
    )
    params.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell("# Review fixture\n\nOne run to render."), params]
    cells += [new_code_cell(source) for source in _CELLS]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PROCEDURE}.ipynb"
    nbformat.write(nb, path)
    return path


def build_incident(archive: Path, notebooks: Path) -> Path:
    """Build the review incident in ``archive`` and return its folder.

    Journal order: opened (P1), acknowledged by alice, run.started, check 5xx fail,
    run.finished, action intent and executed, note, resolved.
    """
    fixture_notebook(notebooks)
    open_or_update(archive, INCIDENT, title="checkout errors", severity="P1")
    open_or_update(archive, INCIDENT, acknowledge=True, acknowledged_by="alice")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VEERUNBOOK_NOTEBOOKS", str(notebooks))
        patch.setenv(SECRET_ENV, PLANTED_SECRET)
        outcome = run_procedure(
            PROCEDURE,
            incident=INCIDENT,
            target="demo",
            params={},
            archive=archive,
            redactor=Redactor(),
        )
    assert outcome.status == "findings", outcome.reason
    folder = incident_dir(archive, INCIDENT)
    journal = Journal(folder)
    action = {"run": outcome.run_id, "name": "restart checkout"}
    journal.append("action", **action, mode="intent", intent="restart the pods")
    journal.append("action", **action, mode="executed", detail="3 pods restarted")
    journal.append("note", run=outcome.run_id, text="errors stopped after restart")
    open_or_update(archive, INCIDENT, resolve=True)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("review")
    return build_incident(base / "archive", base / "notebooks")


@pytest.fixture
def folder(built: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "archive" / INCIDENT
    shutil.copytree(built, copy)
    yield copy


def journal_events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "journal.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def run_notebook(folder: Path) -> Path:
    return next((folder / "runs").glob("*.ipynb"))


def test_archived_notebook_has_planted_secret(folder: Path) -> None:
    assert PLANTED_SECRET in run_notebook(folder).read_text("utf-8")


def test_notebook_html_loads_no_script(folder: Path) -> None:
    page = notebook_html(json.loads(run_notebook(folder).read_text("utf-8")))
    assert "<script src" not in page
    assert "cdnjs" not in page
    assert "import(" not in page


def test_render_writes_copy_beside_notebook(folder: Path) -> None:
    pages = render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    assert [page.status for page in pages] == [WRITTEN]
    assert (folder / pages[0].html).is_file()
    assert pages[0].html == pages[0].notebook.removesuffix(".ipynb") + ".html"


def test_render_shows_outputs(folder: Path) -> None:
    pages = render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    page = (folder / pages[0].html).read_text("utf-8")
    assert "checkout p95 is 2450 ms" in page
    assert "POST /api/checkout" in page
    assert "<table" in page
    assert "data:image/png;base64," in page


def test_render_masks_planted_secret(folder: Path) -> None:
    pages = render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    page = (folder / pages[0].html).read_text("utf-8")
    assert PLANTED_SECRET not in page
    assert "token in use: ***" in page


def test_render_journals_report(folder: Path) -> None:
    pages = render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    last = journal_events(folder)[-1]
    assert last["event"] == "report.written"
    assert last["report"] == "notebook"
    assert last["format"] == "html"
    assert last["files"] == {pages[0].html: sha256_file(folder / pages[0].html)}


def test_verify_passes_after_render(folder: Path) -> None:
    render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    assert verify(folder).ok


def test_verify_detects_edited_copy(folder: Path) -> None:
    pages = render_run_notebooks(folder, Redactor([PLANTED_SECRET]))
    with (folder / pages[0].html).open("a", encoding="utf-8") as page:
        page.write("<!-- edited -->")
    result = verify(folder)
    assert not result.ok
    assert result.path == pages[0].html


def test_render_keeps_existing_copy(folder: Path) -> None:
    render_run_notebooks(folder)
    count = len(journal_events(folder))
    pages = render_run_notebooks(folder)
    assert [page.status for page in pages] == [EXISTS]
    assert len(journal_events(folder)) == count


def test_broken_notebook_skipped(folder: Path) -> None:
    broken = folder / "runs" / "20260101T000000.000000Z-broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    relative = broken.relative_to(folder).as_posix()
    Journal(folder).append(
        "run.finished",
        run="RUN-BROKEN",
        procedure="broken",
        status="failed",
        notebook=relative,
        notebook_sha256=sha256_file(broken),
    )
    pages = {page.notebook: page for page in render_run_notebooks(folder)}
    assert pages[relative].status == FAILED
    assert "JSONDecodeError" in str(pages[relative].reason)
    assert not broken.with_suffix(".html").exists()
    others = [page.status for name, page in pages.items() if name != relative]
    assert others == [WRITTEN]


def test_missing_notebook_skipped(folder: Path) -> None:
    Journal(folder).append(
        "run.finished", run="RUN-GONE", status="failed", notebook="runs/gone.ipynb"
    )
    pages = {page.notebook: page for page in render_run_notebooks(folder)}
    assert pages["runs/gone.ipynb"].reason == "notebook file not found"
    assert len([page for page in pages.values() if page.status == WRITTEN]) == 1


def test_cli_notebooks_writes_and_links(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = str(folder.parent)
    args = ["timeline", INCIDENT, "--format", "html", "--notebooks"]
    code = main([*args, "--archive", archive])
    copy = run_notebook(folder).with_suffix(".html")
    page = (folder / "reports" / "timeline.html").read_text("utf-8")
    assert code == 0
    assert copy.is_file()
    assert f'href="../runs/{copy.name}"' in page
    assert f"runs/{copy.name}: HTML copy of" in capsys.readouterr().out
    assert verify(folder).ok


def test_cli_notebooks_failure_exits_1(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Journal(folder).append(
        "run.finished", run="RUN-GONE", status="failed", notebook="runs/gone.ipynb"
    )
    args = ["timeline", INCIDENT, "--format", "html", "--notebooks"]
    code = main([*args, "--archive", str(folder.parent)])
    assert code == 1
    assert "runs/gone.ipynb: not converted" in capsys.readouterr().err
    assert (folder / "reports" / "timeline.html").is_file()


def test_cli_notebooks_needs_html(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["timeline", INCIDENT, "--notebooks", "--archive", str(folder.parent)])
    assert code == 2
    assert "--notebooks needs --format html" in capsys.readouterr().err
