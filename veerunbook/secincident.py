"""The security-incident procedure's steps: read the audit, propose and make blocks.

Each method of ``SecurityIncident`` is one step of the runbook's response to a
security incident. The reading steps journal checks; the changing steps go through
``veerunbook.actions.perform`` under the run's ``Guard``, so they change the target
only in a confirmed run. A target that responds to no request is recorded once as an
``error`` check, and every later reading step records a ``skip`` with the same
reason. No step raises for a dead, slow or lying target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from veerunbook.actions import ActionResult, Guard, actions_frame, perform
from veerunbook.blocklist import parse_networks
from veerunbook.metrics_sampling import unreachable_line
from veerunbook.redact import mask_url
from veerunbook.secincident_audit import Audit, read_audit
from veerunbook.secincident_block import (
    block_action,
    block_reason,
    no_rotation_command,
    own_networks,
    rotate_keys_action,
)
from veerunbook.secincident_checks import (
    breach_events,
    check_audit_command,
    check_breaches,
    check_bursts,
    check_high_events,
    check_window,
    high_severity,
)
from veerunbook.secincident_plan import (
    Proposal,
    diagnosis,
    propose,
    recovery_options,
    rotation_text,
    select,
)
from veerunbook.secincident_tables import (
    breach_row,
    checks_table,
    command_row,
    login_rows,
    outline,
    source_rows,
    tidy,
)
from veerunbook.session import Session
from veerunbook.shell import CommandResult, configured_command, run_command
from veerunbook.text import counted
from veerunbook.triage_tables import Nothing
from veerunbook.triage_tables import frame as raw_frame

if TYPE_CHECKING:
    import pandas as pd

# Events requested from the audit: its maximum, so that bursts are counted whole.
AUDIT_LIMIT = 1000
# Events requested at the reads that list only the high-severity ones.
HIGH_LIMIT = 100
HIGH_QUERY = f"severity=high&limit={HIGH_LIMIT}"
# Proposals journaled with their evidence, strongest first; the note counts them all.
PROPOSALS_JOURNALED = 50


@dataclass
class SecurityIncident:
    """State of one security-incident run, filled in step by step."""

    session: Session
    guard: Guard
    unreachable: str | None = None
    problem: str | None = None
    first: Audit | None = None
    latest: Audit | None = None  # the high-severity read after the window
    audit: Audit | None = None
    command: CommandResult | None = None
    proposals: list[Proposal] = field(default_factory=list)
    left_out: int = 0
    results: list[ActionResult] = field(default_factory=list)
    rotation: ActionResult | None = None
    options: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, session: Session, confirm: str) -> SecurityIncident:
        """Begin the steps of ``session``'s run; ``confirm`` is its parameter."""
        return cls(session, Guard.for_session(session, confirm))

    # Step 2: high-severity events.
    def read_high_severity(self) -> pd.DataFrame | Nothing:
        """Read the audit's high-severity events, as the runbook's first check.

        The check is journaled by ``watch`` on the read after the window, because
        an attack may begin while the window runs.
        """
        name = "security audit (high severity)"
        self.first = self._read(name, HIGH_QUERY, HIGH_LIMIT)
        if self.first is None:
            return Nothing(self.unreachable or self.problem or "no audit")
        events = high_severity(self.first)
        print(
            f"{counted(len(events), 'high-severity event')} at the start; the check "
            "is made on the audit read again after the watch window"
        )
        rows = [breach_row(event) for event in events]
        return frame(rows, "no high-severity events in the audit")

    # Step 3: the rate limiter over the window.
    def watch(
        self, window_seconds: float, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Wait ``window_seconds``, read the whole audit and check the limiter."""
        if (skipped := self._skip("rate limiting")) is not None:
            return skipped
        _wait(window_seconds, progress)
        name = "security audit (high severity, after the window)"
        self.latest = self._read(name, HIGH_QUERY, HIGH_LIMIT)
        assert self.first is not None  # else _skip returned above
        check_high_events(self.session.run, self.latest or self.first, self.first)
        if self.latest is None:
            return Nothing(self.unreachable or self.problem or "no audit")
        query = f"severity=low&limit={AUDIT_LIMIT}"
        self.audit = self._read("security audit (every event)", query, AUDIT_LIMIT)
        if self.audit is None:
            return Nothing(self.unreachable or self.problem or "no audit")
        for note in self.audit.notes:
            print(f"note: {note}")
        if self.audit.truncated:
            print(f"note: the audit returned {AUDIT_LIMIT} events, its maximum")
        return frame(check_window(self.session.run, self.audit, self.first))

    # Step 4: failed logins per source address.
    def failed_logins(self) -> pd.DataFrame | Nothing:
        """Tabulate failed logins per address and check for bursts."""
        if (skipped := self._skip("failed-login bursts", needs_audit=True)) is not None:
            return skipped
        assert self.audit is not None
        check_bursts(self.session.run, self.audit)
        return frame(login_rows(self.audit), "no failed logins in the audit")

    # Step 5: top source addresses.
    def top_sources(self, count: int = 10) -> pd.DataFrame | Nothing:
        """Tabulate the addresses with the most audit events."""
        if self.audit is None:
            return Nothing(self.unreachable or self.problem or "the audit is unread")
        return frame(source_rows(self.audit, count), "no event names an address")

    # Step 6: privilege escalation, data exfiltration, compromised credentials.
    def breach_signs(self) -> pd.DataFrame | Nothing:
        """List breach events and check escalation, exfiltration and credentials."""
        if (skipped := self._skip("breach signs", needs_audit=True)) is not None:
            return skipped
        events = breach_events(self.first, self.latest, self.audit)
        check_breaches(self.session.run, events, self.signs())
        return frame([breach_row(event) for event in events], "no breach events")

    def signs(self) -> list[str]:
        """Return the signs of compromised credentials in the audit."""
        return self.audit.compromised() if self.audit is not None else []

    # Step 7: the configured security audit command.
    def run_security_audit(self, timeout_s: float) -> pd.DataFrame | Nothing:
        """Run the target's ``security_audit`` command, bounded by ``timeout_s``."""
        template = configured_command(self.session, "security_audit")
        if template is not None:
            self.command = run_command(
                template, timeout_s=timeout_s, redactor=self.session.redactor
            )
        check_audit_command(self.session.run, self.command)
        if self.command is None:
            return Nothing("the target configures no security_audit command")
        print(outline(self.command.stdout) or "(no output)")
        if self.command.stderr.strip():
            print("stderr:", self.command.stderr.strip().splitlines()[-1])
        return frame([command_row(self.command)])

    # Step 8: addresses to block.
    def propose_blocks(
        self, block: str, force: bool, max_blocks: int
    ) -> pd.DataFrame | Nothing:
        """Choose the addresses to block, with the evidence and validation of each."""
        target = self.session.target
        self.proposals = propose(
            self.audit,
            block,
            allow_list=parse_networks(target.allow_list),
            own=own_networks(target),
            force=force,
        )
        selected, self.left_out = select(self.proposals, max_blocks)
        rows = [proposal.row() for proposal in self.proposals]
        self.session.run.note(
            f"{counted(len(self.proposals), 'address', 'addresses')} proposed "
            "for a block",
            proposed_blocks=rows[:PROPOSALS_JOURNALED],
            left_out=self.left_out,
        )
        if self.left_out:
            print(
                f"{self.left_out} more addresses exceed max_blocks={max_blocks}; "
                "run again after this run to block them"
            )
        self.proposals = selected
        return frame(rows, "no address to block: no evidence against any address")

    # Step 9: the blocks.
    def block(self, timeout_s: float) -> pd.DataFrame | Nothing:
        """Block each proposed address through a guarded action."""
        for proposal in self.proposals:
            action = block_action(
                self.session, proposal.check, proposal.because(), timeout_s
            )
            self.results.append(perform(self.session, self.guard, action))
        if not self.results:
            return Nothing("nothing to block")
        if any(result.mode == "executed" for result in self.results):
            undo = (
                "to undo: each block's reason is "
                f"'{block_reason(self.session.run.incident_id)}'; remove those "
                "entries with the tool that holds the target's block list"
            )
            self.session.run.note(undo, undo=undo)
            print(undo)
        return tidy(actions_frame(self.results))

    # Step 10: key rotation.
    def rotate_keys(self, rotate: bool, timeout_s: float) -> pd.DataFrame | Nothing:
        """Rotate the keys when credentials look compromised and ``rotate`` is set."""
        signs = self.signs()
        if not signs:
            return Nothing("no sign of compromised credentials: no rotation proposed")
        if not rotate:
            proposed = (
                f"key rotation proposed, as the runbook asks when credentials look "
                f"compromised ({signs[0]})"
            )
            if configured_command(self.session, "rotate_keys") is None:
                return Nothing(f"{proposed}, but {no_rotation_command(self.session)}")
            return Nothing(
                f"{proposed}; run with -p rotate_keys True to carry it out with "
                "the target's rotate_keys command"
            )
        action = rotate_keys_action(self.session, signs, timeout_s)
        self.rotation = perform(self.session, self.guard, action)
        return tidy(actions_frame([self.rotation]))

    # Step 11: the plot.
    def plot(self) -> Any:
        """Draw failed logins and blocked IPs in the preceding minute."""
        from veerunbook.secincident_plot import plot_activity

        return plot_activity(self.audit)

    # Step 12: recovery options.
    def recovery_options(self) -> pd.DataFrame:
        """Rank the runbook's recovery actions by the evidence."""
        import pandas as pd

        breaches = len(breach_events(self.first, self.latest, self.audit))
        self.options = recovery_options(
            self.audit,
            self.proposals,
            self.signs(),
            breaches,
            self.results,
            self.rotation,
        )
        ranked = [option for option in self.options if option["rank"]]
        text = "recovery options ranked: " + ", ".join(
            f"{option['rank']}. {option['action']}" for option in ranked
        )
        if not ranked:
            text = "no recovery option ranked: no finding supports any"
        for option in self.options:
            if str(option["evidence"]).startswith("already in place"):
                text += f"; {option['action']}: {option['evidence']}"
        self.session.run.note(text, recovery_options=self.options)
        print(text)
        return tidy(pd.DataFrame(self.options))

    # Step 13: diagnosis, actions and summary.
    def diagnose(self) -> str:
        """Return the diagnosis in one line and journal it."""
        breaches = breach_events(self.first, self.latest, self.audit)
        problem = self.unreachable or self.problem
        signs = self.signs()
        text = diagnosis(self.audit, self.results, signs, breaches, problem)
        if self.rotation is not None:
            text += f"; {rotation_text(self.rotation)}"
        elif signs and configured_command(self.session, "rotate_keys") is None:
            text += f"; {no_rotation_command(self.session)}"
        self.session.run.note(f"diagnosis: {text}", diagnosis=text)
        return text

    def actions(self) -> pd.DataFrame:
        """Return every action of the run: name, mode, detail, verified."""
        results = [*self.results, *([self.rotation] if self.rotation else [])]
        return tidy(actions_frame(results))

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        return tidy(checks_table(self.session.run.checks_frame()))

    def _read(self, name: str, query: str, limit: int) -> Audit | None:
        """Read the audit; on failure record why and return None."""
        result = self.session.probe(
            "audit_security", name=name, expect="json", query=query
        )
        if result.status == "error":
            url = mask_url(self.session.target.base_url or "")
            reason = result.error_kind or "no response"
            self.unreachable = unreachable_line(reason, self.session.redactor.mask(url))
            return None
        if result.status != "pass":
            self.problem = (
                f"the security audit could not be read ({result.summary()}); "
                "follow the runbook's Security Incidents steps by hand"
            )
            return None
        return read_audit(result.json, datetime.now(UTC), limit)

    def _skip(self, name: str, needs_audit: bool = False) -> Nothing | None:
        """Record a skip for a step whose input is missing, with the reason."""
        missing = self.unreachable or self.problem
        if missing is None and needs_audit and self.audit is None:
            missing = "the audit was not read"
        if missing is None:
            return None
        self.session.run.check(name, "skip", summary=missing)
        return Nothing(missing)


def frame(
    rows: list[dict[str, Any]], empty: str = "none found"
) -> pd.DataFrame | Nothing:
    """Return the rows as a tidied DataFrame, or ``Nothing(empty)`` when none."""
    table = raw_frame(rows, empty)
    return table if isinstance(table, Nothing) else tidy(table)


def _wait(seconds: float, progress: Callable[[str], None] | None) -> None:
    """Sleep ``seconds`` in steps, reporting the time left about every 5 seconds."""
    deadline = time.monotonic() + max(0.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        if progress is not None:
            progress(f"watching the audit: {left:.0f} s left")
        time.sleep(min(5.0, left))
