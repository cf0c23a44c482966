"""What a webhook may call: https (http only when allowed), and only hosts on public addresses.

A webhook must not become a way into the operator's own network. The address is checked when a delivery
is made, on what the name resolves to then, and the connection goes to exactly the addresses checked (the
sender's resolver checks them: gateway.webhook_sender), so a name that resolves to a public address when
checked and to a private one when connected (DNS rebinding) gets nowhere. Redirects are never followed (the sender's
business), so a public endpoint cannot forward the call inward either.
"""
from __future__ import annotations

import ipaddress

from yarl import URL  # the parser aiohttp connects with: the host checked is the host called

MAX_URL_CHARS = 2048


class TargetRefused(OSError):
    """The target is not one a webhook may call; the message says why (for `webhooks deliveries`)."""


def check_url(url: str, allow_http: bool) -> URL:
    """The parsed URL, if a webhook may be registered with it and called."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parsed = URL(url)
    except ValueError:
        raise TargetRefused("not a URL") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in allowed:
        raise TargetRefused("the URL must start with https://" + (" or http://" if allow_http else ""))
    if not parsed.host:
        raise TargetRefused("the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        raise TargetRefused("the URL must not carry credentials (deliveries are signed instead)")
    if parsed.fragment:
        raise TargetRefused("the URL must not have a fragment")
    return parsed


def check_address(address: str, allow_private: bool) -> None:
    """Refuses loopback, private, link-local, multicast, unspecified and every other non-public address."""
    if allow_private:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone does not change what the address is
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or not ip.is_global:
        raise TargetRefused(f"the host resolves to a non-public address ({ip})")


def check_literal_host(url: URL, allow_private: bool) -> None:
    """A host written as an address is never resolved, so it is checked here."""
    host = url.raw_host or ""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    check_address(host.strip("[]"), allow_private)
