"""Validation of a group run: several procedures named in one ``veerunbook run``.

Every check here runs before anything is written. A ``-p``/``-f`` parameter must be
declared by at least one of the named procedures and goes to each procedure that
declares it, converted and checked by that procedure's own declaration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from veerunbook.errors import ParameterError, UsageError
from veerunbook.incident import check_title
from veerunbook.params import (
    CONFIRM_PARAM,
    STANDARD_PARAMETERS,
    ParamSpec,
    ResolvedParameters,
    read_parameters,
    resolve_parameters,
    suggest,
)
from veerunbook.procedures import Procedure, find_procedure

__all__ = ["PlannedRun", "plan_runs"]

# Errors about one parameter start with its quoted name (see veerunbook.params).
_PARAMETER_NAME = re.compile(r"parameter '([^']+)'")


@dataclass(frozen=True)
class PlannedRun:
    """One procedure of the group with the parameters that it declares."""

    procedure: Procedure
    params: ResolvedParameters


def plan_runs(
    names: Sequence[str],
    cli: list[tuple[str, str]],
    files: list[Path],
) -> list[PlannedRun]:
    """Check the procedure names and split the parameters among them.

    Raises UsageError for an unknown or repeated procedure, a parameter that none
    of them declares, ``confirm`` (a confirmed action runs one procedure at a time)
    or a missing file, and ParameterError for a value that a procedure rejects.
    """
    _reject_repeats(names)
    procedures = [find_procedure(name) for name in names]
    for name, _ in cli:
        if name == CONFIRM_PARAM:
            raise _confirm_rejected()
    for path in files:
        if not Path(path).is_file():
            raise UsageError(
                f"parameters file {str(path)!r} not found; check the path given "
                "with -f."
            )
    specs = {
        procedure.name: read_parameters(
            json.loads(procedure.path.read_text(encoding="utf-8"))
        )
        for procedure in procedures
    }
    _reject_undeclared([name for name, _ in cli], specs)
    planned = [
        PlannedRun(procedure, _parameters_for(procedure.name, specs, cli, files))
        for procedure in procedures
    ]
    for run in planned:
        if CONFIRM_PARAM in run.params:
            raise _confirm_rejected()
        if isinstance(run.params.get("title"), str):
            check_title(run.params["title"])
    return planned


def _reject_repeats(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(
                f"procedure {name!r} is named more than once; name each procedure "
                "once, because one incident gets one run of each."
            )
        seen.add(name)


def _confirm_rejected() -> UsageError:
    return UsageError(
        f"parameter {CONFIRM_PARAM!r} is rejected with several procedures, because "
        "confirmed actions run one procedure at a time; run that procedure alone."
    )


def _reject_undeclared(names: list[str], specs: dict[str, list[ParamSpec]]) -> None:
    """Raise ParameterError for a ``-p`` name that no named procedure declares."""
    declared = {spec.name for found in specs.values() for spec in found}
    known = sorted(declared - set(STANDARD_PARAMETERS))
    for name in names:
        if name in STANDARD_PARAMETERS:
            raise ParameterError(
                f"parameter {name!r} is set by the runner; use the --{name} option "
                "instead."
            )
        if name not in declared:
            raise ParameterError(
                f"parameter {name!r} is declared by none of the procedures "
                f"{', '.join(specs)}.{suggest(name, known)} Known parameters: "
                f"{', '.join(known) or 'none'}."
            )


def _parameters_for(
    procedure: str,
    specs: dict[str, list[ParamSpec]],
    cli: list[tuple[str, str]],
    files: list[Path],
) -> ResolvedParameters:
    """Resolve every given parameter, then keep the ones ``procedure`` declares.

    The procedure's own declarations convert its parameters. A name that only
    another procedure of the group declares is resolved with that declaration,
    so a file may carry parameters for several procedures, and is then dropped.
    """
    own = specs[procedure]
    own_names = {spec.name for spec in own}
    others: dict[str, tuple[str, ParamSpec]] = {
        spec.name: (name, spec)
        for name, found in specs.items()
        if name != procedure
        for spec in found
        if spec.name not in own_names
    }
    try:
        every = resolve_parameters(
            [*own, *(spec for _, spec in others.values())], cli, files
        )
    except ParameterError as error:
        # Name the procedure whose declaration rejected the value.
        match = _PARAMETER_NAME.match(str(error))
        declared_by = others.get(match.group(1)) if match else None
        blamed = declared_by[0] if declared_by else procedure
        raise ParameterError(f"procedure {blamed!r}: {error}") from None

    # Replay each kept value's origins, so that the run journals the same sources
    # (-p or -f FILE, and what each overrode) as a run of this procedure alone.
    provenance = every.provenance()
    kept = ResolvedParameters()
    for name, value in every.items():
        if name not in own_names:
            continue
        origins = [*provenance[name]["overrides"], provenance[name]["source"]]
        for origin in origins:
            kept.assign(name, value, origin)
    return kept
