"""Tests of procedure discovery in the notebooks folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.errors import UsageError
from veerunbook.procedures import find_procedure, list_procedures, notebooks_dir

NOTEBOOKS = Path(__file__).parent / "notebooks"


@pytest.fixture(autouse=True)
def fixture_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(NOTEBOOKS))


def test_list_sorted_by_name() -> None:
    names = [procedure.name for procedure in list_procedures()]
    assert names == sorted(names)
    assert "hangs" in names
    assert "kernel_dies" in names


def test_title_and_purpose_from_header() -> None:
    procedure = find_procedure("hangs")
    assert procedure.title == "Hangs in step 2"
    assert procedure.purpose == "Step 2 sleeps like a request without a client timeout."
    assert procedure.path == NOTEBOOKS / "hangs.ipynb"


def test_unknown_name_suggests_match() -> None:
    with pytest.raises(UsageError) as raised:
        find_procedure("hang")
    message = str(raised.value)
    assert "unknown procedure 'hang'." in message
    assert "Did you mean 'hangs'?" in message
    assert "Known procedures: cell_error, declares_ok, findings, hangs," in message


@pytest.mark.parametrize("name", ["../notebooks/hangs", "/etc/passwd", "", ".hidden"])
def test_path_like_name_rejected(name: str) -> None:
    with pytest.raises(UsageError, match="unknown procedure"):
        find_procedure(name)


def test_missing_folder_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path / "absent"))
    with pytest.raises(UsageError, match="set VEERUNBOOK_NOTEBOOKS"):
        list_procedures()


def test_default_folder_beside_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEERUNBOOK_NOTEBOOKS")
    assert notebooks_dir() == Path(__file__).resolve().parent.parent / "notebooks"


def test_untitled_notebook_named_by_stem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bare.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path))
    procedure = find_procedure("bare")
    assert procedure.title == "bare"
    assert procedure.purpose == ""
