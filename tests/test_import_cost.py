"""Heavy libraries stay unloaded until a function needs them.

Each case runs in a fresh interpreter, because this test process has imported most of
them already. The cases are the command line module, ``veerunbook list`` and
``veerunbook show``, and the import statements of each procedure notebook's first code
cell after the parameters. The notebook cases are read from the notebooks, so a new
import there is checked too.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from veerunbook.errors import UsageError
from veerunbook.procedures import find_procedure

HEAVY = (
    "pandas",
    "matplotlib",
    "numpy",
    "psycopg",
    "nbformat",
    "papermill",
    "nbclient",
    "jupyter_client",
    "nbconvert",
    "starlette",
    "uvicorn",
    "prometheus_client",
)
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Prints the heavy libraries that the code before it loaded, as a JSON list on the
# last line of stdout.
_REPORT = (
    "import json, sys\n"
    f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
)
_CLI = (
    "import contextlib, io\n"
    "from veerunbook.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    code = main({argv!r})\n"
    "assert code == 0, code\n"
)


def first_cell_imports(notebook: Path) -> str:
    """Return the import statements of the first code cell after the parameters."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    tags = code[0].get("metadata", {}).get("tags", [])
    assert "parameters" in tags, f"{notebook.name}: first code cell is not parameters"
    source = code[1]["source"]
    tree = ast.parse(source if isinstance(source, str) else "".join(source))
    imports = [
        node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join(ast.unparse(node) for node in imports) + "\n"


def _cases() -> dict[str, str]:
    cases = {
        "import veerunbook.cli": "import veerunbook.cli\n",
        "veerunbook list": _CLI.format(argv=["list"]),
        "veerunbook show triage": _CLI.format(argv=["show", "triage"]),
    }
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        cases[f"{notebook.stem} first cell"] = first_cell_imports(notebook)
    return cases


CASES = _cases()


@functools.cache
def loaded_heavy(code: str) -> tuple[str, ...]:
    """Run ``code`` in a fresh interpreter and return the heavy libraries it loaded."""
    with tempfile.TemporaryDirectory(prefix="veerunbook-import-cost-") as folder:
        done = subprocess.run(
            [sys.executable, "-c", code + _REPORT],
            capture_output=True,
            text=True,
            cwd=folder,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    return tuple(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("library", HEAVY)
@pytest.mark.parametrize("case", sorted(CASES))
def test_heavy_library_not_loaded(case: str, library: str) -> None:
    assert library not in loaded_heavy(CASES[case])


def test_every_notebook_checked() -> None:
    notebook_cases = [case for case in CASES if case.endswith(" first cell")]
    assert len(notebook_cases) == len(list(NOTEBOOKS.glob("*.ipynb")))
    assert "triage first cell" in notebook_cases


def test_first_cell_imports_read() -> None:
    code = first_cell_imports(NOTEBOOKS / "triage.ipynb")
    assert "from veerunbook import session as vr_session" in code
    assert "params" not in code


def test_table_loads_pandas() -> None:
    code = (
        "from veerunbook.pg_collect import SlowStatements\nSlowStatements(()).frame()\n"
    )
    assert "pandas" in loaded_heavy(code)


def test_database_url_loads_psycopg() -> None:
    code = (
        "from veerunbook.pg_connect import parse_dsn\n"
        "parse_dsn('postgresql://app@192.0.2.10:5432/shop')\n"
    )
    assert "psycopg" in loaded_heavy(code)


def test_plain_secret_leaves_psycopg() -> None:
    code = "from veerunbook.redact import Redactor\nRedactor(['s3cret-token-value'])\n"
    assert "psycopg" not in loaded_heavy(code)


def test_database_secret_loads_psycopg() -> None:
    code = (
        "from veerunbook.redact import Redactor\n"
        "Redactor(['postgresql://app:s3cret@192.0.2.10/shop'])\n"
    )
    assert "psycopg" in loaded_heavy(code)


# Registers the session's table printers in an IPython shell, then prints whether
# pandas was loaded and the formats of a one-cell table whose text ends in END.
_SHELL_TABLE = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
from veerunbook import session
session._show_whole_cells()
print("pandas" in sys.modules)
import pandas as pd
cell = "x" * 70 + "END"
frame, _ = shell.display_formatter.format(pd.DataFrame({"plan": [cell]}))
series, _ = shell.display_formatter.format(pd.Series([cell]))
print(json.dumps([frame["text/html"], frame["text/plain"], series["text/plain"]]))
"""


@functools.cache
def shell_table() -> tuple[bool, list[str]]:
    """Return whether registering loaded pandas, and the table's three formats."""
    with tempfile.TemporaryDirectory(prefix="veerunbook-ipython-") as folder:
        # IPYTHONDIR keeps the shell's history database out of the home folder.
        done = subprocess.run(
            [sys.executable, "-c", "import json\n" + _SHELL_TABLE],
            capture_output=True,
            text=True,
            cwd=folder,
            env={**os.environ, "IPYTHONDIR": folder},
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    loaded, formats = done.stdout.splitlines()[-2:]
    return loaded == "True", json.loads(formats)


def test_table_printers_leave_pandas() -> None:
    assert shell_table()[0] is False


@pytest.mark.parametrize(
    "index", [0, 1, 2], ids=["frame html", "frame text", "series text"]
)
def test_table_printers_show_whole_cell(index: int) -> None:
    assert "END" in shell_table()[1][index]


# procedures reads nbformat 4 notebooks as plain JSON and hands any other version to
# nbformat, so both paths must keep nbformat's results and messages.
_V3_NOTEBOOK = {
    "nbformat": 3,
    "nbformat_minor": 0,
    "metadata": {},
    "worksheets": [
        {
            "cells": [
                {"cell_type": "heading", "level": 1, "source": "Old", "metadata": {}},
                {"cell_type": "markdown", "source": "Purpose. More.", "metadata": {}},
            ]
        }
    ],
}


def test_v3_notebook_title_from_heading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old.ipynb").write_text(json.dumps(_V3_NOTEBOOK), encoding="utf-8")
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path))
    procedure = find_procedure("old")
    assert procedure.title == "Old"
    assert procedure.purpose == ""


def test_v4_list_source_joined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cell = {"cell_type": "markdown", "metadata": {}, "source": ["# New\n", "Does it."]}
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    (tmp_path / "new.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path))
    procedure = find_procedure("new")
    assert procedure.title == "New"
    assert procedure.purpose == "Does it."


def test_invalid_json_message_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path))
    with pytest.raises(UsageError) as raised:
        find_procedure("broken")
    message = str(raised.value)
    assert "(Notebook does not appear to be JSON: '{not json')" in message
    assert message.endswith("restore it from version control.")


def test_unsupported_version_message_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "future.ipynb").write_text('{"nbformat": 5, "cells": []}')
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(tmp_path))
    with pytest.raises(UsageError, match=r"\(Unsupported nbformat version 5\)"):
        find_procedure("future")
