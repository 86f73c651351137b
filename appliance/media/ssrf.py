"""Refuse video URLs that point into the appliance's own networks unless explicitly allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f;|&`$<>\\]")


class UrlRefused(Exception):
    """The URL is not acceptable (scheme, syntax or target address); the message says why."""


class UnresolvableHost(UrlRefused):
    """The host name does not resolve now (offline, or no such host): checked again before downloading."""


def parse_networks(cidrs: Sequence[str]) -> list[IPNetwork]:
    """Parse `media.allowed_networks`; raise ValueError naming a bad entry."""
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ValueError(f"media.allowed_networks: {cidr!r} is not a CIDR") from exc
    return nets


def check_syntax(url: str) -> str:
    """Return the host of an http(s) URL without credentials or shell metacharacters."""
    if len(url) > 2048 or _BAD_CHARS.search(url):
        raise UrlRefused("URL has spaces, control or shell characters")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused("only http and https URLs can be cached")
    if parts.username or parts.password:
        raise UrlRefused("URLs with credentials are not accepted")
    if not parts.hostname:
        raise UrlRefused("URL has no host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise UrlRefused("URL has an invalid port") from exc
    return parts.hostname


def _internal(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return bool(addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def check_addresses(addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    """Refuse if any address is internal and not inside an allowed network."""
    for addr in addresses:
        if _internal(addr) and not any(addr in net for net in allowed if net.version == addr.version):
            raise UrlRefused(
                f"address {addr} is loopback, link-local or private; add its range to media.allowed_networks"
            )


async def check_url(url: str, allowed: Sequence[IPNetwork]) -> None:
    """Resolve the URL's host and refuse internal targets; DNS failure is reported as UrlRefused too."""
    host = check_syntax(url)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnresolvableHost(f"host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    check_addresses(addresses, allowed)
