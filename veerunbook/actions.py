"""Guarded actions: the one way a procedure changes its target.

An ``Action`` bundles what a change needs: its intent in one sentence, its
parameters, how to read the state it changes, the change itself, how to verify it,
the preconditions it needs and how to tell it is already done. ``perform`` runs it
under a ``Guard`` in this order and journals every step as an ``action`` event:

1. the intent (mode ``intent``), before anything else, so a kernel that dies during
   the change still leaves the intent on record;
2. the preconditions in order; the first that fails ends it as ``refused``;
3. the state before; when ``already_done`` finds the change made, it ends as
   ``already-done`` and nothing runs;
4. an earlier attempt of the same action in this incident that never recorded its
   end (see ``veerunbook.action_attempts``): while it may still be running, it ends
   as ``refused``; after that, every end detail names it;
5. without confirmation it ends as ``dry-run``, saying what it would do and how to
   confirm;
6. the change, the state after and the verification: ``executed`` when the change
   and the verification succeed, else ``failed``.

A run is confirmed only when its ``confirm`` parameter equals its incident id
exactly, so a change always names the incident it belongs to. Parameters, states and
details pass through the session's redactor before they are journaled or returned.
``perform`` returns a result for every failure of the target or of the action's
callables. It raises only when the journal cannot be written, and passes on
exceptions that are not ``Exception`` subclasses, such as KeyboardInterrupt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from veerunbook.action_attempts import (
    DEFAULT_TIMEOUT_S,
    running_refusal,
    unfinished_attempts,
    unfinished_note,
)
from veerunbook.params import CONFIRM_PARAM, looks_secret
from veerunbook.redact import MASK, Redactor

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.session import Session

__all__ = [
    "CONFIRM_PARAM",
    "Action",
    "ActionResult",
    "Guard",
    "Outcome",
    "Precondition",
    "Verification",
    "actions_frame",
    "confirm_flags",
    "perform",
]

_log = logging.getLogger("veerunbook.actions")


def confirm_flags(incident_id: str) -> str:
    """Return the ``veerunbook run`` options that confirm a run of ``incident_id``.

    ``-p confirm`` alone is rejected without ``--incident``, so both are given.
    """
    return f"--incident {incident_id} -p {CONFIRM_PARAM} {incident_id}"


@dataclass(frozen=True)
class Guard:
    """Whether this run may change the target: confirmed only when the run's
    ``confirm`` parameter equals the run's incident id exactly."""

    incident_id: str
    confirmed: bool

    @classmethod
    def for_session(cls, session: Session, confirm: str) -> Guard:
        """Build the guard of ``session``'s run from its ``confirm`` parameter."""
        incident = session.run.incident_id
        confirmed = bool(confirm) and confirm == incident
        if confirm and not confirmed:
            _log.warning(
                "confirm %r differs from incident %s, so nothing will be changed",
                session.redactor.mask(confirm),
                incident,
            )
        return cls(incident, confirmed)

    def banner(self) -> str:
        """Return the line a procedure shows first: dry-run or confirmed."""
        if self.confirmed:
            return (
                f"CONFIRMED for {self.incident_id}: the actions below change the "
                "target when their preconditions hold."
            )
        return (
            "DRY-RUN: nothing will be changed; to carry out the actions run with "
            f"{confirm_flags(self.incident_id)}"
        )


@dataclass(frozen=True)
class Precondition:
    """One condition an action needs before it may run."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Outcome:
    """The report of the change: success, a sentence and any data it returned."""

    ok: bool
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verification:
    """Whether the state after the change is the intended one, and why."""

    ok: bool
    detail: str


State = Mapping[str, Any]


@dataclass
class Action:
    """A change of the target with everything ``perform`` needs to guard it.

    ``params`` are journaled masked. ``read_state`` returns the state the action
    changes, ``execute`` makes the change, and ``verify`` compares the state before
    and after with the outcome. ``already_done`` returns True when the state before
    shows the change made already, which makes a second run harmless.
    ``timeout_s`` is the longest the change may run, in seconds (None means
    ``DEFAULT_TIMEOUT_S``, 10 minutes). ``perform`` does not enforce it, but records it
    with the intent, so a later run knows how long an unfinished attempt may last.
    """

    name: str
    intent: str
    params: Mapping[str, Any]
    read_state: Callable[[], State]
    execute: Callable[[], Outcome]
    verify: Callable[[State, State, Outcome], Verification]
    preconditions: Sequence[Callable[[], Precondition]] = ()
    already_done: Callable[[State], bool] | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class ActionResult:
    """The end of one action, with the states and details masked.

    ``mode`` is ``dry-run``, ``refused``, ``already-done``, ``executed`` or
    ``failed``.
    """

    name: str
    mode: str
    detail: str
    before: State | None
    after: State | None
    verification: Verification | None

    def row(self) -> dict[str, Any]:
        """Return the result as a table row: name, mode, detail, verified."""
        verified = "-"
        if self.verification is not None:
            verified = "yes" if self.verification.ok else "no"
        return {
            "name": self.name,
            "mode": self.mode,
            "detail": self.detail,
            "verified": verified,
        }


def actions_frame(results: Sequence[ActionResult]) -> pd.DataFrame:
    """Return one table row per action: name, mode, detail, verified."""
    import pandas as pd  # imported here so that importing veerunbook stays fast

    columns = ["name", "mode", "detail", "verified"]
    return pd.DataFrame([result.row() for result in results], columns=columns)


def perform(session: Session, guard: Guard, action: Action) -> ActionResult:
    """Run ``action`` under ``guard`` and journal each step; see the module doc.

    A ``failed`` action is also journaled as a failing check, so the run ends with
    findings. An exception from a callable of the action becomes the detail of a
    ``refused`` or ``failed`` result. A KeyboardInterrupt during the change is
    journaled as ``failed`` and raised again.
    """
    step = _Step(session, action)

    # The intent goes on record before any callable of the action runs.
    intent = step.journal(
        "intent",
        intent=action.intent,
        params=_masked_params(action.params, session.redactor),
        confirmed=guard.confirmed,
        timeout_s=action.timeout_s or DEFAULT_TIMEOUT_S,
    )
    run = session.run
    attempts = unfinished_attempts(run.journal.path, intent, run.run_id)
    step.note = unfinished_note(attempts)
    refusal = step.first_failed_precondition()
    if refusal is not None:
        return step.end("refused", refusal)

    before, problem = step.read("before")
    if before is None:
        return step.end("refused", f"the state before could not be read: {problem}")
    if step.already_done(before):
        detail = "the target is in the intended state already; nothing was run"
        return step.end("already-done", detail, before=before)
    running = running_refusal(attempts, datetime.now(UTC))
    if running is not None:
        step.note = ""
        return step.end("refused", running, before=before)
    if not guard.confirmed:
        detail = (
            f"Nothing was changed. It would: {action.intent} To carry it out, run "
            f"with {confirm_flags(guard.incident_id)}"
        )
        return step.end("dry-run", detail, before=before)
    return step.change(before)


class _Step:
    """The journaling and exception handling of one ``perform`` call."""

    def __init__(self, session: Session, action: Action) -> None:
        self.session = session
        self.action = action
        self.redactor = session.redactor
        # A sentence about unfinished earlier attempts, added to the end's detail.
        self.note = ""

    def journal(self, mode: str, **fields: Any) -> dict[str, Any]:
        return self.session.run.action(self.action.name, mode, **fields)

    def first_failed_precondition(self) -> str | None:
        for check in self.action.preconditions:
            try:
                found = check()
            except Exception as exc:
                name = getattr(check, "__name__", "precondition")
                found = Precondition(name, False, self.error_text(exc))
            if not found.ok:
                return f"precondition {found.name!r} not met: {found.detail}"
        return None

    def read(self, when: str) -> tuple[State | None, str]:
        try:
            return dict(self.action.read_state()), ""
        except Exception as exc:
            _log.warning("%s: reading the state %s failed", self.action.name, when)
            return None, self.error_text(exc)

    def already_done(self, before: State) -> bool:
        if self.action.already_done is None:
            return False
        try:
            return bool(self.action.already_done(before))
        except Exception as exc:
            # Unknown counts as not done: the preconditions and the verification
            # still guard the change.
            reason = self.error_text(exc)
            _log.warning("%s: already_done failed: %s", self.action.name, reason)
            return False

    def change(self, before: State) -> ActionResult:
        action = self.action
        self.session.run.note(f"{action.name}: executing", action=action.name)
        try:
            outcome = action.execute()
        except Exception as exc:
            outcome = Outcome(False, self.error_text(exc))
        except KeyboardInterrupt:
            detail = "interrupted during the change; the state after is unknown"
            self.end("failed", detail, before=before)
            raise

        after, problem = self.read("after")
        if after is None:
            verification = Verification(False, f"state after unreadable: {problem}")
        else:
            verification = self.verify(before, after, outcome)
        mode = "executed" if outcome.ok and verification.ok else "failed"
        detail = f"{outcome.detail}; verification: {verification.detail}"
        return self.end(
            mode,
            detail,
            before=before,
            after=after,
            verification=verification,
            outcome=outcome,
        )

    def verify(self, before: State, after: State, outcome: Outcome) -> Verification:
        try:
            return self.action.verify(before, after, outcome)
        except Exception as exc:
            return Verification(False, f"verification failed: {self.error_text(exc)}")

    def end(
        self,
        mode: str,
        detail: str,
        *,
        before: State | None = None,
        after: State | None = None,
        verification: Verification | None = None,
        outcome: Outcome | None = None,
    ) -> ActionResult:
        mask = self.redactor.mask_obj
        if self.note:
            detail = f"{detail.rstrip('.')}. {self.note}"
        result = ActionResult(
            self.action.name,
            mode,
            self.redactor.mask(detail),
            None if before is None else mask(dict(before)),
            None if after is None else mask(dict(after)),
            None if verification is None else self.masked(verification),
        )
        fields: dict[str, Any] = {"detail": result.detail, "before": result.before}
        if mode in ("executed", "failed"):
            verified = result.verification is not None and result.verification.ok
            fields.update(after=result.after, verified=verified)
        if outcome is not None:
            fields["outcome"] = {"ok": outcome.ok, "data": mask(dict(outcome.data))}
        self.journal(mode, **fields)
        if mode == "failed":
            self.session.run.check(
                f"action {self.action.name}", "fail", summary=result.detail
            )
        _log.info("action %s ended %s: %s", self.action.name, mode, result.detail)
        return result

    def error_text(self, exc: BaseException) -> str:
        return self.redactor.mask(f"{type(exc).__name__}: {exc}")

    def masked(self, verification: Verification) -> Verification:
        return Verification(verification.ok, self.redactor.mask(verification.detail))


def _masked_params(params: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Mask the values of secret-looking names, then every known secret value."""
    masked = {
        str(name): MASK if looks_secret(str(name), value) else value
        for name, value in params.items()
    }
    return dict(redactor.mask_obj(masked))
