"""Refuse video URLs that point into the appliance's own networks unless the egress policy allows them.

The address rules are the core's (appliance.core.egress); this module adds what only video downloads need:
an up-front check of the URL an admin adds, and the web-ports-only rule for public hosts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from appliance.core import egress
from appliance.core.egress import IPAddress, IPNetwork

if TYPE_CHECKING:
    from appliance.config import Config

_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f;|&`$<>\\]")


class UrlRefused(Exception):
    """The URL is not acceptable (scheme, syntax or target address); the message says why."""


class UnresolvableHost(UrlRefused):
    """The host name does not resolve now (offline, or no such host): checked again before downloading."""


def parse_networks(cidrs: Sequence[str]) -> list[IPNetwork]:
    """Parse `media.allowed_networks`; raise ValueError naming a bad entry."""
    return egress.parse_networks(cidrs, "media.allowed_networks")


def allowed_networks(config: Config) -> list[IPNetwork]:
    """What video downloads may reach besides public hosts: `egress.allowed_networks`, widened by the older
    `media.allowed_networks` (kept as an alias so existing configs keep working)."""
    nets = egress.parse_networks(config.egress.allowed_networks)
    nets.extend(parse_networks(config.media.allowed_networks))
    return list(dict.fromkeys(nets))


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


_internal = egress.is_internal


# Public targets are reached on the web ports only: every video source yt-dlp knows serves HTTP(S) there, and
# refusing the rest keeps the appliance from being a relay towards other services (mail, SSH, databases) of
# public hosts. A source on another port is reached by listing its address in egress.allowed_networks.
WEB_PORTS = frozenset({80, 443})


_within = egress.within


def check_addresses(addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    """Refuse if any address is internal and not inside an allowed network."""
    for addr in addresses:
        if _internal(addr) and not _within(addr, allowed):
            raise UrlRefused(
                f"address {addr} is loopback, link-local or private; add its range to egress.allowed_networks"
            )


def check_port(port: int, addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]) -> None:
    """Refuse a port other than 80/443 unless every address is inside an allowed network."""
    if port in WEB_PORTS or (addresses and all(_within(a, allowed) for a in addresses)):
        return
    raise UrlRefused(f"port {port} is not 80 or 443; list the address in egress.allowed_networks to reach "
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
