"""What a webhook may call: https (http only when allowed), and only hosts on public addresses.

A webhook must not become a way into the operator's own network. The address is checked when a delivery
is made, on what the name resolves to then, and the connection goes to exactly the addresses checked (the
sender's resolver checks them: gateway.webhook_sender), so a name that resolves to a public address when
checked and to a private one when connected (DNS rebinding) gets nowhere. Redirects are never followed (the sender's
business), so a public endpoint cannot forward the call inward either.
"""
from __future__ import annotations

import ipaddress
import re

import idna
from yarl import URL  # the parser aiohttp connects with: the host checked is the host called

MAX_URL_CHARS = 2048
MAX_HOST_CHARS, MAX_LABEL_CHARS = 253, 63  # what DNS carries
# A host name's label (RFC 1123 2.1), IDNA-encoded: letters, digits and inner hyphens (underscores too, which
# some names carry); a space, or a hyphen at either end, is no name any resolver looks up.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,%d}[A-Za-z0-9_])?" % (MAX_LABEL_CHARS - 2))
_ACE_PREFIX = "xn--"  # a label that is the IDNA encoding of a name in other scripts
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")  # no top-level domain is all digits (RFC 3696 2)
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765): an IPv4 host behind a translator
# Not public, though the interpreter's tables (older than these RFCs) call them global: NAT64 for local use
# (RFC 8215), which only the operator's own translator serves; site-local (deprecated, RFC 3879); the
# documentation prefix of RFC 9637; SRv6 segment ids (RFC 9602).
NOT_PUBLIC = tuple(map(ipaddress.IPv6Network, ("64:ff9b:1::/48", "fec0::/10", "3fff::/20", "5f00::/16")))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The target is not one a webhook may call; the message says why (for `webhooks deliveries`)."""


def check_url(url: str, allow_http: bool) -> URL:
    """The parsed URL, if a webhook may be registered with it and called."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    # What the URL parser would drop or re-encode: the endpoint called would not be the one listed.
    if _UNSENDABLE.search(url):
        raise TargetRefused("the URL must not hold spaces or control characters (percent-encode them)")
    if _BROKEN_ESCAPE.search(url):
        raise TargetRefused("the URL has a % that is not followed by two hexadecimal digits")
    try:
        parsed = URL(url)
        host = parsed.raw_host
    except (ValueError, UnicodeError):
        raise TargetRefused("not a URL") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in allowed:
        raise TargetRefused("the URL must start with https://" + (
            " or http://" if allow_http else " (http:// too with GATEWAY_WEBHOOK_ALLOW_HTTP=true)"))
    if not host or not _resolvable(host):
        raise TargetRefused("the URL has no host that can be looked up")
    if parsed.explicit_port == 0:
        raise TargetRefused("the URL's port must be 1 to 65535")
    if parsed.user is not None or parsed.password is not None:
        raise TargetRefused("the URL must not carry credentials (deliveries are signed instead)")
    if "#" in url:  # an empty one too, which the parser drops
        raise TargetRefused("the URL must not have a fragment")
    if "[" in url.split("//", 1)[-1].split("/", 1)[0] and not isinstance(_address(host), ipaddress.IPv6Address):
        raise TargetRefused("the URL's host in brackets is not an IPv6 address")  # [v1.x]: no one to call
    return parsed


def _resolvable(host: str) -> bool:
    """An address, or a name the resolver will take (as yarl encodes it: IDNA 2008, so `straße.de` is
    `xn--strae-oqa.de`): labels of 1 to 63 characters, each `xn--` label one that decodes. A name whose last
    label is a number is an address in another form (`127.1`, `2130706433`, `0177.0.0.1`), which the
    connection refuses: only `a.b.c.d` is taken."""
    if _address(host) is not None:
        return True
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return False
    return host.isascii() and len(host) <= MAX_HOST_CHARS and all(map(_label, labels))


def _label(label: str) -> bool:
    if not _HOST_LABEL.fullmatch(label):
        return False
    if label.lower().startswith(_ACE_PREFIX):
        # What yarl may have made: IDNA 2008 (`ß` stays, which Python's codec, IDNA 2003, refused), or, for a
        # name IDNA 2008 does not take (an emoji), Python's codec, to which yarl falls back.
        try:
            idna.decode(label)
        except UnicodeError:  # idna.IDNAError is one
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                return False
    return True


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])  # a zone does not change the address
    except ValueError:
        return None


def check_address(address: str, allow_private: bool) -> None:
    """Refuses loopback, private, link-local, multicast, unspecified and every other non-public address,
    also where one is embedded in an IPv6 address that a tunnel or translator would deliver to it
    (IPv4-mapped, -translated and -compatible, 6to4, Teredo, NAT64)."""
    if allow_private:
        return
    ip = _address(address)
    if ip is None:
        raise TargetRefused(f"not an address: {address!r}")
    for candidate in (ip, *_embedded(ip)):
        if candidate.is_multicast or not candidate.is_global or any(candidate in net for net in NOT_PUBLIC):
            raise TargetRefused(f"the host resolves to a non-public address ({ip})")


def _embedded(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
    if ip in NAT64 or ip in IPV4_TRANSLATED or int(ip) >> 32 == 0:  # and IPv4-compatible (::a.b.c.d)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def check_literal_host(url: URL, allow_private: bool) -> None:
    """A host written as an address is never resolved, so it is checked here."""
    host = url.raw_host or ""
    if _address(host) is not None:
        check_address(host, allow_private)
