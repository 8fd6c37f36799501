"""Plot figures built without pyplot, shown by a real IPython kernel.

One notebook runs in a fresh kernel: it draws the triage route plot and reports
whether pyplot was imported. Then it makes pyplot load the inline backend, whose
import registers the backend's own PNG formatter for figures, and shows the same
figure again through that formatter.
"""

from __future__ import annotations

import base64
from typing import Any

import nbclient
import nbformat
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from veerunbook.figures import new_figure

ROUTES = (
    "import sys\n"
    "import pandas as pd\n"
    "from veerunbook.triage_plots import plot_routes\n"
    "routes = pd.DataFrame({\n"
    "    'route': ['GET /api/user', 'POST /api/posts/schedule'],\n"
    "    'requests': [10.0, 4.0],\n"
    "    '5xx %': [0.0, 25.0],\n"
    "    'p95 ms': [48.4, 2100.0],\n"
    "})\n"
    "figure = plot_routes(routes)\n"
    "figure"
)
PYPLOT_LOADED = "print('matplotlib.pyplot' in sys.modules)"
# pyplot loads its backend with the first figure, not on import.
INLINE_LOADED = (
    "import matplotlib.pyplot as plt\n"
    "plt.close(plt.figure())\n"
    "print('matplotlib_inline.backend_inline' in sys.modules)"
)
SHOWN_AGAIN = "figure"


@pytest.fixture(scope="module")
def executed() -> list[Any]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (ROUTES, PYPLOT_LOADED, INLINE_LOADED, SHOWN_AGAIN)
    ]
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")
    client.execute()
    return [cell.outputs for cell in notebook.cells]


def png_of(outputs: list[Any]) -> bytes:
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1
    return base64.b64decode(images[0]["data"]["image/png"])


def test_plot_shown_as_png(executed: list[Any]) -> None:
    assert png_of(executed[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_without_pyplot(executed: list[Any]) -> None:
    printed = "".join(output.get("text", "") for output in executed[1])
    assert printed.strip() == "False"


def test_inline_backend_loaded(executed: list[Any]) -> None:
    printed = "".join(output.get("text", "") for output in executed[2])
    assert printed.strip() == "True"


def test_plot_same_as_inline(executed: list[Any]) -> None:
    assert png_of(executed[0]) == png_of(executed[3])


def test_new_figure_agg_canvas() -> None:
    figure = new_figure(4, 3)
    assert isinstance(figure.canvas, FigureCanvasAgg)
    assert tuple(figure.get_size_inches()) == (4.0, 3.0)
