"""The lines that ``veerunbook run`` and drills print about a run's guarded actions.

A changing procedure journals an ``action`` event for the intent and one for the end
of each guarded action (see ``veerunbook.actions``). After a dry run the summary gives
the whole command that carries the actions out.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from veerunbook.actions import CONFIRM_PARAM, confirm_flags
from veerunbook.incident import archive_root
from veerunbook.run_summary import LABEL_WIDTH, Event

# Width of a summary line. A longer list of action names ends in "and N more".
LINE_WIDTH = 88

# Up to this many actions get a line each, and more are grouped by mode.
MAX_ACTION_LINES = 4

# The end modes of a guarded action in the order the summary lists them.
END_MODES = ("executed", "failed", "refused", "already-done", "dry-run")


def action_lines(
    events: list[Event], incident: str, indent: str = "", archive: Path | None = None
) -> list[str]:
    """Return the run's guarded actions and, after a dry run, the confirm command.

    Up to ``MAX_ACTION_LINES`` actions get a line each ("executed block-ip
    198.51.100.11 (verified)"). More are grouped into one line per mode with a count
    and without the verification, because ``executed`` means verified already.
    An action whose intent has no recorded end (the kernel died during it) is listed
    as ``unfinished``. A note with an ``undo`` field, journaled after a change, adds
    an ``undo:`` line. Returns no lines for a run without actions. ``archive`` is
    the archive root the run recorded into, for the confirm command.
    """
    ends = _action_ends(events)
    ended = {str(event.get("name")) for event in ends}
    unfinished = [
        event
        for event in events
        if event["event"] == "action"
        and event.get("mode") == "intent"
        and str(event.get("name")) not in ended
    ]
    if not ends and not unfinished:
        return []
    entries = [(str(event.get("mode")), str(event.get("name"))) for event in ends]
    entries += [("unfinished", str(event.get("name"))) for event in unfinished]

    label = f"{indent}{'actions:':<{LABEL_WIDTH}}"
    continued = indent + " " * LABEL_WIDTH
    if len(entries) <= MAX_ACTION_LINES:
        texts = [f"{event.get('mode')} {_marked_name(event)}" for event in ends]
        texts += [
            f"unfinished {name}" for mode, name in entries if mode == "unfinished"
        ]
    else:
        texts = _grouped(entries, LINE_WIDTH - len(label))
    lines = [(label if i == 0 else continued) + text for i, text in enumerate(texts)]
    if any(event.get("mode") == "dry-run" for event in ends):
        command = confirm_command(events, incident, archive)
        lines.append(f"{indent}{'confirm:':<{LABEL_WIDTH}}{command}")
    lines += [
        f"{indent}{'undo:':<{LABEL_WIDTH}}{event['undo']}"
        for event in events
        if event["event"] == "note" and isinstance(event.get("undo"), str)
    ]
    return lines


def confirm_command(
    events: list[Event], incident: str, archive: Path | None = None
) -> str:
    """Return the ``veerunbook run`` command that repeats the run confirmed.

    It names the run's procedure and target and repeats every parameter the run was
    given (read from its ``run.started`` event), except ``confirm``. It names
    ``archive`` unless that is the default root, so the confirmed run records into
    the same incident folder.
    """
    started = [e for e in events if e["event"] == "run.started"]
    start = started[-1] if started else {}
    words = ["veerunbook", "run", str(start.get("procedure", "PROCEDURE"))]
    if start.get("target"):
        words += ["--target", str(start["target"])]
    if archive is not None and archive.absolute() != archive_root(None):
        words += ["--archive", str(archive)]
    command = shlex.join(words) + f" {confirm_flags(shlex.quote(incident))}"
    parameters = start.get("parameters")
    if not isinstance(parameters, dict):
        return command
    for name, value in parameters.items():
        if name != CONFIRM_PARAM:
            command += " " + shlex.join(["-p", str(name), _parameter_text(value)])
    return command


def _action_ends(events: list[Event]) -> list[Event]:
    return [
        event
        for event in events
        if event["event"] == "action" and event.get("mode") not in (None, "intent")
    ]


def _marked_name(event: Event) -> str:
    """Return the action's name, marked with the verification after a change."""
    name = str(event.get("name"))
    if event.get("mode") not in ("executed", "failed"):
        return name
    return f"{name} (verified)" if event.get("verified") else f"{name} (not verified)"


def _grouped(entries: list[tuple[str, str]], width: int) -> list[str]:
    """Return one text per mode: "dry-run 14: a, b and 12 more", within ``width``."""
    modes = [*END_MODES, "unfinished"]
    modes += sorted({mode for mode, _ in entries} - set(modes))
    texts = []
    for mode in modes:
        names = [name for found, name in entries if found == mode]
        if not names:
            continue
        head = f"{mode} {len(names)}: "
        listed = [names[0]]
        for name in names[1:]:
            rest = len(names) - len(listed) - 1
            more = f" and {rest} more" if rest else ""
            if len(head + ", ".join([*listed, name]) + more) > width:
                break
            listed.append(name)
        hidden = len(names) - len(listed)
        texts.append(
            head + ", ".join(listed) + (f" and {hidden} more" if hidden else "")
        )
    return texts


def _parameter_text(value: Any) -> str:
    """Return a parameter value as ``-p`` reads it back for its declared type.

    Lists and mappings are written as JSON, which ``-p`` parses as YAML flow style.
    """
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
