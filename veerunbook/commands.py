"""The subcommands behind ``veerunbook``; ``cli`` parses, this module acts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from veerunbook.config import Config, load_config
from veerunbook.errors import UsageError
from veerunbook.redact import RedactingFilter, Redactor

_log = logging.getLogger("veerunbook")


def dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand named in ``args`` and return its exit code."""
    config = load_config(args.config)
    redactor = config.redactor()
    _install_log_handler(redactor, args.verbose)
    handlers: dict[str, Callable[[argparse.Namespace, Config, Redactor], int]] = {
        "list": _list,
        "show": _show,
        "run": _run,
        "verify": _verify,
        "simulate": _simulate,
    }
    return handlers[args.command](args, config, redactor)


def _install_log_handler(redactor: Redactor, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    for name in ("veerunbook", "papermill"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    _log.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("papermill").setLevel(
        logging.INFO if verbose else logging.WARNING
    )


def _list(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.procedures import list_procedures

    procedures = list_procedures()
    width = max((len(p.name) for p in procedures), default=0)
    for procedure in procedures:
        print(f"{procedure.name:<{width}}  {procedure.purpose}")
    return 0


def _show(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.params import read_parameters
    from veerunbook.procedures import find_procedure

    procedure = find_procedure(args.procedure)
    specs = read_parameters(json.loads(procedure.path.read_text(encoding="utf-8")))
    print(f"{procedure.name}: {procedure.title}")
    print(procedure.purpose)
    print()
    rows = [("name", "type", "default", "help")]
    rows += [(s.name, str(s.type), repr(s.default), s.help) for s in specs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, kind, default, text in rows:
        print(
            f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {text}"
        )
    return 0


def _run(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.incident import archive_root
    from veerunbook.params import read_parameters, resolve_parameters
    from veerunbook.procedures import find_procedure
    from veerunbook.runner import run_procedure

    # Validate everything before anything is written.
    procedure = find_procedure(args.procedure)
    target = args.target or config.default_target
    config.resolve_target(target)
    specs = read_parameters(json.loads(procedure.path.read_text(encoding="utf-8")))
    cli_pairs = [(name, value) for name, value in args.parameter]
    for path in args.parameters_file:
        if not Path(path).is_file():
            raise UsageError(f"parameters file {str(path)!r} not found")
    params = resolve_parameters(specs, cli_pairs, list(args.parameters_file))
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(
            f"--timeout must be a positive number of seconds, not {args.timeout}"
        )

    # The kernel loads the configuration again; it must find the same file.
    if config.path:
        os.environ["VEERUNBOOK_CONFIG"] = str(Path(config.path).absolute())
    outcome = run_procedure(
        procedure.name,
        incident=args.incident,
        target=target,
        params=params,
        archive=archive_root(args.archive),
        redactor=redactor,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        html=args.html,
    )
    _print_outcome(outcome, redactor)
    return outcome.exit_code


def _print_outcome(outcome: object, redactor: Redactor) -> None:
    from veerunbook.incident import load_incident
    from veerunbook.runner import RunOutcome

    assert isinstance(outcome, RunOutcome)
    incident = load_incident(outcome.notebook.parent.parent)
    lines = [
        f"incident:  {outcome.incident}",
        f"run:       {outcome.run_id} ({outcome.procedure}) {outcome.status}"
        f" in {outcome.duration_s:.1f} s",
        f"class:     {incident.severity or 'no incident'}",
        f"checks:    {_counts(outcome.counts)}",
        f"notebook:  {outcome.notebook}",
    ]
    if outcome.reason:
        cell = (
            f" (cell {outcome.failing_cell})"
            if outcome.failing_cell is not None
            else ""
        )
        lines.append(f"reason:    {outcome.reason}{cell}")
    print(redactor.mask("\n".join(lines)))


def _counts(counts: dict[str, int]) -> str:
    shown = [
        f"{counts[key]} {key}" for key in ("fail", "error", "warn", "pass", "skip")
    ]
    return ", ".join(item for item in shown if not item.startswith("0 ")) or "none"


def _verify(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.incident import archive_root, incident_dir
    from veerunbook.verify import verify

    folder = incident_dir(archive_root(args.archive), args.incident)
    if not folder.is_dir():
        raise UsageError(f"incident {args.incident!r} not found in {folder.parent}")
    result = verify(folder)
    if result.ok:
        print(f"{args.incident}: journal intact, {result.events} events verified")
        return 0
    where = f"line {result.line}" if result.line else result.path or "journal"
    print(f"{args.incident}: verification failed at {where}: {result.problem}")
    return 1


def _simulate(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.simulator import SCENARIOS, serve_forever

    if args.scenario not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        raise UsageError(f"unknown scenario {args.scenario!r}; choose one of {names}")
    try:
        serve_forever(args.scenario, args.host, args.port)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0
