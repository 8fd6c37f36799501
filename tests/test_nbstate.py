"""Tests of cell states derived from evidence, masking and strict JSON.

The notebooks under ``fixtures/`` are real papermill 2.7.0 outputs: one of a kernel
killed by SIGKILL in step 2, one of step 2 hitting ``--execution-timeout 30``, one that
leaked credentials, and one with a NaN parameter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook, new_output

from veerunbook.nbstate import (
    annotate,
    assess_execution,
    mask_notebook,
    notebook_json,
)
from veerunbook.redact import Redactor

FIXTURES = Path(__file__).parent / "fixtures"
DEATH = FIXTURES / "papermill-kernel-death-timeout"
SECRETS = FIXTURES / "papermill-secret-in-output"
FAKE_SECRETS = [
    "Xk9#vQ2!rb-2026",
    "Xk9%23vQ2%21rb-2026",
    "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "c210cF9wYXNzd29yZDogIlhrOSN2UTIhcmItMjAyNiIK",
]


def _load(path: Path) -> dict[str, Any]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(nb, dict)
    return nb


def _strict(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def _run_info() -> dict[str, Any]:
    return {"run_id": "RUN-1", "procedure": "p", "status": "failed"}


def test_case_oom_kernel_died() -> None:
    nb = _load(DEATH / "output-oom.ipynb")
    assessment = assess_execution(nb, DeadKernelError("Kernel died"))
    assert assessment.reason == "kernel died"
    assert assessment.failing_cell == 3
    assert assessment.cell_states[:3] == ["completed"] * 3
    assert assessment.cell_states[3] == "failed"
    assert assessment.cell_states[4] == "not executed"


def test_case_hang_timed_out() -> None:
    nb = _load(DEATH / "output-hang.ipynb")
    error = CellTimeoutError("A cell timed out while it was being executed")
    assessment = assess_execution(nb, error, cell_timeout=30)
    assert assessment.reason == "cell timed out after 30 s"
    assert assessment.failing_cell == 3
    assert assessment.cell_states[3] == "failed"
    assert assessment.cell_states[4] == "not executed"


def test_case_hang_keeps_partial_stdout() -> None:
    nb = _load(DEATH / "output-hang.ipynb")
    annotate(
        nb, assess_execution(nb, CellTimeoutError("timed out"), cell_timeout=30), {}
    )
    text = notebook_json(nb)
    assert "step 1: probing http://192.0.2.10:5000" in text
    assert "step 2: GET http://192.0.2.10:5000/readyz" in text


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("output-oom.ipynb", DeadKernelError("Kernel died")),
        ("output-hang.ipynb", CellTimeoutError("timed out")),
    ],
)
def test_case_annotated_with_truth(name: str, error: Exception) -> None:
    nb = _load(DEATH / name)
    annotate(nb, assess_execution(nb, error, cell_timeout=30), _run_info())
    statuses = [cell["metadata"]["papermill"]["status"] for cell in nb["cells"]]
    assert statuses == ["completed", "completed", "completed", "failed", "not executed"]
    assert nb["cells"][3]["metadata"]["papermill"]["exception"] is True
    assert nb["metadata"]["papermill"]["exception"] is True
    assert "step 1: probing http://192.0.2.10:5000" in notebook_json(nb)
    block = nb["metadata"]["veerunbook"]
    assert block["run_id"] == "RUN-1"
    assert block["failing_cell"]["index"] == 3
    assert block["cells"][4] == "not executed"


def test_failing_cell_excerpt() -> None:
    nb = _load(DEATH / "output-oom.ipynb")
    annotate(nb, assess_execution(nb, DeadKernelError("Kernel died")), _run_info())
    excerpt = nb["metadata"]["veerunbook"]["failing_cell"]["excerpt"]
    assert excerpt.startswith("# step 2 loads the whole application log")
    assert excerpt.count("\n") == 2


def test_completed_run_has_no_reason() -> None:
    nb = _load(DEATH / "output-oom.ipynb")
    nb["cells"] = nb["cells"][:3]
    assessment = assess_execution(nb, None)
    assert assessment.completed
    assert assessment.failing_cell is None
    assert assessment.cell_states == ["completed"] * 3


def test_interrupted_cell_state() -> None:
    nb = _load(DEATH / "output-hang.ipynb")
    assessment = assess_execution(
        nb, KeyboardInterrupt(), reason="interrupted by SIGTERM"
    )
    assert assessment.reason == "interrupted by SIGTERM"
    assert assessment.cell_states[3] == "interrupted"


def test_expected_error_not_failing() -> None:
    nb = new_notebook(cells=[new_code_cell("1/0"), new_code_cell("raise KeyError")])
    nb.cells[0].metadata["tags"] = ["raises-exception"]
    for index, cell in enumerate(nb.cells):
        cell.execution_count = index + 1
        error = new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])
        cell.outputs = [error]
    assessment = assess_execution(nb, RuntimeError("cell error"))
    assert assessment.failing_cell == 1
    assert assessment.cell_states == ["completed", "failed"]


def test_clean_system_exit_not_failing() -> None:
    nb = new_notebook(cells=[new_code_cell("raise SystemExit"), new_code_cell("x")])
    nb.cells[0].execution_count = 1
    nb.cells[0].outputs = [
        new_output("error", ename="SystemExit", evalue="", traceback=[])
    ]
    nb.cells[1].execution_count = 2
    assessment = assess_execution(nb, RuntimeError("stopped"))
    assert assessment.failing_cell == 1


def test_error_before_any_cell() -> None:
    nb = _load(DEATH / "output-oom.ipynb")
    for cell in nb["cells"]:
        cell["execution_count"] = None
        cell["metadata"]["papermill"]["start_time"] = None
    assessment = assess_execution(nb, RuntimeError("No such kernel named python3"))
    assert assessment.failing_cell is None
    assert assessment.reason == "RuntimeError: No such kernel named python3"
    assert set(assessment.cell_states) == {"not executed"}


def test_case_secrets_masked_everywhere() -> None:
    nb = _load(SECRETS / "papermill-output-unredacted.ipynb")
    text = notebook_json(mask_notebook(nb, Redactor(FAKE_SECRETS)))
    for secret in FAKE_SECRETS:
        assert secret not in text


def test_case_masking_keeps_plain_values() -> None:
    nb = _load(SECRETS / "papermill-output-unredacted.ipynb")
    masked = mask_notebook(nb, Redactor(FAKE_SECRETS))
    parameters = masked["metadata"]["papermill"]["parameters"]
    assert parameters["service_url"] == "http://192.0.2.10:5000"
    assert sorted(parameters) == ["api_token", "pg_dsn", "service_url", "smtp_password"]
    assert parameters["api_token"] == "***"
    assert (
        "checking database db.veefore.internal:5432/veefore as runbook"
        in (masked["cells"][3]["outputs"][0]["text"][0])
    )


def test_case_nan_parameter_written_strict() -> None:
    path = FIXTURES / "papermill-cli-param-types" / "papermill-output.ipynb"
    with pytest.raises(ValueError, match="NaN"):
        _strict(path.read_text(encoding="utf-8"))
    nb = _strict(notebook_json(_load(path)))
    assert nb["metadata"]["papermill"]["parameters"]["p95_threshold_ms"] is None
    assert nb["metadata"]["papermill"]["parameters"]["owner"] == "Zoë Ångström"


def test_json_keeps_non_ascii() -> None:
    path = FIXTURES / "papermill-cli-param-types" / "papermill-output.ipynb"
    assert "Zoë Ångström" in notebook_json(_load(path))
