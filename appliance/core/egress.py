"""The one egress policy: which addresses the daemon may open outbound connections to.

Every outbound HTTP request of the daemon (providers and connectors, library imports and the upstream
catalog, webhooks, and yt-dlp through the media egress proxy) is checked here. The check runs on the
address actually connected to, at connect time: the shared HTTP client's connector asks `socket_for`
for every socket it opens, literal IPs included, so a name that resolves to a public address when an
admin saves it and to 127.0.0.1 later (DNS rebinding) is still refused.

Default: public addresses only. Loopback, link-local, private (RFC 1918, ULA), CGNAT (100.64/10),
multicast, reserved and unspecified addresses are refused unless a CIDR in `egress.allowed_networks`
covers them (a facility whose Canvas or Kolibri lives on the LAN lists that LAN here).

Redirects are re-checked like any connection (each hop opens a new socket through the same factory), and a
redirect to another origin is refused outright when the request carried credentials (Authorization,
Cookie, Proxy-Authorization or an API-key header): aiohttp would strip some of them, but a provider that
bounces us elsewhere while we hold its token is a misconfiguration or an attack either way.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from yarl import URL

from appliance.core.settings import setting

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MARKER = "refused by egress policy"
# Request headers that carry credentials: a cross-origin redirect of such a request is never followed.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key", "x-auth-token"})


def _check_networks(value: list[str]) -> str | None:
    try:
        parse_networks(value)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class EgressSettings:
    """[egress]: which networks outbound requests may reach besides public addresses."""

    allowed_networks: list[str] = setting(
        [], help="CIDRs of non-public ranges (loopback, private, link-local, CGNAT) that outbound requests may "
        "reach: providers, imports, webhooks, video downloads (empty: public addresses only)",
        check=_check_networks,
    )


class EgressRefused(OSError):
    """A connection the policy does not allow; its text always starts with MARKER."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{MARKER}: {detail}")


def parse_networks(cidrs: Iterable[str], key: str = "egress.allowed_networks") -> list[IPNetwork]:
    """Parse CIDRs; raise ValueError naming the bad entry and the key it came from."""
    nets: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{key}: {cidr!r} is not a CIDR") from exc
    return nets


def is_internal(addr: IPAddress) -> bool:
    """True for every address that is not plainly public (loopback, private, CGNAT, link-local, ...)."""
    if isinstance(addr, ipaddress.IPv6Address):
        # an IPv4-mapped or NAT64/6to4-embedded address is judged by the IPv4 address it reaches
        if addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        elif addr.sixtofour:
            addr = addr.sixtofour
    return bool(addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def within(addr: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """True when addr lies in one of the networks (IPv4-mapped IPv6 compared as IPv4)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped and any(n.version == 4 for n in allowed):
        mapped = addr.ipv4_mapped
        if any(mapped in n for n in allowed if n.version == 4):
            return True
    return any(addr in net for net in allowed if net.version == addr.version)


class EgressPolicy:
    """Public addresses, plus the listed networks; everything else is refused."""

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self.allowed: list[IPNetwork] = list(allowed)

    @classmethod
    def from_settings(cls, settings: EgressSettings, *extra: Iterable[IPNetwork]) -> EgressPolicy:
        """The policy of `[egress]`, widened by any extra networks (the `media.allowed_networks` alias)."""
        nets = parse_networks(settings.allowed_networks)
        for more in extra:
            nets.extend(more)
        return cls(dict.fromkeys(nets))

    def allows(self, addr: IPAddress | str) -> bool:
        """Whether a connection to this address is allowed."""
        ip = ipaddress.ip_address(str(addr).split("%")[0]) if isinstance(addr, str) else addr
        return not is_internal(ip) or within(ip, self.allowed)

    def check(self, addr: IPAddress | str) -> None:
        """Raise EgressRefused unless the address is allowed."""
        if not self.allows(addr):
            raise EgressRefused(f"address {addr} is not public; list its range in egress.allowed_networks")

    def socket_for(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's `socket_factory`: vet the exact address about to be connected to, then make the socket."""
        family, type_, proto, _canon, sockaddr = addr_info
        self.check(str(sockaddr[0]))
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

    def connector(self, **kwargs: Any) -> aiohttp.TCPConnector:
        """A TCPConnector that opens sockets only through this policy."""
        return aiohttp.TCPConnector(socket_factory=self.socket_for, **kwargs)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Refuses a redirect to another origin while the request carries credentials."""
        trace = aiohttp.TraceConfig()

        async def on_redirect(_session: aiohttp.ClientSession, _ctx: SimpleNamespace,
                              params: aiohttp.TraceRequestRedirectParams) -> None:
            location = params.response.headers.get("Location")
            if location is None:
                return
            try:
                target = params.url.join(URL(location))
                same = target.origin() == params.url.origin()
            except ValueError:
                same = False
            if same:
                return
            if any(name.lower() in CREDENTIAL_HEADERS for name in params.headers):
                params.response.close()
                raise EgressRefused("a redirect to another origin while carrying credentials is not followed")

        trace.on_request_redirect.append(on_redirect)
        return trace

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        """A ClientSession bound to this policy (connector and redirect guard); kwargs go to ClientSession."""
        traces = [*kwargs.pop("trace_configs", []), self.trace_config()]
        return aiohttp.ClientSession(connector=self.connector(), trace_configs=traces, **kwargs)


def refused(exc: BaseException) -> bool:
    """True when an exception (or its cause) is an egress-policy refusal, as aiohttp wraps it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EgressRefused) or MARKER in str(current):
            return True
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BaseException) and (isinstance(os_error, EgressRefused) or MARKER in str(os_error)):
            return True
        current = current.__cause__ or current.__context__
    return False
