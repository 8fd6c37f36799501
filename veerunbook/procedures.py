"""Procedures: the notebooks in the repository's ``notebooks/`` folder.

A procedure is named by its notebook's file stem. Its title and purpose come from the
first markdown cell: the first ``# `` heading is the title and the first line of
ordinary text is the purpose. The environment variable ``VEERUNBOOK_NOTEBOOKS``
replaces the folder.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veerunbook.errors import UsageError

__all__ = [
    "NOTEBOOKS_ENV",
    "Procedure",
    "find_procedure",
    "list_procedures",
    "notebooks_dir",
]

NOTEBOOKS_ENV = "VEERUNBOOK_NOTEBOOKS"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Procedure:
    """A procedure notebook with the title and purpose from its header cell."""

    name: str
    path: Path
    title: str
    purpose: str


def notebooks_dir() -> Path:
    """Return the procedure folder: ``$VEERUNBOOK_NOTEBOOKS`` or ``<repo>/notebooks``.

    The default assumes the editable install, where the package sits beside
    ``notebooks/`` in the repository.
    """
    override = os.environ.get(NOTEBOOKS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "notebooks"


def list_procedures() -> list[Procedure]:
    """Return every procedure in the folder, sorted by name."""
    return [_load(path) for path in _notebook_paths()]


def find_procedure(name: str) -> Procedure:
    """Return the procedure called ``name``.

    Raises UsageError naming the value, the closest known name and all known names.
    """
    path = notebooks_dir() / f"{name}.ipynb"
    if _NAME.fullmatch(name) and path.is_file():
        return _load(path)
    known = [path.stem for path in _notebook_paths()]
    matches = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {matches[0]!r}?" if matches else ""
    raise UsageError(
        f"unknown procedure {name!r}.{hint} Known procedures: "
        f"{', '.join(known) or 'none'}."
    )


def _notebook_paths() -> list[Path]:
    folder = notebooks_dir()
    if not folder.is_dir():
        raise UsageError(
            f"procedure folder {str(folder)!r} not found; set {NOTEBOOKS_ENV} to the "
            "folder that contains the procedure notebooks."
        )
    return sorted(folder.glob("*.ipynb"))


def _load(path: Path) -> Procedure:
    """Read a notebook's header cell into a Procedure."""
    try:
        header = _header_markdown(path)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"procedure notebook {str(path)!r} cannot be read ({exc}); restore it "
            "from version control."
        ) from None
    title, purpose = _title_and_purpose(header)
    return Procedure(path.stem, path, title or path.stem, purpose)


def _header_markdown(path: Path) -> str:
    """Return the source of the notebook's first markdown cell, or "".

    A well-formed nbformat 4 notebook is read as plain JSON, because importing
    nbformat and its schema validator costs more than ``veerunbook list`` itself.
    Other versions and malformed cells go through ``nbformat.reads``, which converts
    them to version 4 and raises its usual errors. The JSON path skips nbformat's
    schema validation, which here only logged what it found.
    """
    text = path.read_text(encoding="utf-8")
    cells = _v4_cells(_parse_json(text))
    if cells is None:
        import nbformat

        nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        return next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    for cell in cells:
        if cell["cell_type"] == "markdown":
            source = cell["source"]
            return source if isinstance(source, str) else "".join(source)
    return ""


def _parse_json(text: str) -> Any:
    """Parse notebook JSON, raising ValueError with nbformat 5.10's message."""
    try:
        return json.loads(text)
    except ValueError:
        message = f"Notebook does not appear to be JSON: {text!r}"
        if len(message) > 80:
            message = message[:77] + "..."
        raise ValueError(message) from None


def _v4_cells(nb: Any) -> list[dict[str, Any]] | None:
    """Return the cells of a well-formed nbformat 4 notebook, else None."""
    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        return None
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return None
    for cell in cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            return None
        source = cell.get("source")
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(s, str) for s in source)
        ):
            return None
    return cells


def _title_and_purpose(markdown: str) -> tuple[str, str]:
    """Return the first ``# `` heading and the first sentence of the first paragraph."""
    title = ""
    paragraph: list[str] = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line and not line.startswith(("#", "-", "*")):
            paragraph.append(line)
        elif paragraph:
            break
    text = " ".join(paragraph)
    end = text.find(". ")
    return title, text[: end + 1] if end >= 0 else text
