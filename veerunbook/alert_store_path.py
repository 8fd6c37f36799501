"""The path of a target's alert sample store under the archive.

Each target has its own folder, ``<archive>/alerts/<slug>/``, named by
``target_slug``, which holds ``samples.sqlite3`` and the check lock.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def target_slug(target_name: str) -> str:
    """Return a folder name for ``target_name``: safe characters plus a short hash.

    Characters other than letters, digits and ``-_.`` become ``-``. The first 8 hex
    digits of the name's SHA-256 keep two names that map to the same text apart.
    """
    digest = hashlib.sha256(target_name.encode("utf-8")).hexdigest()[:8]
    readable = _UNSAFE.sub("-", target_name).strip("-.")[:60] or "target"
    return f"{readable}-{digest}"


def store_path(archive: Path, target_name: str) -> Path:
    """Return the path of ``target_name``'s sample database under ``archive``."""
    return archive / "alerts" / target_slug(target_name) / "samples.sqlite3"
