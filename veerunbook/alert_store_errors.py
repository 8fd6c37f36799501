"""Conversion of the alert sample store's SQLite and OS failures into ``StoreError``.

``guarded`` wraps each ``SampleStore`` method, so a caller catches one exception
type whose message names the database path, the reason and the fix.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from veerunbook.errors import StoreError

logger = logging.getLogger("veerunbook.alert_store")


class _HasPath(Protocol):
    """A store object with the path of its database file."""

    @property
    def path(self) -> Path: ...


_S = TypeVar("_S", bound=_HasPath)
_P = ParamSpec("_P")
_R = TypeVar("_R")

# Fixes named in a StoreError. After a damaged file is moved aside, the next check
# creates a new, empty store.
_FIX_DAMAGED = "Move the file aside; the next check starts a new store"
_FIX_ACCESS = (
    "Make its folder writable with free space, or move the file aside;"
    " the next check starts a new store"
)


def _store_error(path: Path, error: sqlite3.Error | OSError) -> StoreError:
    damaged = isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError
    )
    reason = str(error) or error.__class__.__name__
    if isinstance(error, OSError):
        reason = f"{error.strerror or error.__class__.__name__}: {error.filename}"
    return StoreError(str(path), reason, _FIX_DAMAGED if damaged else _FIX_ACCESS)


def guarded(
    method: Callable[Concatenate[_S, _P], _R],
) -> Callable[Concatenate[_S, _P], _R]:
    """Raise a store method's SQLite or OSError failure as ``StoreError``."""

    @functools.wraps(method)
    def wrapper(store: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(store, *args, **kwargs)
        except (sqlite3.Error, OSError) as error:
            logger.debug("sample store %s failed: %s", store.path, error)
            raise _store_error(store.path, error) from error

    return wrapper
