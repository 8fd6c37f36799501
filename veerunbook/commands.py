"""The subcommands behind ``veerunbook``; ``cli`` parses, this module acts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from veerunbook.config import Config, load_config
from veerunbook.errors import UsageError
from veerunbook.journal import validate_incident_id
from veerunbook.redact import RedactingFilter, Redactor
from veerunbook.run_actions import action_lines
from veerunbook.run_summary import (
    class_text,
    diagnosis_lines,
    next_lines,
    problem_lines,
    reason_lines,
    run_events,
    triage_completed,
)

if TYPE_CHECKING:
    from veerunbook.alert_check import CheckResult
    from veerunbook.incident import Incident
    from veerunbook.runner import RunOutcome

_log = logging.getLogger("veerunbook")


def dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand named in ``args`` and return its exit code.

    The log handler lives only for this call: it writes to the ``sys.stderr`` of
    the moment, which may be closed once the call returns (pytest swaps it per test).
    """
    config = load_config(args.config)
    redactor = config.redactor()
    handlers: dict[str, Callable[[argparse.Namespace, Config, Redactor], int]] = {
        "list": _list,
        "show": _show,
        "run": _run,
        "verify": _verify,
        "timeline": _timeline,
        "ack": _ack,
        "escalate": _escalate,
        "resolve": _resolve,
        "postmortem": _postmortem,
        "drill": _drill,
        "simulate": _simulate,
        "alerts": _alerts,
        "receive": _receive,
    }
    with _log_to_stderr(redactor, args.verbose):
        return handlers[args.command](args, config, redactor)


@contextmanager
def _log_to_stderr(redactor: Redactor, verbose: bool) -> Iterator[None]:
    """Log veerunbook's own lines to stderr with secrets masked, for one call.

    papermill's lines go to the run log. On exit the ``veerunbook`` logger gets its
    handlers, level and propagation back.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    saved = (list(_log.handlers), _log.level, _log.propagate)
    _log.handlers = [handler]
    _log.propagate = False
    _log.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:
        _log.handlers, level, _log.propagate = saved
        _log.setLevel(level)
        handler.close()


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
    print(f"{procedure.name}: {procedure.purpose}")
    print()
    rows = [("name", "type", "default", "help")]
    rows += [(s.name, str(s.type), repr(s.default), s.help) for s in specs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, kind, default, text in rows:
        print(
            f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {text}"
        )
    _show_formats([spec.format for spec in specs if spec.format])
    return 0


def _show_formats(names: list[str]) -> None:
    """Print what each value format named in the help texts accepts."""
    from veerunbook.paramformats import FORMATS

    if not names:
        return
    unique = list(dict.fromkeys(names))
    width = max(len(name) for name in unique) + 2
    print()
    print("formats (an empty value always passes):")
    for name in unique:
        print(f"  {{{name}}}".ljust(width + 4) + FORMATS[name].description)


def _run(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.incident import check_title
    from veerunbook.params import (
        check_confirmation,
        read_parameters,
        resolve_parameters,
    )
    from veerunbook.procedures import find_procedure
    from veerunbook.runner import run_procedure

    check_jobs(args.jobs)
    if len(args.procedure) > 1:
        from veerunbook.run_group import run_group_command

        return run_group_command(args, config, redactor)

    # Validate everything before anything is written.
    procedure = find_procedure(args.procedure[0])
    target = args.target or config.default_target
    config.resolve_target(target)
    specs = read_parameters(json.loads(procedure.path.read_text(encoding="utf-8")))
    cli_pairs = [(name, value) for name, value in args.parameter]
    for path in args.parameters_file:
        if not Path(path).is_file():
            raise UsageError(f"parameters file {str(path)!r} not found")
    params = resolve_parameters(specs, cli_pairs, list(args.parameters_file))
    if isinstance(params.get("title"), str):
        check_title(params["title"])
    check_seconds("--timeout", args.timeout)
    check_seconds("--cell-timeout", args.cell_timeout)

    if args.incident:
        validate_incident_id(args.incident)
    check_confirmation(params, args.incident)
    archive = checked_archive(args.archive)
    existed = bool(args.incident) and (archive / args.incident).is_dir()

    # The kernel loads the configuration again; it must find the same file.
    if config.path:
        os.environ["VEERUNBOOK_CONFIG"] = str(Path(config.path).absolute())
    outcome = run_procedure(
        procedure.name,
        incident=args.incident,
        target=target,
        params=params,
        archive=archive,
        redactor=redactor,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        html=args.html,
    )
    print(outcome_text(outcome, existed, redactor))
    return outcome.exit_code


def outcome_text(outcome: RunOutcome, existed: bool, redactor: Redactor) -> str:
    """Describe what the run found, masked: class, problems, diagnosis, actions,
    next procedures, files."""
    from veerunbook.incident import load_incident

    folder = outcome.notebook.parent.parent
    events = run_events(folder, outcome.run_id)
    severity = class_text(
        load_incident(folder).severity,
        procedure=outcome.procedure,
        status=outcome.status,
        triage_done=triage_completed(folder),
        incident=outcome.incident,
    )
    state = "existing incident" if existed else "new incident"
    lines = [
        f"incident:  {outcome.incident} ({state})",
        f"run:       {outcome.run_id} ({outcome.procedure}) {outcome.status}"
        f" in {outcome.duration_s:.1f} s",
        f"class:     {severity}",
        f"checks:    {counts_text(outcome.counts)}",
    ]
    lines += reason_lines(events)
    lines += problem_lines(events)
    lines += diagnosis_lines(events)
    lines += action_lines(events, outcome.incident, archive=folder.parent)
    lines += next_lines(events, outcome.incident)
    if outcome.reason:
        cell = outcome.failing_cell
        where = f" (cell {cell})" if cell is not None else ""
        lines.append(f"reason:    {outcome.reason}{where}")
    lines.append(f"notebook:  {outcome.notebook}")
    return redactor.mask("\n".join(lines))


# One week: a limit beyond it is a typo, and setitimer overflows on huge values.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0


def check_seconds(option: str, value: float | None) -> None:
    """Raise UsageError unless ``value`` is None or a sensible number of seconds."""
    if value is None:
        return
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise UsageError(
            f"{option} must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:.0f}, not {value!r}"
        )


def checked_archive(explicit: str | None) -> Path:
    """Create the archive root if needed; raise UsageError if it cannot be used."""
    from veerunbook.incident import archive_root

    root = archive_root(explicit)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UsageError(
            f"archive {str(root)!r} cannot be used ({reason}); choose another with "
            "--archive or VEERUNBOOK_ARCHIVE"
        ) from None
    return root


def check_jobs(jobs: int | None) -> None:
    """Raise UsageError unless ``--jobs`` is unset or at least 1."""
    if jobs is not None and jobs < 1:
        raise UsageError(
            f"--jobs must be 1 or more runs at a time, not {jobs}; leave it out "
            "to run every named procedure at once"
        )


def counts_text(counts: dict[str, int]) -> str:
    """Return check counts by status, worst first, such as ``1 fail, 17 pass``."""
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


def _timeline(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Print the timeline, or write it and journal the file when inside the
    incident."""
    from veerunbook.incident import archive_root, incident_dir
    from veerunbook.reports import default_report_path, write_report
    from veerunbook.timeline import build_timeline
    from veerunbook.timeline_render import render_csv, render_html, render_markdown

    folder = incident_dir(archive_root(args.archive), args.incident)
    failures = _timeline_notebooks(args, folder, redactor)
    timeline = build_timeline(folder)
    output = args.output
    if output is None and args.format == "html":
        output = default_report_path(folder, "timeline.html")
    if args.format == "html":
        text = render_html(timeline, folder, output=output)
    else:
        text = (
            render_csv(timeline) if args.format == "csv" else render_markdown(timeline)
        )
    if output is None:
        sys.stdout.write(text)
        return 0
    data = text.encode("utf-8")
    path = write_report(
        folder, output, data, report="timeline", fmt=args.format, redactor=redactor
    )
    print(path)
    return 1 if failures else 0


def _timeline_notebooks(
    args: argparse.Namespace, folder: Path, redactor: Redactor
) -> int:
    """Write the missing HTML copies of run notebooks for ``--notebooks`` and return
    how many failed to convert."""
    from veerunbook.incident import load_incident
    from veerunbook.report_html import print_pages, render_run_notebooks

    if not args.notebooks:
        return 0
    if args.format != "html":
        raise UsageError("--notebooks needs --format html, the page that links them")
    load_incident(folder)  # an unknown incident is a usage error, as without it
    return print_pages(render_run_notebooks(folder, redactor), sys.stdout, sys.stderr)


def _ack(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Acknowledge an incident and print the delay against its response target."""
    from veerunbook.incident import archive_root, incident_dir, open_or_update

    archive = archive_root(args.archive)
    _existing_incident(archive, args.incident)
    by = args.by if args.by is not None else _os_user()
    open_or_update(
        archive, args.incident, acknowledge=True, acknowledged_by=by, redactor=redactor
    )
    print(redactor.mask(_ack_line(incident_dir(archive, args.incident), by)))
    return 0


def _ack_line(folder: Path, by: str) -> str:
    from veerunbook.compliance import assess, elapsed_text, time_text
    from veerunbook.incident import check_person
    from veerunbook.timeline import build_timeline

    timeline = build_timeline(folder)
    ack = assess(timeline).acknowledgement
    line = f"{timeline.incident.id} acknowledged by {check_person(by)}"
    if ack.acknowledged_by != check_person(by):
        line += f"; first acknowledged by {ack.acknowledged_by}"
    line += f" at {time_text(ack.acknowledged_at)}"
    if ack.delay_s is not None:
        line += f", {elapsed_text(ack.delay_s)} after it opened"
    if ack.automatic_at is not None:
        line += f" (automatic acknowledgement at {time_text(ack.automatic_at)})"
    if ack.target_minutes is not None:
        line += f"; {ack.target_minutes} min target: {ack.status}"
    return line


def _resolve(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Resolve an incident and print when, and how long after it opened."""
    from veerunbook.compliance import elapsed_between, time_text
    from veerunbook.incident import archive_root, check_person, open_or_update

    archive = archive_root(args.archive)
    before = _existing_incident(archive, args.incident).resolved_at
    by = check_person(args.by if args.by is not None else _os_user())
    incident = open_or_update(
        archive, args.incident, resolve=True, resolved_by=by, redactor=redactor
    )
    resolved = incident.resolved_at or ""
    head = "was already resolved" if before else "resolved"
    print(
        redactor.mask(
            f"{incident.id} {head} at {time_text(resolved)}, "
            f"{elapsed_between(incident.opened_at, resolved)} after it opened "
            f"(recorded by {by})"
        )
    )
    return 0


def _escalate(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Record an escalation and print the contact that the configuration names."""
    from veerunbook.compliance import time_text
    from veerunbook.incident import archive_root, escalate

    archive = archive_root(args.archive)
    _existing_incident(archive, args.incident)
    by = args.by if args.by is not None else _os_user()
    event = escalate(archive, args.incident, args.to, by=by, redactor=redactor)
    contact = config.contacts.get(args.to) or f"[{args.to} not configured]"
    print(
        redactor.mask(
            f"{args.incident} escalated to {args.to} ({contact}) by "
            f"{event['escalated_by']} at {time_text(event['time'])}"
        )
    )
    return 0


def _postmortem(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Write the post-mortem draft and print its path."""
    from veerunbook.incident import archive_root
    from veerunbook.postmortem import write_postmortem

    archive = archive_root(args.archive)
    _existing_incident(archive, args.incident)
    path = write_postmortem(
        archive,
        args.incident,
        output=args.output,
        redactor=redactor,
        force=args.force,
    )
    print(path)
    return 0


def _existing_incident(archive: Path, incident: str) -> Incident:
    """Load the incident, or raise UsageError so that nothing is created."""
    from veerunbook.incident import incident_dir, load_incident

    return load_incident(incident_dir(archive, incident))


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (containers)
        return "unknown"


def _drill(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.drill import describe, run_drill

    if args.list:
        print("\n".join(describe()))
        return 0
    if not args.scenario:
        raise UsageError(
            "name a scenario, e.g. 'veerunbook drill db-outage', or --list"
        )
    from veerunbook.simulator import SCENARIOS

    if args.scenario not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        raise UsageError(f"unknown scenario {args.scenario!r}; choose one of {names}")
    if args.incident:
        validate_incident_id(args.incident)
    if not 1 <= args.window <= 3600:
        raise UsageError(f"--window must be 1 to 3600 seconds, not {args.window!r}")
    archive = checked_archive(args.archive)
    report = run_drill(
        args.scenario,
        archive=archive,
        redactor=redactor,
        incident=args.incident,
        window_seconds=args.window,
        keep_running=args.keep_running,
        on_report=lambda done: print(
            redactor.mask("\n".join(done.lines())), flush=True
        ),
    )
    return report.exit_code


def _simulate(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.simulator import SCENARIOS, serve_forever

    if args.scenario not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        raise UsageError(f"unknown scenario {args.scenario!r}; choose one of {names}")
    try:
        serve_forever(args.scenario, args.host, args.port, data_dir=args.data_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); "
            "choose another port with --port"
        ) from None
    return 0


def _alerts(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    if args.alerts_command == "check":
        return _alerts_check(args, config, redactor)
    from veerunbook.alert_export import export_yaml, rules_document
    from veerunbook.journal import write_atomic

    job = args.job
    if job is not None and not job.strip():
        raise UsageError(
            f"invalid --job {job!r}: give the Prometheus job name of the target"
        )
    text = export_yaml(job=job)
    count = len(rules_document(job=job)["groups"][0]["rules"])
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        write_atomic(args.output, text.encode("utf-8"))
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UsageError(
            f"failed to write the rule file {str(args.output)!r} ({reason}). "
            "Choose a writable path with -o"
        ) from None
    _log.info("wrote %d alerting rules to %s", count, args.output)
    return 0


def _receive(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    from veerunbook.receive_cli import run_receiver

    return run_receiver(args, config, redactor)


def _alerts_check(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """Evaluate the alert rules once; print one line per rule; 1 while any fires.

    This quick look never stores rule states, so the scheduled check that follows
    still journals and sends every transition. A failing sample store exits 3.
    """
    from veerunbook.alert_check import check_alerts, check_option
    from veerunbook.errors import StoreError
    from veerunbook.target import connect

    for option in ("sample_seconds", "interval_seconds"):
        check_option(option, getattr(args, option))
    archive = checked_archive(args.archive)
    try:
        with connect(args.target or None, config) as target:
            result = check_alerts(
                target,
                archive,
                interval_seconds=args.interval_seconds,
                sample_seconds=args.sample_seconds,
                redactor=redactor,
                store=not args.no_store,
                record_states=False,
            )
    except StoreError as error:
        print(f"veerunbook: error: {redactor.mask(str(error))}", file=sys.stderr)
        return 3
    if result.skipped:
        lines, code = [f"skipped: {result.skipped}"], 1
    else:
        lines = _alert_lines(result)
        code = 1 if result.firing or result.scrape_error else 0
    try:
        print(redactor.mask("\n".join(lines)))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (such as `head -1`) has closed the pipe: keep the exit code.
        from veerunbook.cli import silence_stdout

        silence_stdout()
    return code


def _alert_lines(result: CheckResult) -> list[str]:
    """Return one line per rule: state, tier, name, value, condition and since."""
    from veerunbook.alert_units import clock_text, condition_text, rule_quantity

    lines = []
    if result.scrape_error:
        lines.append(f"scrape failed: {result.scrape_error}")
    for status in result.rules:
        rule = status.rule
        line = (
            f"{status.state.value:<8} {rule.tier.value} {rule.name:<30}"
            f" {rule_quantity(rule, status.value)} ({condition_text(rule)})"
        )
        if status.since is not None:
            line += f" since {clock_text(status.since)}"
        lines.append(line)
    return lines
