"""HTML copies of run notebooks that a browser shows without network access.

nbconvert's ``HTMLExporter`` (lab template, nbconvert 7) puts scripts from
cdnjs.cloudflare.com into every page: require.js, MathJax 2.7.7, a loader that fetches
Mermaid when the page has a diagram, and, for notebooks with widget state, the
widget manager. ``notebook_html`` renders with the lab template and those blocks
emptied, so the page loads nothing: the lab CSS is inlined and images are base64 data
already. Without MathJax, LaTeX in Markdown cells shows as its source text, and
without the widget manager a widget output shows its text form.

``render_run_notebooks`` writes ``<notebook stem>.html`` beside each run notebook that
a ``run.finished`` line records and that has no HTML copy yet. The notebook is masked
before it is rendered, because HTML escaping would hide a secret containing ``&``,
``<`` or a quote from the redactor, and the page is masked again afterwards. Each page
is journaled as ``report.written`` (report ``notebook``), so ``veerunbook verify``
checks it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from veerunbook.journal import JOURNAL_FILE, readable_events
from veerunbook.nbstate import mask_notebook, notebook_json
from veerunbook.redact import Redactor
from veerunbook.reports import write_report

__all__ = [
    "NotebookPage",
    "notebook_html",
    "print_pages",
    "render_run_notebooks",
    "run_notebooks",
]

WRITTEN, EXISTS, FAILED = "written", "exists", "failed"
REPORT_NAME = "notebook"

_TEMPLATE_NAME = "veerunbook-offline.html.j2"
# Blocks of nbconvert 7's lab/index.html.j2 that load scripts from a CDN.
_OFFLINE_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_log = logging.getLogger("veerunbook.report_html")


@dataclass(frozen=True)
class NotebookPage:
    """The outcome for one run notebook: paths relative to the incident folder.

    ``status`` is ``written``, ``exists`` (an HTML copy was already there) or
    ``failed``, with ``reason`` saying why.
    """

    notebook: str
    html: str
    status: str
    reason: str | None = None


def notebook_html(nb: Mapping[str, Any]) -> str:
    """Render a notebook as one HTML5 page that loads no external resources."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter  # imported here because it loads slowly

    # Reading through nbformat joins the line lists of the on-disk format.
    node = nbformat.reads(notebook_json(nb), as_version=4)  # type: ignore[no-untyped-call]
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        template_file=_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _OFFLINE_TEMPLATE})],
    )
    body, _ = exporter.from_notebook_node(node)
    assert isinstance(body, str)
    return body


def run_notebooks(folder: Path) -> list[str]:
    """Return the notebooks that ``run.finished`` lines record, in journal order.

    The paths are relative to the incident folder, as journaled, without duplicates.
    """
    path = Path(folder) / JOURNAL_FILE
    records = readable_events(path) if path.exists() else []
    found: list[str] = []
    for record in records:
        notebook = record.get("notebook")
        if record.get("event") != "run.finished" or not isinstance(notebook, str):
            continue
        if notebook not in found:
            found.append(notebook)
    return found


def render_run_notebooks(
    folder: Path, redactor: Redactor | None = None
) -> list[NotebookPage]:
    """Write and journal an HTML copy of each run notebook that has none yet.

    A notebook that cannot be read or converted is logged and returned as
    ``failed``, and the others are still converted.
    """
    folder = Path(folder)
    masker = redactor or Redactor()
    pages = []
    for notebook in run_notebooks(folder):
        html = PurePosixPath(notebook).with_suffix(".html").as_posix()
        if (folder / html).exists():
            pages.append(NotebookPage(notebook, html, EXISTS))
            continue
        pages.append(_render_one(folder, notebook, html, masker, redactor))
    return pages


def _render_one(
    folder: Path,
    notebook: str,
    html: str,
    masker: Redactor,
    redactor: Redactor | None,
) -> NotebookPage:
    source = (folder / notebook).resolve()
    if not source.is_relative_to(folder.resolve()) or source.suffix != ".ipynb":
        return _failed(notebook, html, "not an .ipynb file inside the incident folder")
    try:
        nb = json.loads(source.read_bytes())
        if not isinstance(nb, dict):
            return _failed(notebook, html, "not a notebook: the JSON is not an object")
        page = masker.mask(notebook_html(mask_notebook(nb, masker)))
    except FileNotFoundError:
        return _failed(notebook, html, "notebook file not found")
    # nbformat, nbconvert and its Jinja templates raise many exception types for a
    # malformed notebook, and one bad notebook must not stop the others.
    except Exception as exc:
        reason = masker.mask(f"{type(exc).__name__}: {_first_line(exc)}")
        return _failed(notebook, html, reason)
    data = page.encode("utf-8")
    write_report(
        folder, folder / html, data, report=REPORT_NAME, fmt="html", redactor=redactor
    )
    return NotebookPage(notebook, html, WRITTEN)


def print_pages(pages: Iterable[NotebookPage], out: IO[str], err: IO[str]) -> int:
    """Print each page written to ``out`` and each failure to ``err``.

    Returns the number of failures.
    """
    failures = 0
    for page in pages:
        if page.status == WRITTEN:
            print(f"{page.html}: HTML copy of {page.notebook}", file=out)
        elif page.status == FAILED:
            failures += 1
            print(f"{page.notebook}: not converted ({page.reason})", file=err)
    return failures


def _failed(notebook: str, html: str, reason: str) -> NotebookPage:
    _log.warning("run notebook %s not converted to HTML: %s", notebook, reason)
    return NotebookPage(notebook, html, FAILED, reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"
