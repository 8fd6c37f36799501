"""The package import keeps jsonschema from loading the rfc3987_syntax grammar."""

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(completed.stdout.split())


def test_rfc3987_installed() -> None:
    # Without rfc3987_syntax installed, the tests below would pass trivially.
    assert "rfc3987_syntax" in _modules_after("import rfc3987_syntax")


@pytest.mark.parametrize("module", ["papermill", "nbformat", "jsonschema"])
def test_grammar_skipped_after_package(module: str) -> None:
    loaded = _modules_after(f"import veerunbook\nimport {module}")
    assert "rfc3987_syntax.syntax_helpers" not in loaded


def test_jsonschema_still_validates() -> None:
    code = (
        "import veerunbook, nbformat\n"
        "nb = nbformat.v4.new_notebook()\n"
        "nb.cells.append(nbformat.v4.new_code_cell('x = 1'))\n"
        "nbformat.validate(nb)\n"
        "del nb['cells'][0]['source']\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('rejected')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.strip() == "rejected"
