"""The true state of an executed notebook, and its masked strict-JSON archive copy.

papermill 2.7 marks every cell ``completed`` after a timeout or a dead kernel, even the
cells that never ran, and leaves ``metadata.papermill.exception`` null. The state of
each cell is therefore derived from execution evidence instead: its execution count
and start time, its error outputs, and the exception that the executor raised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veerunbook.journal import to_json_value, write_atomic
from veerunbook.redact import Redactor

__all__ = [
    "CELL_STATES",
    "Assessment",
    "annotate",
    "assess_execution",
    "describe_error",
    "mask_notebook",
    "notebook_html",
    "notebook_json",
    "write_archive",
]

COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"
NOT_EXECUTED = "not executed"
CELL_STATES = (COMPLETED, FAILED, INTERRUPTED, NOT_EXECUTED)
_EXCERPT_LINES = 3
_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Assessment:
    """Outcome of an execution: the reason it stopped, the failing cell, cell states.

    ``reason`` and ``failing_cell`` are None for an execution that completed.
    ``failing_cell`` is a 0-based index over all cells, the injected-parameters
    cell included.
    """

    reason: str | None
    failing_cell: int | None
    cell_states: list[str]

    @property
    def completed(self) -> bool:
        """Tell whether every cell ran without an unexpected error."""
        return self.reason is None


def assess_execution(
    nb: Mapping[str, Any],
    error: BaseException | None,
    *,
    cell_timeout: float | None = None,
    reason: str | None = None,
) -> Assessment:
    """Derive the per-cell states of ``nb`` from the evidence in it.

    ``error`` is what the executor raised, or None when it returned. ``reason``
    replaces the description derived from ``error``, for example "interrupted by
    SIGTERM". The failing cell is the first with an unexpected error output, else
    the last cell that started, because a dead kernel leaves no error output.
    """
    cells = list(nb.get("cells", []))
    started = [index for index, cell in enumerate(cells) if _started(cell)]
    if error is None:
        states = [
            COMPLETED if i in started else NOT_EXECUTED for i in range(len(cells))
        ]
        return Assessment(None, None, states)

    failing = _first_error_cell(cells)
    if failing is None and started:
        failing = started[-1]
    stopped = INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED
    states = []
    for index in range(len(cells)):
        if failing is not None and index == failing:
            states.append(stopped)
        elif index in started and (failing is None or index < failing):
            states.append(COMPLETED)
        else:
            states.append(NOT_EXECUTED)
    return Assessment(reason or describe_error(error, cell_timeout), failing, states)


def describe_error(error: BaseException, cell_timeout: float | None = None) -> str:
    """Describe in a few words why the executor stopped."""
    # Imported here so that reading an archived notebook does not load the executor.
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, DeadKernelError):
        return "kernel died"
    if isinstance(error, CellTimeoutError):
        if cell_timeout is None:
            return "cell timed out"
        return f"cell timed out after {cell_timeout:g} s"
    if isinstance(error, PapermillExecutionError):
        return f"cell raised {error.ename}: {_first_line(str(error.evalue))}"
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return f"{type(error).__name__}: {_first_line(str(error))}"


def annotate(
    nb: dict[str, Any], assessment: Assessment, run: Mapping[str, Any]
) -> None:
    """Write the derived states into ``nb`` in place.

    Each cell gets its true ``metadata.papermill.status`` and ``exception``. The
    notebook gets a ``metadata.veerunbook`` block with the fields of ``run`` (run id,
    procedure, status, ...), the reason, the failing cell with a source excerpt and
    the state of every cell.
    """
    cells = nb.get("cells", [])
    for cell, state in zip(cells, assessment.cell_states, strict=True):
        papermill = cell.setdefault("metadata", {}).setdefault("papermill", {})
        papermill["status"] = state
        papermill["exception"] = state in (FAILED, INTERRUPTED)

    metadata = nb.setdefault("metadata", {})
    metadata.setdefault("papermill", {})["exception"] = not assessment.completed
    failing = None
    if assessment.failing_cell is not None:
        index = assessment.failing_cell
        failing = {"index": index, "excerpt": excerpt(cells[index].get("source", ""))}
    metadata["veerunbook"] = {
        **run,
        "reason": assessment.reason,
        "failing_cell": failing,
        "cells": list(assessment.cell_states),
    }


def mask_notebook(nb: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Return a copy with every string masked: sources, outputs and all metadata."""
    masked = redactor.mask_obj(nb)
    assert isinstance(masked, dict)
    return masked


def notebook_json(nb: Mapping[str, Any]) -> str:
    """Serialise as strict JSON in nbformat's layout, with NaN and infinities as null.

    papermill writes a bare ``NaN`` into ``metadata.papermill.parameters`` for a NaN
    parameter, which strict JSON parsers reject.
    """
    text = json.dumps(
        to_json_value(nb), allow_nan=False, ensure_ascii=False, indent=1, sort_keys=True
    )
    return text + "\n"


def notebook_html(nb: Mapping[str, Any]) -> str:
    """Render the notebook as a standalone HTML page that loads nothing external."""
    from veerunbook.report_html import notebook_html as render

    return render(nb)


def write_archive(
    base: Path, nb: Mapping[str, Any], log: str, redactor: Redactor, *, html: bool
) -> list[Path]:
    """Write the masked notebook, log and optional HTML copy beside ``base``.

    Returns the written paths, the notebook first. Each file gets the suffix
    ``.ipynb``, ``.log`` or ``.html`` appended to ``base``, and the notebook's
    ``metadata.papermill.output_path`` names its archived path.
    """
    masked = mask_notebook(nb, redactor)
    notebook = base.with_name(base.name + ".ipynb")
    masked.setdefault("metadata", {}).setdefault("papermill", {})
    masked["metadata"]["papermill"]["output_path"] = str(notebook)
    written = []
    contents = {".ipynb": notebook_json(masked), ".log": redactor.mask(log)}
    if html:
        contents[".html"] = redactor.mask(notebook_html(masked))
    for suffix, text in contents.items():
        path = base.with_name(base.name + suffix)
        write_atomic(path, text.encode())
        written.append(path)
    return written


def excerpt(source: str | list[str]) -> str:
    """Return the first few non-blank lines of a cell's source, shortened."""
    if isinstance(source, list):
        source = "".join(source)
    lines = [line.rstrip() for line in source.splitlines() if line.strip()]
    text = "\n".join(lines[:_EXCERPT_LINES])
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 3] + "..."
    return text


def _started(cell: Mapping[str, Any]) -> bool:
    papermill = cell.get("metadata", {}).get("papermill", {})
    return (
        cell.get("execution_count") is not None
        or papermill.get("start_time") is not None
    )


def _first_error_cell(cells: list[Mapping[str, Any]]) -> int | None:
    """Return the first cell with an error output that its tags do not expect.

    ``raises-exception`` tags an intended error, and ``SystemExit`` with no code or
    code 0 is a clean exit, as in papermill's own check.
    """
    for index, cell in enumerate(cells):
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            clean_exit = output.get("ename") == "SystemExit" and output.get(
                "evalue"
            ) in ("", "0")
            if not clean_exit:
                return index
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _EXCERPT_CHARS else line[: _EXCERPT_CHARS - 3] + "..."
