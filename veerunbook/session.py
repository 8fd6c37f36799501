"""The session a procedure notebook works in: configuration, target and run record.

``begin()`` is the first call of every procedure. It loads the configuration, reaches
the target (starting the embedded one for ``demo``), builds the redactor after any demo
token exists so that token is masked too, and starts or attaches to the run record.
``Session.probe()`` sends one request with the target's limits and journals it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from veerunbook.config import Config, Target, load_config
from veerunbook.dbcheck import read_database_url
from veerunbook.probe import Expect, ProbeResult, probe
from veerunbook.record import RunContext, start_run
from veerunbook.redact import Redactor
from veerunbook.target import GENERATED_TOKENS, connect

_log = logging.getLogger("veerunbook.session")


@dataclass
class Session:
    """Everything a procedure needs between its first and last cell."""

    procedure: str
    config: Config
    target: Target
    redactor: Redactor
    run: RunContext
    _closer: contextlib.ExitStack = field(repr=False)

    def probe(
        self,
        endpoint: str,
        *,
        name: str | None = None,
        expect: Expect = "health",
        method: str = "GET",
        query: str = "",
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        record: bool = True,
    ) -> ProbeResult:
        """Probe a named endpoint (or a path) of the target and journal the result."""
        url = self.target.url(endpoint) + (f"?{query}" if query else "")
        limits = self.target.timeouts
        result = probe(
            url,
            name=name or endpoint,
            expect=expect,
            method=method,
            headers=headers,
            json_body=json_body,
            connect_timeout=limits.connect_seconds,
            read_timeout=limits.read_seconds,
            total_timeout=limits.connect_seconds + 2 * limits.read_seconds,
            max_body_bytes=limits.max_body_bytes,
            redactor=self.redactor,
        )
        if record:
            self.run.record_probe(result)
        return result

    def describe(self) -> dict[str, str]:
        """Summarise the target and which secrets are present, values masked."""
        target = self.target
        # The parsed form is rebuilt without the password, and shows only the scheme
        # of a URL whose password libpq would misread.
        database = read_database_url(target.database_url_env).shown
        token = os.environ.get(target.admin_token_env)
        return {
            "target": target.name,
            "base URL": target.base_url or "-",
            "database URL": (
                self.redactor.mask(database)
                if database
                else f"not set (${target.database_url_env})"
            ),
            "admin token": _token_state(target.admin_token_env, token),
            "incident": self.run.incident_id,
            "run": self.run.run_id,
        }

    def close(self, status: str | None = None) -> str:
        """Finish the run record and stop a demo target; return the run status."""
        try:
            return self.run.finish(status)
        finally:
            self._closer.close()


def _token_state(variable: str, token: str | None) -> str:
    if variable in GENERATED_TOKENS:
        return f"generated for the demo in ${variable}"
    return f"set in ${variable}" if token else f"not set (${variable})"


def begin(
    procedure: str,
    *,
    incident: str = "",
    target: str = "",
    archive: str = "",
    params: Mapping[str, Any] | None = None,
    config_path: str | None = None,
) -> Session:
    """Load the configuration, reach the target and start recording the run."""
    config = load_config(config_path)
    closer = contextlib.ExitStack()
    resolved = closer.enter_context(connect(target or None, config))
    atexit.register(closer.close)
    redactor = config.redactor()
    try:
        run = start_run(
            procedure,
            incident=incident,
            params=params,
            archive=archive,
            redactor=redactor,
        )
    except BaseException:
        closer.close()
        raise
    _log.info("%s: target %s at %s", procedure, resolved.name, resolved.base_url)
    _show_whole_cells()
    return Session(procedure, config, resolved, redactor, run, closer)


def _show_whole_cells() -> None:
    """Show table cells in full: pandas cuts text at 50 characters by default, which
    hid the end of plans and evidence, where a plan names what would change.

    IPython's display formatters take the printers by type name, so pandas is imported
    by the first table and not here. Outside IPython no table is displayed, so nothing
    is registered.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    for module in _PANDAS_MODULES:
        formatters["text/html"].for_type_by_name(module, "DataFrame", _table_html)
        for name in ("DataFrame", "Series"):
            formatters["text/plain"].for_type_by_name(module, name, _table_text)


# IPython looks the printers up by the type's ``__module__``: "pandas" in pandas 3.1,
# the defining module in pandas 2.
_PANDAS_MODULES = ("pandas", "pandas.core.frame", "pandas.core.series")


def _table_html(table: Any) -> str | None:
    _set_whole_cells()
    html: str | None = table._repr_html_()
    return html


def _table_text(table: Any, printer: Any, cycle: bool) -> None:
    _set_whole_cells()
    printer.text(repr(table))


def _set_whole_cells() -> None:
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
