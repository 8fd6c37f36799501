"""Validation of the addresses a procedure may block, before any request is sent.

``check_block`` takes an address or CIDR range as the operator or the evidence gives
it and returns a ``BlockCheck``: blockable or not, and why. The rules, in order:

1. The text must be an IPv4 or IPv6 address or a network without host bits set. An
   IPv4-mapped IPv6 address (``::ffff:203.0.113.7``, as Node reports IPv4 clients on
   a dual-stack socket) is judged as the IPv4 address it carries.
2. A range may be at most a /24 (IPv4) or a /64 (IPv6): a wider one would block whole
   providers.
3. Never loopback (127.0.0.0/8, ::1) or the unspecified address (0.0.0.0, ::), even
   when forced, because the operators reach the service from there.
4. Unless forced: no private (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
   and the IPv6 unique local range fc00::/7 of RFC 4193), link-local
   (169.254.0.0/16, fe80::/10) or multicast (224.0.0.0/4, ff00::/8) address, no
   address of the target itself and nothing on the target's allow-list.

The documentation ranges of RFC 5737 (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24) are blockable. Python's ``is_private`` is True for them, which is why
the ranges above are written out instead of taken from ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The widest ranges that may be blocked in one entry.
MAX_IPV4_PREFIX = 24
MAX_IPV6_PREFIX = 64

# Never blockable, not even with force.
_NEVER = (
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("unspecified", ipaddress.ip_network("0.0.0.0/32")),
    ("unspecified", ipaddress.ip_network("::/128")),
)
# Blockable only with force.
_PROTECTED = (
    ("private (RFC 1918)", ipaddress.ip_network("10.0.0.0/8")),
    ("private (RFC 1918)", ipaddress.ip_network("172.16.0.0/12")),
    ("private (RFC 1918)", ipaddress.ip_network("192.168.0.0/16")),
    ("private (RFC 4193 unique local)", ipaddress.ip_network("fc00::/7")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True)
class BlockCheck:
    """The verdict on one address or range: ``entry`` is its normal form.

    ``entry`` is the bare address for a single host and ``network/prefix`` for a
    range, or the text as given when it is not an address at all. ``forced`` is
    True when ``force`` allowed an address that the rules protect.
    """

    text: str
    entry: str
    ok: bool
    reason: str
    forced: bool = False


def parse_network(text: str) -> Network:
    """Parse an address or a CIDR range; raise ValueError with the fix in its text."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            network = ipaddress.ip_network(value, strict=False)
            raise ValueError(
                f"invalid range {value!r}: it has host bits set; write {network}"
            ) from None
        raise ValueError(
            f"invalid address {value!r}: give an IPv4 or IPv6 address or a CIDR "
            "range such as 203.0.113.0/24"
        ) from None


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Parse allow-list entries; raise ValueError naming the first invalid one."""
    return tuple(parse_network(entry) for entry in entries)


def entry_of(text: str) -> str | None:
    """Return the normal form of an address or range, or None when it is neither.

    Two spellings of one address (``2001:DB8::1``, ``2001:db8:0::1``) give the same
    entry, so block lists can be compared with it.
    """
    try:
        return _entry(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def split_addresses(text: str) -> list[str]:
    """Split a comma-separated list of addresses, dropping empty items and repeats."""
    seen: list[str] = []
    for item in text.split(","):
        value = item.strip()
        if value and value not in seen:
            seen.append(value)
    return seen


def check_block(
    text: str,
    *,
    allow_list: Sequence[Network] = (),
    own: Sequence[Network] = (),
    force: bool = False,
) -> BlockCheck:
    """Decide whether ``text`` may be blocked; see the module doc for the rules.

    ``own`` contains the target's own addresses and ``allow_list`` the target's
    configured allow-list. With ``force`` only rules 1 to 3 apply.
    """
    try:
        network = parse_network(text)
    except ValueError as exc:
        return BlockCheck(text, text.strip(), False, str(exc))
    entry = _entry(network)
    judged = _unmapped(network)

    width = _too_wide(judged)
    if width is not None:
        return BlockCheck(text, entry, False, width)
    for kind, reserved in _NEVER:
        if _overlaps(judged, reserved):
            return BlockCheck(text, entry, False, f"{entry} is {kind}; never blocked")

    protected = _protection(judged, allow_list, own)
    if protected is None:
        return BlockCheck(text, entry, True, "blockable")
    if force:
        return BlockCheck(text, entry, True, f"{protected}; forced", forced=True)
    return BlockCheck(
        text, entry, False, f"{protected}; set force_block to block it anyway"
    )


def _entry(network: Network) -> str:
    """Return a single host as its bare address and a range in CIDR form.

    An IPv4-mapped address keeps its dotted IPv4 part, as logs show it, where
    Python before 3.13 would print ``::ffff:cb00:7107``.
    """
    address = str(network.network_address)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        address = f"::ffff:{network.network_address.ipv4_mapped}"
    if network.prefixlen == network.max_prefixlen:
        return address
    return f"{address}/{network.prefixlen}"


def _unmapped(network: Network) -> Network:
    """Return the IPv4 network that an IPv4-mapped IPv6 network carries, else it."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # every address of ::ffff:0:0/96 carries one
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _too_wide(network: Network) -> str | None:
    limit = MAX_IPV4_PREFIX if network.version == 4 else MAX_IPV6_PREFIX
    if network.prefixlen >= limit:
        return None
    return (
        f"range {_entry(network)} is too wide: block at most a /{limit} per entry "
        f"(IPv{network.version})"
    )


def _protection(
    network: Network, allow_list: Sequence[Network], own: Sequence[Network]
) -> str | None:
    """Return why ``network`` is protected unless forced, or None."""
    shown = _entry(network)
    for kind, reserved in _PROTECTED:
        if _overlaps(network, reserved):
            return f"{shown} is {kind}"
    for address in own:
        if _overlaps(network, _unmapped(address)):
            return f"{shown} contains the target's own address {_entry(address)}"
    for allowed in allow_list:
        if _overlaps(network, _unmapped(allowed)):
            return f"{shown} is on the target's allow-list ({_entry(allowed)})"
    return None


def _overlaps(first: Network, second: Network) -> bool:
    # Networks of different IP versions never overlap; ipaddress raises for them.
    return first.version == second.version and first.overlaps(second)
