"""Proposals of the security-incident procedure: blocks, recovery options, diagnosis.

An address is proposed for a block when the audit shows evidence against it: a
failed-login burst, the rate limiter's hits or its automatic block, or a breach
event. An automatic block is no reason to leave an address out: the limiter's block
is its own and may end with its window, while a manual block names the incident.
Every proposal is validated by ``veerunbook.blocklist``, and one that fails is still
carried to the action, which records it as ``refused`` with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from veerunbook.actions import ActionResult
from veerunbook.blocklist import (
    BlockCheck,
    Network,
    check_block,
    entry_of,
    split_addresses,
)
from veerunbook.secincident_audit import Audit, Block, Event, Source
from veerunbook.secincident_checks import MINUTE, blocked_since, bursts
from veerunbook.text import counted

# The critical alert: more than 50 IPs blocked in 1 minute.
BLOCKED_CRITICAL = 50
# Action modes after which the change is in place at the target.
IN_PLACE = ("executed", "already-done")


@dataclass
class Proposal:
    """One address to block: its validation, the evidence, its block list entry."""

    check: BlockCheck
    evidence: list[str] = field(default_factory=list)
    source: Source | None = None
    block: Block | None = None
    chosen: bool = False  # named with the ``block`` parameter

    @property
    def manual(self) -> bool:
        """Whether a manual block of the address is on the block list already."""
        return self.block is not None and not self.block.automatic

    def because(self) -> str:
        """Return the evidence as one phrase."""
        reasons = list(self.evidence)
        if self.chosen:
            reasons.insert(0, "chosen with the block parameter")
        return "; ".join(reasons) or "no evidence in the audit"

    def row(self) -> dict[str, Any]:
        """Return a table row: address, evidence, block list state, validation."""
        return {
            "address": self.check.entry,
            "evidence": self.because(),
            "blocked now": _block_state(self.block),
            "may block": "yes" if self.check.ok else "no",
            "validation": self.check.reason,
        }


def propose(
    audit: Audit | None,
    block: str,
    *,
    allow_list: Sequence[Network],
    own: Sequence[Network],
    force: bool,
) -> list[Proposal]:
    """Return the addresses to block: those named in ``block``, else the evidenced.

    Evidenced addresses come strongest first: breach events, then the most failed
    logins.
    """
    sources = audit.sources if audit is not None else {}
    blocks = audit.blocks if audit is not None else {}
    if block.strip():
        proposals = []
        for text in split_addresses(block):
            check = check_block(text, allow_list=allow_list, own=own, force=force)
            source = _source_for(sources, check.entry)
            evidence = audit.evidence(source) if audit and source else []
            entry = blocks.get(check.entry)
            proposals.append(Proposal(check, evidence, source, entry, chosen=True))
        return proposals

    found = []
    for source in sources.values():
        evidence = audit.evidence(source) if audit is not None else []
        if evidence:
            check = check_block(source.ip, allow_list=allow_list, own=own, force=force)
            found.append(Proposal(check, evidence, source, source.block))
    found.sort(
        key=lambda p: (
            not (p.source and p.source.breaches),
            -(p.source.failed_logins if p.source else 0),
            p.check.entry,
        )
    )
    return found


def _block_state(block: Block | None) -> str:
    if block is None:
        return "no"
    return "automatic" if block.automatic else "manual"


def _source_for(sources: dict[str, Source], entry: str) -> Source | None:
    for source in sources.values():
        if entry_of(source.ip) == entry:
            return source
    return None


def select(proposals: list[Proposal], max_blocks: int) -> tuple[list[Proposal], int]:
    """Return the proposals to act on and how many were left out by ``max_blocks``.

    Proposals that are refused anyway or blocked manually already do not count
    towards the maximum, because acting on them changes nothing.
    """
    chosen, left_out, changes = [], 0, 0
    for proposal in proposals:
        changing = proposal.check.ok and not proposal.manual
        if changing and changes >= max_blocks:
            left_out += 1
            continue
        changes += changing
        chosen.append(proposal)
    return chosen, left_out


def recovery_options(
    audit: Audit | None,
    proposals: list[Proposal],
    signs: list[str],
    breaches: int,
    results: Sequence[ActionResult] = (),
    rotation: ActionResult | None = None,
) -> list[dict[str, Any]]:
    """Rank the runbook's recovery actions by the evidence, performing none of them.

    The order among the options with evidence is containment first: blocking, key
    rotation, service restrictions, then the patch and the monitoring that follow.
    ``results`` are the block actions of this run, one per proposal in order, and
    ``rotation`` its key rotation. An option whose change is in place gets no rank,
    and its evidence column states
    that.
    """
    done = {
        "block": _blocks_in_place(proposals, results),
        "rotate-keys": (
            "already in place: keys rotated for this incident"
            if rotation is not None and rotation.mode in IN_PLACE
            else ""
        ),
    }
    evidenced = [p for p in proposals if p.evidence]
    chosen = [p for p in proposals if p.chosen]
    attackers = bursts(audit) if audit is not None else []
    blocked_minute = blocked_since(audit, audit.at - MINUTE) if audit else 0
    uncontained = [s.ip for s in attackers if s.block is None]
    options = [
        (
            "block",
            "block the attacking addresses",
            _block_evidence(evidenced, chosen),
            "this procedure, with --incident ID -p confirm ID",
        ),
        (
            "rotate-keys",
            "trigger emergency key rotation",
            "; ".join(signs[:3]),
            "this procedure, with -p rotate_keys True --incident ID -p confirm ID",
        ),
        (
            "restrict",
            "consider temporary service restrictions",
            _restriction_evidence(blocked_minute, uncontained),
            "by hand: for example close sign-up or require a captcha on login",
        ),
        (
            "patch",
            "patch vulnerabilities",
            f"{counted(breaches, 'breach event')} in the audit" if breaches else "",
            "by hand: fix what the breach events point at",
        ),
        (
            "monitor",
            "enhance monitoring for similar attack patterns",
            "an attack is in the audit" if attackers or breaches else "",
            "by hand: alert on failed-login bursts per address",
        ),
    ]
    rows, rank = [], 0
    for key, action, evidence, means in options:
        ranked = bool(evidence) and not done.get(key)
        rank += ranked
        rows.append(
            {
                "key": key,
                "action": action,
                "evidence": done.get(key) or evidence or "no evidence",
                "rank": rank if ranked else None,
                "carried out by": means,
            }
        )
    return rows


def _blocks_in_place(
    proposals: Sequence[Proposal], results: Sequence[ActionResult]
) -> str:
    """Return a note when every block that may be made is in place, else ``""``.

    A proposal that fails validation is left out, because a run with the same
    parameters refuses it again. A dry-run, a failed block or a block refused for
    another reason, such as a missing admin token, leaves the option open.
    """
    allowed = [
        result
        for proposal, result in zip(proposals, results, strict=False)
        if proposal.check.ok
    ]
    if not allowed or any(result.mode not in IN_PLACE for result in allowed):
        return ""
    return (
        f"already in place: {counted(len(allowed), 'address', 'addresses')} "
        "on the block list"
    )


def _block_evidence(evidenced: list[Proposal], chosen: list[Proposal]) -> str:
    parts = []
    if evidenced:
        parts.append(f"{counted(len(evidenced), 'address', 'addresses')} with evidence")
    if chosen:
        named = counted(len(chosen), "address", "addresses")
        parts.append(f"{named} named with the block parameter")
    return "; ".join(parts)


def _restriction_evidence(blocked_minute: int, uncontained: list[str]) -> str:
    if blocked_minute > BLOCKED_CRITICAL:
        return f"{blocked_minute} IPs blocked in the last minute (critical alert line)"
    if uncontained:
        return (
            f"{counted(len(uncontained), 'address', 'addresses')} over the login "
            "limit are not blocked by the rate limiter"
        )
    return ""


def diagnosis(
    audit: Audit | None,
    results: list[ActionResult],
    signs: list[str],
    breaches: list[Event],
    problem: str | None,
) -> str:
    """Return one line: what the audit shows and what was or would be done."""
    if problem is not None:
        done = _actions_text(results)
        return f"{problem}; {done}" if done else problem
    assert audit is not None  # without a problem the audit was read
    findings = []
    attackers = bursts(audit)
    if attackers:
        findings.append(
            f"failed-login burst from {counted(len(attackers), 'address', 'addresses')}"
        )
    for event in breaches[:2]:
        findings.append(f"{event.type.replace('_', ' ')} from {event.ip or '?'}")
    if len(breaches) > 2:
        findings.append(counted(len(breaches) - 2, "more breach event"))
    if signs:
        findings.append("compromised credentials suspected (rotate the keys)")
    done = _actions_text(results)
    if not findings:
        tail = f"; {done}" if results else "; nothing to block"
        return f"no sign of a security incident in the audit{tail}"
    return f"security incident: {', '.join(findings)}; {done or 'nothing to block'}"


def rotation_text(result: ActionResult) -> str:
    """Return what became of the key rotation, by the action's mode, with the reason.

    A refusal's detail starts ``precondition 'NAME' not met:`` (see
    ``veerunbook.actions``); only the reason after it is kept.
    """
    words = {
        "executed": "keys rotated",
        "dry-run": "key rotation would run (dry-run)",
        "already-done": "key rotation is already done",
        "refused": "key rotation was refused",
        "failed": "key rotation failed",
    }
    text = words.get(result.mode, f"key rotation ended {result.mode}")
    if result.mode in ("refused", "failed") and result.detail:
        text += f": {result.detail.split(' not met: ', 1)[-1]}"
    return text


def _actions_text(results: list[ActionResult]) -> str:
    modes = Counter(result.mode for result in results)
    words = {
        "executed": "blocked now",
        "dry-run": "to block (dry-run)",
        "already-done": "on the block list already",
        "refused": "refused",
        "failed": "failed",
    }
    parts = [
        f"{counted(modes[mode], 'address', 'addresses')} {text}"
        for mode, text in words.items()
        if modes[mode]
    ]
    return ", ".join(parts)
