"""The egress policy's rules, address by address: what is always refused, what
private targets are, and how the allow- and deny-lists combine."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.egress import EgressPolicy, EgressRefused, Rule, parse_rules
from shared.settings import Settings


def refusal(policy: EgressPolicy, address: str, host: str | None = None) -> str | None:
    """The refusal's message, or None when the address may be reached."""
    try:
        policy.check(host or address, address)
    except EgressRefused as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "0.0.0.0",
        "0.1.2.3",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
    ],
)
def test_these_are_refused_whatever_the_settings_say(address: str) -> None:
    policy = EgressPolicy(
        allow_private=True,
        allow=parse_rules("0.0.0.0/0,::/0,169.254.0.0/16", "allow"),
    )

    message = refusal(policy, address)

    assert message is not None and "never allowed" in message


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "a private address (10.0.0.0/8)"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("::ffff:127.0.0.1", "127.0.0.1 inside it"),
        ("::ffff:10.0.0.5", "10.0.0.5 inside it"),
        ("::127.0.0.1", "127.0.0.1 inside it"),
        ("64:ff9b::10.0.0.5", "10.0.0.5 inside it"),
        ("2002:c0a8:0101::1", "192.168.1.1 inside it"),
        ("198.18.0.1", "special-purpose"),
        ("192.0.2.1", "special-purpose"),
    ],
)
def test_private_addresses_are_refused_by_default_and_allowed_when_asked(
    address: str, words: str
) -> None:
    message = refusal(EgressPolicy(), address)

    assert message is not None, address
    assert words in message and "TICKWORK_ALLOW_PRIVATE_TARGETS=true" in message
    assert refusal(EgressPolicy.permissive(), address) is None


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"],
)
def test_public_addresses_are_reached(address: str) -> None:
    assert refusal(EgressPolicy(), address) is None


def test_a_refusal_names_the_host_the_address_and_the_rule() -> None:
    message = refusal(EgressPolicy(), "10.0.0.5", host="hooks.example.com")

    assert message == (
        "refused: hooks.example.com resolves to 10.0.0.5, which is a private "
        "address (10.0.0.0/8); set TICKWORK_ALLOW_PRIVATE_TARGETS=true or list it "
        "in TICKWORK_EGRESS_ALLOW to allow"
    )


def test_the_allow_list_limits_targets_to_its_entries() -> None:
    policy = EgressPolicy(allow=parse_rules("api.partner.example,203.0.114.0/24", "a"))

    assert refusal(policy, "93.184.216.34", host="api.partner.example") is None
    assert refusal(policy, "203.0.114.7", host="other.example") is None
    message = refusal(policy, "93.184.216.34", host="other.example")
    assert message is not None and "not in TICKWORK_EGRESS_ALLOW" in message


def test_a_narrow_private_entry_lifts_the_private_rule_and_a_wide_one_does_not() -> (
    None
):
    narrow = EgressPolicy(allow=parse_rules("10.1.2.0/24", "a"))
    wide = EgressPolicy(allow=parse_rules("0.0.0.0/0", "a"))

    assert refusal(narrow, "10.1.2.3") is None
    assert refusal(narrow, "10.1.3.3") is not None
    assert refusal(wide, "8.8.8.8") is None
    assert "private address" in (refusal(wide, "10.1.2.3") or "")


def test_an_allowed_domain_reaches_its_private_addresses() -> None:
    policy = EgressPolicy(allow=parse_rules(".corp.example", "a"))

    assert refusal(policy, "10.0.0.5", host="hooks.corp.example") is None
    assert refusal(policy, "10.0.0.5", host="HOOKS.Corp.Example.") is None
    assert refusal(policy, "10.0.0.5", host="corp.example.evil.test") is not None


def test_the_deny_list_wins_over_the_allow_list_and_private_targets() -> None:
    policy = EgressPolicy(
        allow_private=True,
        allow=parse_rules("10.0.0.0/8,*.corp.example", "a"),
        deny=parse_rules("10.9.0.0/16,secrets.corp.example", "d"),
    )

    assert refusal(policy, "10.1.0.1") is None
    assert "TICKWORK_EGRESS_DENY entry 10.9.0.0/16" in (
        refusal(policy, "10.9.0.1") or ""
    )
    assert "TICKWORK_EGRESS_DENY entry 10.9.0.0/16" in (
        refusal(policy, "::ffff:10.9.0.1") or ""
    )
    with pytest.raises(EgressRefused, match=r"secrets\.corp\.example"):
        policy.check_name("secrets.corp.example")


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ("10.0.0.0/8", "network"),
        ("10.0.0.1", "network"),
        ("fd00::/8", "network"),
        ("hooks.example", "host"),
        (".example", "suffix"),
        ("*.example", "suffix"),
    ],
)
def test_list_entries_are_hosts_domains_or_networks(entry: str, kind: str) -> None:
    assert getattr(Rule.parse(entry), kind) is not None


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("egress_allow", "10.0.0.0/33"),
        ("egress_deny", "hooks example"),
        ("dns_servers", "dns.example"),
        ("dns_servers", "127.0.0.1:port"),
        ("proxy_url", "socks5://127.0.0.1:1080"),
        ("ca_bundle", "/nonexistent/ca.pem"),
    ],
)
def test_bad_egress_settings_stop_the_start_naming_the_setting(
    setting: str, value: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{setting: value})

    assert setting in str(caught.value)


def test_private_targets_are_off_unless_the_operator_turns_them_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TICKWORK_ALLOW_PRIVATE_TARGETS", raising=False)
    assert Settings().egress_policy().allow_private is False
    monkeypatch.setenv("TICKWORK_ALLOW_PRIVATE_TARGETS", "true")
    assert Settings().egress_policy().allow_private is True
