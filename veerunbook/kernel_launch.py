"""Start the IPython kernel that executes a run's notebook.

Used by the runner in place of ``python -m ipykernel_launcher``. Two things an
interactive kernel wants and an unattended run does not are switched off:

- the debugger: ipykernel imports debugpy at start-up when it is installed, about
  80 ms of every kernel start;
- IPython's command history: the kernel would write every executed cell, parameters
  included, to ``~/.ipython/profile_default/history.sqlite`` from a background
  thread, outside the archive and unmasked.
"""

from __future__ import annotations

import sys

HISTORY_OFF = "--HistoryManager.enabled=False"


def main() -> None:
    """Start the kernel with the arguments of ``ipykernel_launcher``."""
    # ipykernel 7.4 treats a failed debugpy import as "no debugger": an entry of None
    # makes the import raise ImportError.
    sys.modules.setdefault("debugpy", None)  # type: ignore[arg-type]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=[*sys.argv[1:], HISTORY_OFF])


if __name__ == "__main__":
    main()
