"""Validation of the addresses a procedure may block, before any request is sent.

``check_block`` takes an address or CIDR range as the operator or the evidence gives
it and returns a ``BlockCheck``: blockable or not, and why. The rules, in order:

1. The text must be an IPv4 or IPv6 address or a network without host bits set.
   It must have no zone id (``fe80::1%eth0``), because a zone id names an interface
   of one host and such an address cannot be blocked on another host.
2. A range may be at most a /24 (IPv4) or a /64 (IPv6): a wider one would block whole
   providers.
3. Never the ranges of ``_NEVER`` below, even when forced, because the operators
   reach the service from loopback and the others are never a client's address.
4. Unless forced: none of the ranges of ``_PROTECTED`` below, no IPv6 address
   outside the global unicast range 2000::/3, no address of the target itself and
   nothing on the target's allow-list.

An IPv6 address that embeds an IPv4 address is judged by that IPv4 address: rules 2
and 3 apply to both, and rule 4 to the IPv4 address alone. So ``::ffff:127.0.0.1`` is
loopback and ``::ffff:203.0.113.7`` (as Node reports IPv4 clients on a dual-stack
socket) is blockable:

=================  =========================================  =============
IPv6 range         embedded IPv4 address                      defined in
=================  =========================================  =============
``::ffff:0:0/96``  the last 32 bits (IPv4-mapped)             RFC 4291
``::/96``          the last 32 bits (IPv4-compatible)         RFC 4291
``64:ff9b::/96``   the last 32 bits (NAT64 well-known prefix) RFC 6052
``2002::/16``      bits 16 to 47 (6to4)                       RFC 3056
=================  =========================================  =============

The ranges follow the IANA special-purpose address registries. Each range that the
registry marks as not globally reachable is in ``_NEVER`` or ``_PROTECTED``, outside
2000::/3, or in the table above. The exceptions are the documentation ranges
192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849)
and 3fff::/20 (RFC 9637), which stay blockable because examples and tests use them.
Python's ``is_global`` and ``is_private`` (3.11) count the documentation ranges as
private and miss parts of 192.0.0.0/24 and all of fec0::/10, which is why the ranges
are written out here instead of taken from ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The widest ranges that may be blocked in one entry.
MAX_IPV4_PREFIX = 24
MAX_IPV6_PREFIX = 64

# Never blockable, not even with force: (what the range is, the range).
_NEVER: tuple[tuple[str, Network], ...] = (
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),  # RFC 1122
    ("loopback", ipaddress.ip_network("::1/128")),  # RFC 4291
    ("unspecified", ipaddress.ip_network("0.0.0.0/32")),  # RFC 1122
    ("unspecified", ipaddress.ip_network("::/128")),  # RFC 4291
    ("in 'this network' 0.0.0.0/8 (RFC 1122)", ipaddress.ip_network("0.0.0.0/8")),
    ("limited broadcast (RFC 919)", ipaddress.ip_network("255.255.255.255/32")),
)
# Blockable only with force: (what the range is, the range).
_PROTECTED: tuple[tuple[str, Network], ...] = (
    ("private (RFC 1918)", ipaddress.ip_network("10.0.0.0/8")),
    ("private (RFC 1918)", ipaddress.ip_network("172.16.0.0/12")),
    ("private (RFC 1918)", ipaddress.ip_network("192.168.0.0/16")),
    ("shared address space (RFC 6598)", ipaddress.ip_network("100.64.0.0/10")),
    ("link-local (RFC 3927)", ipaddress.ip_network("169.254.0.0/16")),
    ("an IETF protocol assignment (RFC 6890)", ipaddress.ip_network("192.0.0.0/24")),
    ("for benchmarking (RFC 2544)", ipaddress.ip_network("198.18.0.0/15")),
    ("multicast (RFC 5771)", ipaddress.ip_network("224.0.0.0/4")),
    ("reserved (RFC 1112)", ipaddress.ip_network("240.0.0.0/4")),
    ("private (RFC 4193 unique local)", ipaddress.ip_network("fc00::/7")),
    ("link-local (RFC 4291)", ipaddress.ip_network("fe80::/10")),
    ("site-local (deprecated by RFC 3879)", ipaddress.ip_network("fec0::/10")),
    ("multicast (RFC 4291)", ipaddress.ip_network("ff00::/8")),
    ("discard-only (RFC 6666)", ipaddress.ip_network("100::/64")),
    (
        "for local-use IPv4/IPv6 translation (RFC 8215)",
        ipaddress.ip_network("64:ff9b:1::/48"),
    ),
    ("an IETF protocol assignment (RFC 2928)", ipaddress.ip_network("2001::/23")),
)
# Every other IPv6 address outside this range is reserved or special (RFC 4291).
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
# The forms that carry an IPv4 address in their last 32 bits.
_LAST_32_BITS = (
    ("IPv4-mapped", _MAPPED),
    ("NAT64", _NAT64),
    ("IPv4-compatible", _COMPATIBLE),
)


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
        network = ipaddress.ip_network(value, strict=True)
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
    zone = getattr(network.network_address, "scope_id", None)
    if zone:
        raise ValueError(
            f"invalid address {value!r}: the zone id %{zone} names an interface of "
            f"one host, so the address cannot be blocked elsewhere; give it without "
            f"%{zone}"
        )
    return network


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
    judged, subject = _judged(network)

    for candidate in (network, judged):
        width = _too_wide(candidate)
        if width is not None:
            return BlockCheck(text, entry, False, width)
    for kind, reserved in _NEVER:
        if _overlaps(network, reserved):
            return BlockCheck(text, entry, False, f"{entry} is {kind}; never blocked")
    for kind, reserved in _NEVER:
        if _overlaps(judged, reserved):
            reason = f"{subject} is {kind}; never blocked"
            return BlockCheck(text, entry, False, reason)

    protected = _protection(judged, subject, allow_list, own)
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


def _judged(network: Network) -> tuple[Network, str]:
    """Return the network the rules judge and the subject of a reason about it.

    That is the embedded IPv4 network for the IPv6 forms of the module doc's table,
    and ``network`` itself for any other. An IPv4-mapped entry shows its IPv4
    address already, so only the other forms name it in the subject.
    """
    embedded = _embedded(network)
    if embedded is None:
        return network, _entry(network)
    form, inner = embedded
    if form == "IPv4-mapped":
        return inner, _entry(network)
    return inner, f"{_entry(network)} embeds {_entry(inner)} ({form}), which"


def _embedded(network: Network) -> tuple[str, ipaddress.IPv4Network] | None:
    """Return the form and the IPv4 network that an IPv6 network embeds, or None."""
    if not isinstance(network, ipaddress.IPv6Network):
        return None
    bits = int(network.network_address)
    for form, prefix in _LAST_32_BITS:
        if network.subnet_of(prefix):
            inner = (ipaddress.IPv4Address(bits & 0xFFFFFFFF), network.prefixlen - 96)
            return form, ipaddress.IPv4Network(inner)
    # Rule 2 leaves 6to4 networks of /64 or narrower, which embed a whole address.
    if network.subnet_of(_SIX_TO_FOUR) and network.prefixlen >= 48:
        address = ipaddress.IPv4Address((bits >> 80) & 0xFFFFFFFF)
        return "6to4", ipaddress.IPv4Network(address)
    return None


def _too_wide(network: Network) -> str | None:
    limit = MAX_IPV4_PREFIX if network.version == 4 else MAX_IPV6_PREFIX
    if network.prefixlen >= limit:
        return None
    return (
        f"range {_entry(network)} is too wide: block at most a /{limit} per entry "
        f"(IPv{network.version})"
    )


def _protection(
    network: Network,
    subject: str,
    allow_list: Sequence[Network],
    own: Sequence[Network],
) -> str | None:
    """Return why ``network`` is protected unless forced, or None."""
    for kind, reserved in _PROTECTED:
        if _overlaps(network, reserved):
            return f"{subject} is {kind}"
    if isinstance(network, ipaddress.IPv6Network) and not network.subnet_of(
        _GLOBAL_UNICAST
    ):
        return f"{subject} is reserved: outside the global unicast range 2000::/3"
    for address in own:
        if _overlaps(network, _judged(address)[0]):
            return f"{subject} contains the target's own address {_entry(address)}"
    for allowed in allow_list:
        if _overlaps(network, _judged(allowed)[0]):
            return f"{subject} is on the target's allow-list ({_entry(allowed)})"
    return None


def _overlaps(first: Network, second: Network) -> bool:
    # Networks of different IP versions never overlap; ipaddress raises for them.
    return first.version == second.version and first.overlaps(second)
