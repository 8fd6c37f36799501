"""Exceptions raised by veerunbook.

Every error that the command line turns into a one-line message derives from
``VeerunbookError``:

- ``ConfigError``: ``veerunbook.toml`` is malformed or contradictory (names the file,
  the key and the reason).
- ``UsageError``: the caller asked for something that cannot be done as given: an
  unknown procedure or target, an invalid incident id, a rejected parameter. The command
  line exits with code 2 and writes nothing.
- ``ParameterError``: a ``UsageError`` for one notebook parameter.
- ``JournalError``: the journal cannot be read or appended to.
- ``RunError``: a run started but could not complete (kernel died, timeout, cell
  error). The partial notebook has been archived; the command line exits with code 3.
- ``DatabaseUnavailable``: a PostgreSQL server cannot be read because it is unreachable,
  rejects the login, has no free connection slot or does not respond in time.
  ``error_class`` is its classification by ``veerunbook.pg_errors``.
- ``BackupError``: a database backup or restore failed, or a backup does not match
  its manifest.
- ``PrometheusQueryError``: a Prometheus server's query API gave no usable result.
- ``StoreError``: the alert sample store or its folder cannot be opened, read or
  written (a corrupt database, an unwritable folder).

Network and protocol trouble with an HTTP target is never raised: probes return it as a
recorded result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from veerunbook.pg_errors import ErrorClass


class VeerunbookError(Exception):
    """Base class of every error veerunbook raises on purpose."""


class ConfigError(VeerunbookError):
    """Raised when the configuration file is malformed or contradictory."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        where = f"{path}: {key}" if key else path
        super().__init__(f"invalid configuration in {where}: {reason}")


class UsageError(VeerunbookError, ValueError):
    """Raised for invalid input from the caller; nothing has been written yet."""


class ParameterError(UsageError):
    """Raised when a notebook parameter is unknown, mistyped or secret-looking."""


class JournalError(VeerunbookError):
    """Raised when an incident's journal cannot be read or appended to."""


class RunError(VeerunbookError):
    """Raised when a run could not complete; the partial notebook is archived."""


class DatabaseUnavailable(VeerunbookError):
    """Raised when a PostgreSQL server cannot be read.

    The server is unreachable, rejects the login, has no free connection slot or does
    not respond within the timeout. ``error_class`` classifies the failure.
    """

    def __init__(self, message: str, error_class: ErrorClass) -> None:
        super().__init__(message)
        self.error_class = error_class


class BackupError(VeerunbookError):
    """Raised when a backup or restore fails or a backup does not match its manifest."""


class PrometheusQueryError(VeerunbookError):
    """Raised when a Prometheus server's query API gives no usable result.

    The cause is a failed connection, a timeout, an HTTP error, an error response
    from Prometheus, or a body that is not a query result.
    """


class StoreError(VeerunbookError):
    """Raised when the alert sample store cannot be opened, read or written.

    ``path`` is the database or folder, ``reason`` what failed and ``fix`` what
    to do next.
    """

    def __init__(self, path: str, reason: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        self.fix = fix
        super().__init__(f"alert sample store {path} failed: {reason}. {fix}")
