"""Figures for the procedures' plots, built without pyplot.

A figure from ``new_figure()`` has an Agg canvas of its own and pyplot never tracks it,
so a plot costs neither the pyplot import nor the backend selection, and needs no
``plt.close()``. A notebook cell that returns such a figure shows the PNG that the
inline backend of matplotlib-inline 0.2 shows by default: IPython's ``print_figure``
with ``bbox_inches="tight"`` at the figure's dpi (100 unless a caller sets another).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float, **options: Any) -> Figure:
    """Create a ``width`` by ``height`` inch figure with an Agg canvas.

    ``options`` go to ``matplotlib.figure.Figure``. In an IPython kernel the figure
    type is also registered for PNG display, once.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), **options)
    FigureCanvasAgg(figure)
    _display_as_png(Figure)
    return figure


def preload() -> None:
    """Import the matplotlib modules that ``new_figure()`` needs.

    The import takes roughly 0.3 s of CPU in a kernel that has pandas loaded (measured
    on a 2-core machine with matplotlib 3.11), which a procedure can spend while it
    waits anyway.
    """
    from matplotlib import figure  # noqa: F401
    from matplotlib.backends import backend_agg  # noqa: F401


def _display_as_png(figure_type: type) -> None:
    """Register the PNG formatter for figures in the running IPython shell, if any.

    A formatter that is already registered stays, such as the one that the inline
    backend registers once pyplot has made a figure.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(figure_type)
    except KeyError:
        from IPython.core.pylabtools import print_figure

        png = partial(print_figure, fmt="png", base64=True, bbox_inches="tight")
        formatter.for_type(figure_type, png)
