"""The ``veerunbook`` command line.

Exit codes: 0 completed and healthy; 1 completed with findings (a failed check);
2 invalid usage, configuration or parameters (nothing written); 3 the run could not
complete (kernel died, timeout, notebook error), partial notebook kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from veerunbook.errors import RunError, UsageError, VeerunbookError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_RUN_FAILED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with one subcommand per verb."""
    parser = _Parser(
        prog="veerunbook",
        description="Run incident-response procedures as notebooks, rehearse "
        "incidents against the embedded target, and verify the archive.",
        epilog="Exit codes: 0 healthy, 1 findings, 2 invalid input (nothing "
        "written), 3 the run could not complete (partial notebook kept).",
    )
    parser.add_argument(
        "--config", help="configuration file (default: ./veerunbook.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    commands.add_parser("list", help="list the procedures with their purpose")

    show = commands.add_parser("show", help="show a procedure's parameters")
    show.add_argument("procedure", help="procedure name, e.g. triage")

    run = commands.add_parser(
        "run", help="run one or more procedures and archive the notebooks"
    )
    run.add_argument(
        "procedure",
        nargs="+",
        help="procedure name, e.g. triage; several names run at the same time "
        "for one incident, each with the -p/-f parameters that it declares",
    )
    run.add_argument("--incident", help="incident id (default: a new id, printed)")
    run.add_argument(
        "--target",
        help="target name from the configuration, 'demo', 'demo:SCENARIO' or a base "
        "URL such as http://127.0.0.1:8080 (default: the configured default_target)",
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter; the value is converted to the declared type",
    )
    run.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE.yaml",
        help="YAML mapping of parameters; -p wins over a file for the same name",
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="abort a run after this many seconds; with several procedures, each "
        "run has its own limit (default: no limit)",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        metavar="SECONDS",
        help="abort a cell that runs longer than this many seconds (default: no limit)",
    )
    run.add_argument(
        "--archive",
        help="archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)",
    )
    run.add_argument("--html", action="store_true", help="also write an HTML copy")
    run.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="with several procedures: how many run at the same time, 1 or more "
        "(default: the number of procedures, so all at once)",
    )

    verify = commands.add_parser("verify", help="verify an incident's journal chain")
    verify.add_argument("incident", help="incident id")
    verify.add_argument(
        "--archive", help="archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)"
    )

    timeline = commands.add_parser(
        "timeline", help="print or write an incident's timeline"
    )
    timeline.add_argument("incident", help="incident id")
    timeline.add_argument(
        "--format",
        choices=("md", "html", "csv"),
        default="md",
        help="Markdown, HTML page with plots, or CSV (default md)",
    )
    timeline.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="file to write, replaced atomically (default: standard output for md "
        "and csv, <incident>/reports/timeline.html for html)",
    )
    timeline.add_argument(
        "--archive", help="archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)"
    )
    timeline.add_argument(
        "--notebooks",
        action="store_true",
        help="with --format html: also write <notebook stem>.html beside each run "
        "notebook that has no HTML copy yet, journal it and link it from the page",
    )

    _add_response(commands)

    drill = commands.add_parser(
        "drill", help="rehearse an incident against the embedded target"
    )
    drill.add_argument("scenario", nargs="?", help="fault scenario, e.g. db-outage")
    drill.add_argument("--list", action="store_true", help="describe the scenarios")
    drill.add_argument("--incident", help="incident id (default: a new id)")
    drill.add_argument(
        "--window",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between triage's two metrics scrapes (default 10)",
    )
    drill.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the target serving after the report, until Ctrl-C",
    )
    drill.add_argument(
        "--archive", help="archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)"
    )

    simulate = commands.add_parser("simulate", help="serve the embedded target")
    simulate.add_argument("--scenario", default="healthy", help="fault scenario")
    simulate.add_argument(
        "--port", type=int, default=8080, help="TCP port (default 8080)"
    )
    simulate.add_argument(
        "--data-dir",
        type=Path,
        help="folder for the SQLite state and backups, kept after exit "
        "(default: a temporary folder, removed on exit)",
    )
    simulate.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default 127.0.0.1)",
    )
    alerts = commands.add_parser("alerts", help="work with the runbook's alert rules")
    alert_commands = alerts.add_subparsers(
        dest="alerts_command",
        required=True,
        parser_class=_Parser,
        metavar="{export,check}",
    )
    export = alert_commands.add_parser(
        "export", help="write the alert rules as a Prometheus rule file"
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="rule file to write, replaced atomically (default: standard output)",
    )
    export.add_argument(
        "--job",
        metavar="NAME",
        help="Prometheus job label that every expression matches, so that one"
        " server can watch several services (default: every job)",
    )
    check = alert_commands.add_parser(
        "check",
        help="evaluate the alert rules once against a target, without a notebook "
        "and without changing the rule states that the scheduled check compares with",
    )
    check.add_argument(
        "--target",
        help="target name, 'demo', 'demo:SCENARIO' or a base URL "
        "(default: the configured default_target)",
    )
    check.add_argument(
        "--archive",
        help="archive root holding alerts/ (default: $VEERUNBOOK_ARCHIVE or ./outputs)",
    )
    check.add_argument(
        "--sample-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between the two scrapes when no recent scrape is stored "
        "(default 10)",
    )
    check.add_argument(
        "--interval-seconds",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between scheduled checks (default 60)",
    )
    check.add_argument(
        "--no-store",
        action="store_true",
        help="read the stored samples but write nothing",
    )
    _add_receive(commands)
    return parser


def _add_response(commands: argparse._SubParsersAction[_Parser]) -> None:
    """Add ``ack``, ``escalate``, ``resolve`` and ``postmortem``: the responders'
    records."""
    archive_help = "archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)"
    ack = commands.add_parser("ack", help="acknowledge an incident")
    ack.add_argument("incident", help="incident id")
    ack.add_argument("--by", metavar="NAME", help="responder (default: the OS user)")
    ack.add_argument("--archive", help=archive_help)

    escalate = commands.add_parser(
        "escalate", help="record an escalation to a contact role"
    )
    escalate.add_argument("incident", help="incident id")
    escalate.add_argument(
        "--to",
        required=True,
        metavar="ROLE",
        help="contact role: primary_oncall, security, infrastructure or "
        "engineering_manager",
    )
    escalate.add_argument(
        "--by", metavar="NAME", help="responder (default: the OS user)"
    )
    escalate.add_argument("--archive", help=archive_help)

    resolve = commands.add_parser("resolve", help="record that an incident is resolved")
    resolve.add_argument("incident", help="incident id")
    resolve.add_argument(
        "--by", metavar="NAME", help="responder (default: the OS user)"
    )
    resolve.add_argument("--archive", help=archive_help)

    postmortem = commands.add_parser(
        "postmortem", help="write a blameless post-mortem draft from the journal"
    )
    postmortem.add_argument("incident", help="incident id")
    postmortem.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="file to write, replaced atomically (default: "
        "<incident>/reports/postmortem.md)",
    )
    postmortem.add_argument(
        "--force",
        action="store_true",
        help="replace the draft even when it was edited since it was last written",
    )
    postmortem.add_argument("--archive", help=archive_help)


def _add_receive(commands: argparse._SubParsersAction[_Parser]) -> None:
    """Add the ``receive`` subcommand: the Alertmanager webhook receiver."""
    receive = commands.add_parser(
        "receive",
        help="receive Alertmanager webhooks and run the mapped procedures",
    )
    receive.add_argument(
        "--listen",
        required=True,
        metavar="IP:PORT",
        help="address to listen on, e.g. 127.0.0.1:9095 (port 0: any free port)",
    )
    receive.add_argument(
        "--target",
        help="target of every run (default: the configured default_target)",
    )
    receive.add_argument(
        "--archive", help="archive root (default: $VEERUNBOOK_ARCHIVE or ./outputs)"
    )
    receive.add_argument(
        "--dedupe-seconds",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="drop an alert repeated with the same status and start within this "
        "many seconds: a finite number, 0 or more; 0 keeps every repeat "
        "(default 300)",
    )
    receive.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="reject a webhook body larger than this with 413, at least 1 "
        "(default 1048576)",
    )
    receive.add_argument(
        "--token-env",
        metavar="NAME",
        help="environment variable holding the bearer token that every request "
        "must carry (default: no token required)",
    )
    receive.add_argument(
        "--no-run",
        action="store_true",
        help="journal the alerts but start no procedure run",
    )
    receive.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="read-only notebook parameter, such as window_seconds, for every run "
        "whose procedure declares it; confirm and parameters that change the "
        "target are rejected",
    )
    receive.add_argument(
        "--run-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="abort a run after this many seconds, above 0 and at most 604800 "
        "(one week; default 3600)",
    )
    receive.add_argument(
        "--queue-size",
        type=int,
        default=32,
        metavar="RUNS",
        help="runs that may wait for the worker, at least 1; an alert beyond it "
        "is journaled as not run (default 32)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    A reader that closes the output pipe early (``veerunbook list | head -1``) ends
    the command quietly with exit code 1, unless the command handled it itself.
    """
    try:
        args = build_parser().parse_args(argv)
        from veerunbook import commands

        code = commands.dispatch(args)
        # Flush here, so a closed pipe raises inside this try and not at exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        silence_stdout()
        return EXIT_FINDINGS
    except VeerunbookError as exc:
        print(f"veerunbook: error: {_masked(str(exc), argv)}", file=sys.stderr)
        return EXIT_RUN_FAILED if isinstance(exc, RunError) else EXIT_USAGE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        reason = exc.strerror or exc.__class__.__name__
        print(f"veerunbook: error: {_masked(reason + where, argv)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("veerunbook: interrupted", file=sys.stderr)
        return EXIT_RUN_FAILED


def silence_stdout() -> None:
    """Point standard output at the null device after a broken pipe.

    Python flushes ``sys.stdout`` again at exit, and that flush into the closed pipe
    would print another BrokenPipeError. The Python documentation's advice on
    SIGPIPE is this redirection.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _masked(message: str, argv: Sequence[str] | None) -> str:
    """Mask configured secrets in an error message, whatever went wrong before."""
    from veerunbook.config import load_config
    from veerunbook.redact import Redactor

    words = list(sys.argv[1:] if argv is None else argv)
    config_path = None
    for index, word in enumerate(words):
        if word == "--config" and index + 1 < len(words):
            config_path = words[index + 1]
        elif word.startswith("--config="):
            config_path = word.partition("=")[2]
    try:
        redactor = load_config(config_path).redactor()
    except VeerunbookError:
        redactor = Redactor.from_environment(["VEEFORE_ADMIN_TOKEN", "DATABASE_URL"])
    return redactor.mask(message)


if __name__ == "__main__":
    raise SystemExit(main())
