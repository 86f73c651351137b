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


# Public targets are reached on the web ports only: every video source yt-dlp knows serves HTTP(S) there, and
# refusing the rest keeps the appliance from being a relay towards other services (mail, SSH, databases) of
# public hosts. A source on another port is reached by listing its address in media.allowed_networks.
WEB_PORTS = frozenset({80, 443})


def _within(addr: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return any(addr in net for net in allowed if net.version == addr.version)


def check_addresses(addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    """Refuse if any address is internal and not inside an allowed network."""
    for addr in addresses:
        if _internal(addr) and not _within(addr, allowed):
            raise UrlRefused(
                f"address {addr} is loopback, link-local or private; add its range to media.allowed_networks"
            )


def check_port(port: int, addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    """Refuse a port other than 80/443 unless every address is inside an allowed network."""
    if port in WEB_PORTS or (addresses and all(_within(a, allowed) for a in addresses)):
        return
    raise UrlRefused(f"port {port} is not 80 or 443; list the address in media.allowed_networks to reach "
                     "other ports")


async def resolve_host(host: str) -> list[IPAddress]:
    """The addresses of a host name or literal, resolved off the event loop; UnresolvableHost if none."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnresolvableHost(f"host {host!r} does not resolve") from exc
    # a scope id ("fe80::1%eth0") is not part of the address the policy looks at
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UnresolvableHost(f"host {host!r} does not resolve")
    return list(dict.fromkeys(addresses))


async def check_url(url: str, allowed: Sequence[IPNetwork]) -> list[IPAddress]:
    """Resolve the URL's host and refuse internal targets and odd ports; return the vetted addresses.

    DNS failure raises UnresolvableHost (a UrlRefused) so callers can tell "offline" from "refused".
    """
    host = check_syntax(url)
    parts = urlsplit(url)
    addresses = await resolve_host(host)
    check_addresses(addresses, allowed)
    check_port(parts.port or (443 if parts.scheme == "https" else 80), addresses, allowed)
    return addresses
