"""Address validation before a block: one case per rule, and the allow-list setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.blocklist import (
    check_block,
    entry_of,
    parse_network,
    parse_networks,
    split_addresses,
)
from veerunbook.config import load_config
from veerunbook.errors import ConfigError


@pytest.mark.parametrize(
    "text",
    ["203.0.113.7", "198.51.100.250", "192.0.2.1", "2001:db8::1", "8.8.8.8"],
)
def test_public_and_documentation_blockable(text: str) -> None:
    check = check_block(text)
    assert check.ok
    assert check.reason == "blockable"
    assert check.entry == text


@pytest.mark.parametrize("text", ["203.0.113.0/24", "2001:db8:1:2::/64"])
def test_ranges_up_to_limit_blockable(text: str) -> None:
    assert check_block(text).ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("203.0.112.0/23", "range 203.0.112.0/23 is too wide: block at most a /24"),
        ("2001:db8::/63", "range 2001:db8::/63 is too wide: block at most a /64"),
    ],
)
def test_wide_range_rejected(text: str, reason: str) -> None:
    check = check_block(text, force=True)
    assert not check.ok
    assert check.reason.startswith(reason)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("127.0.0.0/24", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.0.0.1", "in 'this network' 0.0.0.0/8 (RFC 1122)"),
        ("0.255.255.0/24", "in 'this network' 0.0.0.0/8 (RFC 1122)"),
        ("255.255.255.255", "limited broadcast (RFC 919)"),
        ("::ffff:255.255.255.255", "limited broadcast (RFC 919)"),
    ],
)
def test_never_blocked_even_forced(text: str, kind: str) -> None:
    check = check_block(text, force=True)
    assert not check.ok
    assert check.reason.endswith(f"is {kind}; never blocked")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1 is loopback; never blocked",
        ),
        (
            "::127.0.0.1",
            "::7f00:1 embeds 127.0.0.1 (IPv4-compatible), which is loopback;"
            " never blocked",
        ),
        (
            "64:ff9b::7f00:1",
            "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64), which is loopback;"
            " never blocked",
        ),
        (
            "2002:7f00:1::1",
            "2002:7f00:1::1 embeds 127.0.0.1 (6to4), which is loopback; never blocked",
        ),
        (
            "64:ff9b::0:1",
            "64:ff9b::1 embeds 0.0.0.1 (NAT64), which is in 'this network'"
            " 0.0.0.0/8 (RFC 1122); never blocked",
        ),
    ],
)
def test_embedded_loopback_never_blocked(text: str, reason: str) -> None:
    check = check_block(text, force=True)
    assert not check.ok
    assert check.reason == reason


@pytest.mark.parametrize(
    ("text", "embedded"),
    [
        ("::ffff:10.0.0.1", "private (RFC 1918)"),
        ("::a00:1", "10.0.0.1 (IPv4-compatible), which is private (RFC 1918)"),
        ("64:ff9b::a00:1", "10.0.0.1 (NAT64), which is private (RFC 1918)"),
        ("64:ff9b::6440:1", "100.64.0.1 (NAT64), which is shared address space"),
        ("2002:c0a8:101::1", "192.168.1.1 (6to4), which is private (RFC 1918)"),
        ("2002:a9fe:1::/64", "169.254.0.1 (6to4), which is link-local (RFC 3927)"),
    ],
)
def test_embedded_private_needs_force(text: str, embedded: str) -> None:
    check = check_block(text)
    assert not check.ok
    assert embedded in check.reason
    assert check_block(text, force=True).ok


@pytest.mark.parametrize(
    "text",
    ["::ffff:203.0.113.7", "64:ff9b::cb00:7107", "2002:cb00:7107::1", "::cb00:7107"],
)
def test_embedded_public_blockable(text: str) -> None:
    assert check_block(text).reason == "blockable"


def test_embedded_range_too_wide() -> None:
    check = check_block("64:ff9b::/96", force=True)
    assert not check.ok
    assert check.reason.startswith("range 0.0.0.0/0 is too wide")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("10.1.2.3", "private (RFC 1918)"),
        ("172.16.0.1", "private (RFC 1918)"),
        ("172.31.255.254", "private (RFC 1918)"),
        ("192.168.1.0/24", "private (RFC 1918)"),
        ("::ffff:10.0.0.1", "private (RFC 1918)"),
        ("100.64.0.1", "shared address space (RFC 6598)"),
        ("100.127.255.254", "shared address space (RFC 6598)"),
        ("169.254.10.20", "link-local (RFC 3927)"),
        ("192.0.0.8", "an IETF protocol assignment (RFC 6890)"),
        ("192.0.0.170", "an IETF protocol assignment (RFC 6890)"),
        ("198.18.0.1", "for benchmarking (RFC 2544)"),
        ("198.19.255.0/24", "for benchmarking (RFC 2544)"),
        ("224.0.0.251", "multicast (RFC 5771)"),
        ("239.255.255.250", "multicast (RFC 5771)"),
        ("240.0.0.1", "reserved (RFC 1112)"),
        ("255.255.255.254", "reserved (RFC 1112)"),
        ("fd12:3456::1", "private (RFC 4193 unique local)"),
        ("fe80::1", "link-local (RFC 4291)"),
        ("fec0::1", "site-local (deprecated by RFC 3879)"),
        ("ff02::1", "multicast (RFC 4291)"),
        ("100::1", "discard-only (RFC 6666)"),
        ("64:ff9b:1::1", "for local-use IPv4/IPv6 translation (RFC 8215)"),
        ("2001:2::1", "an IETF protocol assignment (RFC 2928)"),
        ("2001::1", "an IETF protocol assignment (RFC 2928)"),
        ("5f00::1", "reserved: outside the global unicast range 2000::/3"),
        ("4000::1", "reserved: outside the global unicast range 2000::/3"),
        ("::2:0:0:1", "reserved: outside the global unicast range 2000::/3"),
    ],
)
def test_protected_rejected_unless_forced(text: str, kind: str) -> None:
    check = check_block(text)
    forced = check_block(text, force=True)
    assert not check.ok
    assert f"is {kind}; set force_block to block it anyway" in check.reason
    assert forced.ok
    assert forced.forced
    assert forced.reason.endswith("; forced")


@pytest.mark.parametrize(
    "text",
    [
        "100.63.255.255",
        "100.128.0.1",
        "192.0.1.255",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "2001:200::1",
        "3fff::1",
    ],
)
def test_neighbours_of_special_ranges_blockable(text: str) -> None:
    assert check_block(text).reason == "blockable"


@pytest.mark.parametrize("text", ["fe80::1%eth0", "2001:db8::1%1", "fe80::1%eth0/128"])
def test_zone_id_rejected_even_forced(text: str) -> None:
    check = check_block(text, force=True)
    assert not check.ok
    assert "names an interface of one host" in check.reason


def test_zone_id_message_gives_fix() -> None:
    with pytest.raises(ValueError) as error:
        parse_network("fe80::1%eth0")
    assert str(error.value).endswith("give it without %eth0")


@pytest.mark.parametrize("text", ["172.15.255.255", "172.32.0.1", "169.255.0.1"])
def test_neighbours_of_private_ranges_blockable(text: str) -> None:
    assert check_block(text).ok


def test_own_address_rejected() -> None:
    own = parse_networks(["198.51.100.80"])
    single = check_block("198.51.100.80", own=own)
    covering = check_block("198.51.100.0/24", own=own)
    assert not single.ok
    assert single.reason == (
        "198.51.100.80 contains the target's own address 198.51.100.80; "
        "set force_block to block it anyway"
    )
    assert not covering.ok
    assert check_block("198.51.100.81", own=own).ok
    assert check_block("198.51.100.80", own=own, force=True).ok


def test_allow_list_rejected() -> None:
    allowed = parse_networks(["203.0.113.0/28", "2001:db8::5"])
    inside = check_block("203.0.113.9", allow_list=allowed)
    assert not inside.ok
    assert inside.reason == (
        "203.0.113.9 is on the target's allow-list (203.0.113.0/28); "
        "set force_block to block it anyway"
    )
    assert not check_block("2001:db8::5", allow_list=allowed).ok
    assert check_block("203.0.113.16", allow_list=allowed).ok
    assert check_block("203.0.113.9", allow_list=allowed, force=True).ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not-an-ip", "invalid address 'not-an-ip': give an IPv4 or IPv6"),
        ("203.0.113.300", "invalid address '203.0.113.300'"),
        ("", "invalid address ''"),
        ("203.0.113.7/24", "invalid range '203.0.113.7/24': it has host bits set;"),
    ],
)
def test_invalid_text_rejected(text: str, reason: str) -> None:
    check = check_block(text, force=True)
    assert not check.ok
    assert check.reason.startswith(reason)


def test_host_bits_message_gives_fix() -> None:
    with pytest.raises(ValueError) as error:
        parse_network("203.0.113.7/24")
    assert str(error.value).endswith("write 203.0.113.0/24")


def test_mapped_address_keeps_dotted_form() -> None:
    check = check_block("::ffff:203.0.113.7")
    assert check.ok
    assert check.entry == "::ffff:203.0.113.7"


def test_entry_normalises_spellings() -> None:
    assert entry_of("2001:DB8:0::1") == "2001:db8::1"
    assert entry_of(" 203.0.113.7 ") == "203.0.113.7"
    assert entry_of("203.0.113.0/24") == "203.0.113.0/24"
    assert entry_of("nonsense") is None


def test_split_addresses() -> None:
    text = " 203.0.113.7, ,198.51.100.0/24,203.0.113.7,"
    assert split_addresses(text) == ["203.0.113.7", "198.51.100.0/24"]


def write_config(tmp_path: Path, allow_list: str) -> Path:
    path = tmp_path / "veerunbook.toml"
    lines = [
        "[targets.prod]",
        'base_url = "http://127.0.0.1:8080"',
        f"allow_list = {allow_list}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_config_allow_list_read(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '["192.0.2.10", "198.51.100.0/24"]'))
    assert config.targets["prod"].allow_list == ("192.0.2.10", "198.51.100.0/24")


def test_config_allow_list_default_empty(tmp_path: Path) -> None:
    path = tmp_path / "veerunbook.toml"
    path.write_text('[targets.prod]\nbase_url = "http://127.0.0.1:8080"\n')
    assert load_config(path).targets["prod"].allow_list == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"192.0.2.10"', "allow_list: must be an array of addresses"),
        ('["192.0.2.999"]', "allow_list[0]: invalid address '192.0.2.999'"),
        ('["192.0.2.10", 7]', "allow_list[1]: 7 is not a string"),
        ('["10.1.2.3/8"]', "allow_list[0]: invalid range '10.1.2.3/8'"),
    ],
)
def test_config_allow_list_invalid(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, value))
    assert f"targets.prod.{message}" in str(error.value)
