"""``veerunbook receive``: check the options, then serve until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

from veerunbook.config import Config
from veerunbook.errors import UsageError
from veerunbook.incident import archive_root
from veerunbook.params import STANDARD_PARAMETERS, read_parameters, resolve_parameters
from veerunbook.procedures import list_procedures
from veerunbook.receive import Receiver
from veerunbook.receive_app import build_app
from veerunbook.receive_runs import READ_ONLY_PARAMETERS, RunQueue, RunSettings
from veerunbook.receive_server import (
    ReceiverServer,
    is_loopback,
    parse_listen,
    serve_until_signal,
)
from veerunbook.redact import Redactor

# One week: a longer run limit is a typo, like the run command's --timeout.
MAX_RUN_TIMEOUT_SECONDS = 7 * 24 * 3600.0

_log = logging.getLogger("veerunbook.receive")


def run_receiver(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Serve the webhook receiver with the options in ``args``; return the exit code."""
    # Check every option before the socket is bound or anything is written.
    address, port = parse_listen(args.listen)
    _check_limits(args)
    token = _token(args.token_env, redactor)
    if args.target:
        config.resolve_target(args.target)
    known = frozenset(procedure.name for procedure in list_procedures())
    parameters = _parameters_by_procedure(args.parameter)
    archive = archive_root(args.archive)

    if token is None and not is_loopback(address):
        print(
            f"veerunbook: warning: listening on {address} without --token-env, so "
            "anyone who can reach the port can open incidents and start runs.",
            file=sys.stderr,
            flush=True,
        )

    # Wire the run queue, the decisions and the HTTP app together.
    runs = None
    if not args.no_run:
        settings = RunSettings(
            archive=archive,
            target=args.target,
            config=str(Path(config.path).absolute()) if config.path else None,
            timeout_seconds=args.run_timeout,
            hidden_env=frozenset([args.token_env] if args.token_env else []),
        )
        runs = RunQueue(settings, args.queue_size)
    receiver = Receiver(
        archive,
        runs,
        known_procedures=known,
        parameters=parameters,
        dedupe_seconds=args.dedupe_seconds,
        redactor=redactor,
    )
    app = build_app(receiver, max_body_bytes=args.max_body_bytes, token=token)
    try:
        server = ReceiverServer(app, address, port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.listen} ({exc.strerror or exc}); choose another "
            "address or port with --listen"
        ) from None

    # Create the archive only once the socket is bound, so a failed start leaves
    # nothing behind.
    from veerunbook.commands import checked_archive

    try:
        checked_archive(args.archive)
    except UsageError:
        server.stop()
        raise

    # Serve; a signal stops the server first and the run queue after its current run.
    if runs is not None:
        runs.start()
    print(f"receiving Alertmanager webhooks at {server.url}/", flush=True)
    serve_until_signal(server, runs.stop if runs is not None else lambda: None)
    return 0


def _check_limits(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.dedupe_seconds) and args.dedupe_seconds >= 0):
        raise UsageError(
            f"--dedupe-seconds must be a finite number of 0 or more seconds, not "
            f"{args.dedupe_seconds!r}"
        )
    if args.max_body_bytes < 1:
        raise UsageError(
            f"--max-body-bytes must be at least 1 byte, not {args.max_body_bytes!r}"
        )
    if args.queue_size < 1:
        raise UsageError(f"--queue-size must be at least 1, not {args.queue_size!r}")
    if not 0 < args.run_timeout <= MAX_RUN_TIMEOUT_SECONDS:
        raise UsageError(
            f"--run-timeout must be above 0 and at most "
            f"{MAX_RUN_TIMEOUT_SECONDS:.0f} seconds, not {args.run_timeout!r}"
        )


def _token(name: str | None, redactor: Redactor) -> str | None:
    """Read the bearer token from the environment variable ``name``."""
    if name is None:
        return None
    token = os.environ.get(name, "").strip()
    if not token:
        raise UsageError(
            f"environment variable {name} named by --token-env is not set or empty: "
            "export the bearer token that Alertmanager sends."
        )
    redactor.add(token)
    return token


def _parameters_by_procedure(
    pairs: list[list[str]],
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Keep for each procedure the ``-p`` pairs it declares, checked against its types.

    Raises UsageError for a parameter that the runner sets itself, one that no
    procedure declares, or one outside READ_ONLY_PARAMETERS, because a run that an
    alert starts must never change the target. Raises ParameterError for a value
    that a procedure rejects.
    """
    given = [(name, value) for name, value in pairs]
    for name, _ in given:
        if name in STANDARD_PARAMETERS:
            raise UsageError(
                f"parameter {name} is set by the receiver for every run, "
                f"so remove -p {name}."
            )
        if name not in READ_ONLY_PARAMETERS:
            raise UsageError(
                f"parameter {name} is not allowed: runs that alerts start must never "
                "change the target, so only these read-only parameters may be "
                f"given: {', '.join(sorted(READ_ONLY_PARAMETERS))}."
            )
    chosen: dict[str, tuple[tuple[str, str], ...]] = {}
    declared: set[str] = set()
    for procedure in list_procedures():
        specs = read_parameters(json.loads(procedure.path.read_text(encoding="utf-8")))
        names = {spec.name for spec in specs}
        mine = [(name, value) for name, value in given if name in names]
        if mine:
            resolve_parameters(specs, mine, [])
            chosen[procedure.name] = tuple(mine)
            declared.update(names)
    unknown = sorted({name for name, _ in given} - declared)
    if unknown:
        raise UsageError(
            f"no procedure declares the parameters {', '.join(unknown)}; see "
            "'veerunbook show PROCEDURE' for the parameters of each procedure."
        )
    return chosen
