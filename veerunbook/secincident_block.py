"""The changes the security-incident procedure makes: blocks and key rotation.

Both are guarded actions (``veerunbook.actions``), so they run only in a confirmed
run and journal their intent, state and verification.

A block uses the target's ``block_ip`` command when one is configured, with ``{ip}``
and ``{reason}`` filled in, and else the admin endpoint ``POST
/admin/security/block-ip`` with the bearer token from the environment variable
that the target's ``admin_token_env`` names. Either way its state is the block list
of the security audit, so the verification reads the audit again: the address must
be listed, with a reason other than the rate limiter's. A command that blocks
somewhere the audit does not see, such as a firewall, therefore ends ``failed``.

Key rotation runs the target's ``rotate_keys`` command, with ``{incident}`` filled
in. The keys cannot be read from here, so its verification is the command's exit
status, and a rotation journaled for the incident already makes it ``already-done``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from veerunbook.actions import Action, Outcome, Precondition, Verification
from veerunbook.blocklist import BlockCheck, Network
from veerunbook.config import Target
from veerunbook.errors import VeerunbookError
from veerunbook.secincident_audit import read_audit
from veerunbook.session import Session
from veerunbook.shell import configured_command, placeholders, run_command

BLOCK_ACTION = "block-ip"
ROTATE_ACTION = "rotate-keys"
BLOCK_PLACEHOLDERS = frozenset({"ip", "reason"})
ROTATE_PLACEHOLDERS = frozenset({"incident"})

State = dict[str, Any]


def block_reason(incident_id: str) -> str:
    """Return the reason sent with a block: the runbook's word and the incident."""
    return f"security_incident {incident_id}"


def no_rotation_command(session: Session) -> str:
    """Return why the keys cannot be rotated here: the target has no command for it."""
    return (
        f"target {session.target.name} has no rotate_keys command, so rotate the "
        "keys by hand or add the command to its [targets.NAME.commands]"
    )


def own_networks(target: Target) -> tuple[Network, ...]:
    """Return the target's own address when its base URL names an IP literal.

    A host name is not resolved: the procedure sends no DNS queries.
    """
    host = urlsplit(target.base_url or "").hostname or ""
    try:
        return (ipaddress.ip_network(host),)
    except ValueError:
        return ()


def read_block_state(session: Session, entry: str) -> State:
    """Read whether ``entry`` is on the target's block list, and why.

    Raises VeerunbookError when the security audit cannot be read.
    """
    result = session.probe(
        "audit_security",
        name=f"block list ({entry})",
        expect="json",
        query="severity=high&limit=1",
        record=False,
    )
    if result.status != "pass":
        raise VeerunbookError(f"the block list could not be read: {result.summary()}")
    found = read_audit(result.json, at=datetime.now(UTC)).blocks.get(entry)
    return {
        "entry": entry,
        "blocked": found is not None,
        "manual": found is not None and not found.automatic,
        "reason": found.reason if found is not None else None,
    }


def block_action(
    session: Session, check: BlockCheck, because: str, timeout_s: float
) -> Action:
    """Return the action that blocks ``check.entry``; ``because`` is the evidence."""
    entry = check.entry
    target = session.target
    command = configured_command(session, "block_ip")
    reason = block_reason(session.run.incident_id)
    endpoint = f"POST {target.endpoints.get('block_ip', '/admin/security/block-ip')}"
    via = "the block_ip command" if command else endpoint

    def address_allowed() -> Precondition:
        return Precondition("address may be blocked", check.ok, check.reason)

    def means() -> Precondition:
        if command is not None:
            return _placeholders_known("block_ip command", command, BLOCK_PLACEHOLDERS)
        return _token_set(target)

    def execute() -> Outcome:
        if command is not None:
            values = {"ip": entry, "reason": reason}
            return _command_outcome(session, "block_ip", command, values, timeout_s)
        return _post_block(session, entry, reason)

    return Action(
        name=f"{BLOCK_ACTION} {entry}",
        timeout_s=timeout_s,
        intent=f"Block {entry} through {via}, because of: {because}.",
        params={"ip": entry, "reason": reason, "via": via, "forced": check.forced},
        read_state=lambda: read_block_state(session, entry),
        execute=execute,
        verify=_verify_block,
        preconditions=[address_allowed, means],
        already_done=lambda state: bool(state["manual"]),
    )


def rotate_keys_action(session: Session, signs: list[str], timeout_s: float) -> Action:
    """Return the action that runs the ``rotate_keys`` command, for ``signs``."""
    command = configured_command(session, "rotate_keys")
    incident = session.run.incident_id

    def configured() -> Precondition:
        if command is None:
            return Precondition(
                "rotate_keys command", False, no_rotation_command(session)
            )
        return _placeholders_known("rotate_keys command", command, ROTATE_PLACEHOLDERS)

    def read_state() -> State:
        return {"rotations": _rotations(session)}

    def execute() -> Outcome:
        assert command is not None  # the precondition checked it
        values = {"incident": incident}
        return _command_outcome(session, "rotate_keys", command, values, timeout_s)

    return Action(
        name=ROTATE_ACTION,
        timeout_s=timeout_s,
        intent=(
            "Rotate the keys with the rotate_keys command, because of: "
            f"{'; '.join(signs[:3])}."
        ),
        params={"incident": incident, "signs": signs[:10]},
        read_state=read_state,
        execute=execute,
        verify=_verify_rotation,
        preconditions=[configured],
        already_done=lambda state: int(state["rotations"]) > 0,
    )


def _token_set(target: Target) -> Precondition:
    variable = target.admin_token_env
    if os.environ.get(variable):
        return Precondition("admin token", True, f"set in ${variable}")
    return Precondition(
        "admin token",
        False,
        f"${variable} is not set; export the target's admin token in it, or "
        "configure a block_ip command for the target",
    )


def _placeholders_known(name: str, command: str, known: frozenset[str]) -> Precondition:
    unknown = sorted(set(placeholders(command)) - known)
    if unknown:
        allowed = ", ".join("{" + value + "}" for value in sorted(known))
        return Precondition(
            name,
            False,
            f"the {name} uses {{{unknown[0]}}}, which this procedure does not fill; "
            f"use only {allowed}",
        )
    return Precondition(name, True, "configured")


def _post_block(session: Session, entry: str, reason: str) -> Outcome:
    target = session.target
    token = os.environ.get(target.admin_token_env, "")
    result = session.probe(
        "block_ip",
        name=f"block {entry}",
        expect="json",
        method="POST",
        json_body={"ip": entry, "reason": reason},
        headers={"Authorization": f"Bearer {token}"},
        record=False,
    )
    endpoint = f"POST {target.endpoints.get('block_ip', '/admin/security/block-ip')}"
    if result.http_status == 200:
        return Outcome(True, f"{endpoint} answered 200", data={"response": result.json})
    if result.http_status in (401, 403):
        return Outcome(
            False,
            f"{endpoint} rejected the admin token in ${target.admin_token_env} "
            f"(HTTP {result.http_status}); check that it is the target's current token",
        )
    return Outcome(False, f"{endpoint} failed: {result.summary()}")


def _command_outcome(
    session: Session,
    role: str,
    command: str,
    values: dict[str, str],
    timeout_s: float,
) -> Outcome:
    result = run_command(
        command, values=values, timeout_s=timeout_s, redactor=session.redactor
    )
    return Outcome(result.ok, f"{role} command {result.summary()}", result.to_dict())


def _verify_block(
    before: Mapping[str, Any], after: Mapping[str, Any], outcome: Outcome
) -> Verification:
    entry = after["entry"]
    if not after["blocked"]:
        return Verification(False, f"{entry} is not on the block list")
    if not after["manual"]:
        return Verification(False, f"{entry} is still blocked only by the rate limiter")
    return Verification(True, f"{entry} is on the block list ({after['reason']})")


def _verify_rotation(
    before: Mapping[str, Any], after: Mapping[str, Any], outcome: Outcome
) -> Verification:
    if not outcome.ok:
        return Verification(False, "the rotate_keys command did not succeed")
    return Verification(
        True,
        "the command exited 0; the keys cannot be read from here, so check that "
        "a token issued before the rotation is now rejected",
    )


def _rotations(session: Session) -> int:
    """Count the key rotations carried out for this incident so far."""
    return sum(
        1
        for event in session.run.journal.events()
        if event.get("event") == "action"
        and event.get("name") == ROTATE_ACTION
        and event.get("mode") == "executed"
    )
