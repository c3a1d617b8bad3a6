"""Which addresses runs may reach: the daemon must not be a proxy into its network.

A job names a URL; the daemon resolves its host and checks every address before
it connects, and then connects to the address it checked, never to a second
lookup's answer (a name that answers a public address to the check and a private
one to the connection, "DNS rebinding", gets nowhere). The checks, in order:

1. Always refused, whatever else is configured: link-local addresses (cloud
   metadata services live there), the metadata addresses outside it
   (``fd00:ec2::254``, ``100.100.100.200``), unspecified, multicast, broadcast
   and reserved addresses.
2. Refused when the host name or the address matches ``TICKWORK_EGRESS_DENY``.
3. When ``TICKWORK_EGRESS_ALLOW`` is set, refused unless the host name or the
   address matches one of its entries.
4. Refused when the address is private (loopback, RFC 1918, CGNAT, unique local,
   documentation and benchmarking ranges) unless ``TICKWORK_ALLOW_PRIVATE_TARGETS``
   is on, or an allow-list entry that matched is a host name or a network that
   lies inside the private ranges (``10.1.2.0/24`` lets that subnet through;
   ``0.0.0.0/0`` does not lift the private rule).

Addresses that carry an IPv4 address inside an IPv6 one (IPv4-mapped
``::ffff:127.0.0.1``, IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4) are judged
by the IPv4 address they carry.

A host can spell an IPv4 address in the legacy forms resolvers still read
(``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``, ``169.254.43518``
are all 169.254.169.254): the daemon checks the address its lookup answers,
and the API, which looks nothing up, reads them with :func:`legacy_ipv4`.

``shared.connecting`` applies the policy where connections are made.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from shared.errors import TickworkError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _table(*groups: tuple[str, tuple[str, ...]]) -> tuple[tuple[Network, str], ...]:
    return tuple(
        (ipaddress.ip_network(cidr), words) for words, cidrs in groups for cidr in cidrs
    )


# What no setting lets a run reach, each with the words an error uses for it.
ALWAYS_REFUSED = _table(
    (
        "a link-local address, where cloud metadata lives",
        ("169.254.0.0/16", "fe80::/10"),
    ),
    ("a cloud metadata address", ("fd00:ec2::254/128", "100.100.100.200/32")),
    ("an unspecified address", ("0.0.0.0/8", "::/128")),
    ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
    ("a reserved or broadcast address", ("240.0.0.0/4",)),
)

# What a run reaches only when the operator allows private targets.
PRIVATE = _table(
    ("a loopback address", ("127.0.0.0/8", "::1/128")),
    ("a private address", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("a shared (CGNAT) address", ("100.64.0.0/10",)),
    ("a unique local address", ("fc00::/7",)),
    (
        "a special-purpose address",
        (
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "2001:db8::/32",
            "100::/64",
            "64:ff9b:1::/48",
        ),
    ),
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

ALLOW_SETTING = "TICKWORK_EGRESS_ALLOW"
DENY_SETTING = "TICKWORK_EGRESS_DENY"
PRIVATE_SETTING = "TICKWORK_ALLOW_PRIVATE_TARGETS"


class EgressRefused(TickworkError):
    """The policy refuses a target; the message names the host, the address and
    the rule. Nothing was connected, and trying again cannot help."""


@dataclass(frozen=True)
class Rule:
    """One entry of an allow- or deny-list: a host name, a domain (a leading dot
    or ``*.`` matches every name under it) or an address or network."""

    text: str
    host: str | None = None
    suffix: str | None = None
    network: Network | None = None

    @classmethod
    def parse(cls, entry: str) -> Rule:
        """Read one entry, or raise ValueError saying what is wrong with it."""
        text = entry.strip()
        if not text:
            raise ValueError("an empty entry")
        try:
            return cls(text, network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        if name.startswith("*."):
            name = name[1:]
        if "/" in name or ":" in name or " " in name or not name.strip("."):
            raise ValueError(f"{text!r} is neither a host name nor an address/CIDR")
        if name.startswith("."):
            return cls(text, suffix=name)
        return cls(text, host=name)

    def matches_name(self, host: str) -> bool:
        if self.host is not None:
            return host == self.host
        if self.suffix is not None:
            return host.endswith(self.suffix)
        return False

    def matches(self, host: str, address: Address) -> bool:
        if self.network is not None:
            return any(a in self.network for a in _forms(address))
        return self.matches_name(host)

    @property
    def lifts_private(self) -> bool:
        """Whether matching this entry lets a private address through: names are
        explicit, and so are networks wholly inside the private ranges."""
        if self.network is None:
            return True
        return any(
            self.network.version == net.version and self.network.subnet_of(net)
            for net, _ in PRIVATE
        )


def parse_rules(value: str | None, setting: str) -> tuple[Rule, ...]:
    """Comma-separated entries of ``setting``, or ValueError naming the bad one."""
    rules = []
    for entry in (value or "").split(","):
        if not entry.strip():
            continue
        try:
            rules.append(Rule.parse(entry))
        except ValueError as exc:
            raise ValueError(f"{setting}: {exc}") from None
    return tuple(rules)


@dataclass(frozen=True)
class EgressPolicy:
    """What runs may reach (see the module documentation for the order).

    The default refuses private targets; :meth:`permissive` allows them, for
    tests and ``tickwork up`` on a laptop.
    """

    allow_private: bool = False
    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @classmethod
    def permissive(cls) -> EgressPolicy:
        """Private targets allowed; the always-refused set still applies."""
        return cls(allow_private=True)

    def check_name(self, host: str) -> None:
        """Refuse a host name the deny-list names, before any lookup."""
        name = _normal_name(host)
        for rule in self.deny:
            if rule.matches_name(name):
                raise EgressRefused(
                    f"refused: {host} matches {DENY_SETTING} entry {rule.text}"
                )

    def check(self, host: str, address: str) -> None:
        """Refuse connecting to ``address`` (an answer for ``host``), or return."""
        refusal = _refusal(self, host, address)
        if refusal is not None:
            raise EgressRefused(refusal)

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``address`` (an answer for ``host``) is refused, or None."""
        name = _normal_name(host)
        ip = parse_address(address)
        shown = (
            address
            if _normal_name(address) == name
            else f"{host} resolves to {address}, which"
        )

        why = _classify(ip, ALWAYS_REFUSED)
        if why is not None:
            return f"refused: {shown} is {why}; never allowed"

        for rule in self.deny:
            if rule.matches(name, ip):
                return f"refused: {shown} matches {DENY_SETTING} entry {rule.text}"

        allowed_by = next((r for r in self.allow if r.matches(name, ip)), None)
        if self.allow and allowed_by is None:
            return f"refused: {shown} is not in {ALLOW_SETTING}"

        why = _classify(ip, PRIVATE)
        if why is None or self.allow_private:
            return None
        if allowed_by is not None and allowed_by.lifts_private:
            return None
        return (
            f"refused: {shown} is {why}; set {PRIVATE_SETTING}=true or list it "
            f"in {ALLOW_SETTING} to allow"
        )


# Targets repeat (an IP-literal URL is checked at every request, a name at every
# lookup), and walking the tables costs tens of microseconds: verdicts are kept.
@lru_cache(maxsize=4096)
def _refusal(policy: EgressPolicy, host: str, address: str) -> str | None:
    return policy.refusal(host, address)


def parse_address(text: str) -> Address:
    """An address from a lookup answer or a URL host, without a zone or brackets."""
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


@lru_cache(maxsize=4096)
def ip_literal(host: str) -> Address | None:
    """The address a URL host spells, or None for a name. Kept per host, as
    every request asks."""
    try:
        return parse_address(host)
    except ValueError:
        return None


# All a legacy IPv4 spelling holds: digits, hex digits, dots and 0x prefixes.
# inet_aton alone would also take "1.2.3.4 anything".
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a URL host spells in a form ``ipaddress`` does not read
    but resolvers do (decimal, hexadecimal, octal, fewer than four parts, a
    trailing dot), as ``inet_aton`` reads it; None for anything else."""
    bare = host.removesuffix(".")
    if not _LEGACY_IPV4.fullmatch(bare):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def _normal_name(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def _forms(address: Address) -> list[Address]:
    """The address, and the IPv4 address it carries when it carries one."""
    forms: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        elif address.sixtofour is not None:
            forms.append(address.sixtofour)
        elif address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return forms


def _classify(address: Address, table: Iterable[tuple[Network, str]]) -> str | None:
    for form in _forms(address):
        for network, words in table:
            if form.version == network.version and form in network:
                return (
                    f"{words} ({network})"
                    if form == address
                    else (f"{words} ({form} inside it, {network})")
                )
    return None
