"""The client's address and scheme, believing X-Forwarded-* only from configured proxies."""

import ipaddress

from aiohttp import web


def _trusted(remote: str | None, proxies: list[str]) -> bool:
    if not remote or not proxies:
        return False
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in proxies:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_addr(request: web.Request, proxies: list[str]) -> str:
    """The peer address, or the last X-Forwarded-For hop when the peer is a trusted proxy."""
    remote = request.remote or ""
    if _trusted(remote, proxies):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return remote[:64]


def is_tls(request: web.Request, proxies: list[str]) -> bool:
    """True when the browser talks TLS to us (directly, or to a trusted proxy in front of us)."""
    if request.secure:
        return True
    return _trusted(request.remote, proxies) and request.headers.get("X-Forwarded-Proto", "") == "https"
