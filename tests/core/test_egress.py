"""The one egress policy: address rules, the connect-time check on real sockets, redirects and credentials."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from appliance.config import ConfigError
from appliance.core.egress import EgressPolicy, EgressRefused, is_internal, parse_networks, refused


@pytest.mark.parametrize("addr", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "2002:7f00:1::1", "::",
])
def test_non_public_addresses_are_internal(addr: str) -> None:
    assert is_internal(ipaddress.ip_address(addr))
    assert not EgressPolicy().allows(addr)


@pytest.mark.parametrize("addr", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_pass(addr: str) -> None:
    assert EgressPolicy().allows(addr)


def test_allowed_networks_widen_the_policy() -> None:
    policy = EgressPolicy(parse_networks(["10.0.0.0/8", "127.0.0.1/32"]))
    assert policy.allows("10.20.30.40")
    assert policy.allows("127.0.0.1")
    assert policy.allows("::ffff:127.0.0.1")  # IPv4-mapped: judged as the IPv4 address
    assert not policy.allows("127.0.0.2")
    assert not policy.allows("192.168.0.1")
    with pytest.raises(EgressRefused, match="refused by egress policy"):
        policy.check("192.168.0.1")


def test_bad_cidr_is_a_config_error(config_factory: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="egress.allowed_networks"):
        config_factory(egress={"allowed_networks": ["10.0.0.0/33"]})
    assert config_factory(egress={"allowed_networks": []}).egress.allowed_networks == []


async def _server(handler: Callable[[web.Request], Any], host: str = "127.0.0.1") -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host=host)
    await server.start_server()
    return server


@pytest.fixture
async def target() -> AsyncIterator[tuple[TestServer, list[web.Request]]]:
    """A loopback server that records what reached it."""
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(text="inside")

    server = await _server(handler)
    yield server, seen
    await server.close()


async def test_loopback_refused_at_connect_time_by_default(target: Any) -> None:
    server, seen = target
    async with EgressPolicy().session() as http:
        for url in (f"http://127.0.0.1:{server.port}/x", f"http://localhost:{server.port}/x"):
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                async with http.get(url):
                    pass
            assert refused(info.value)
    assert seen == []


async def test_allowed_network_connects(target: Any) -> None:
    server, seen = target
    async with EgressPolicy(parse_networks(["127.0.0.0/8"])).session() as http, \
            http.get(f"http://localhost:{server.port}/x") as resp:
        assert await resp.text() == "inside"
    assert len(seen) == 1


async def test_name_resolving_inside_is_refused_even_if_it_looked_public(target: Any) -> None:
    """DNS rebinding: whatever a name resolved to earlier, the address actually connected to is checked."""
    server, seen = target

    class Rebinding(aiohttp.abc.AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]

        async def close(self) -> None:
            return None

    policy = EgressPolicy()
    connector = aiohttp.TCPConnector(socket_factory=policy.socket_for, resolver=Rebinding())
    async with aiohttp.ClientSession(connector=connector) as http:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            async with http.get(f"http://public.example:{server.port}/"):
                pass
    assert refused(info.value)
    assert seen == []


async def test_redirect_into_a_refused_network_is_refused() -> None:
    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:9/secret")

    server = await _server(bounce)
    try:
        async with EgressPolicy(parse_networks(["127.0.0.1/32"])).session() as http:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                async with http.get(f"http://127.0.0.1:{server.port}/"):
                    pass
        assert refused(info.value)
    finally:
        await server.close()


async def test_cross_origin_redirect_with_credentials_is_not_followed(target: Any) -> None:
    other, seen = target

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{other.port}/elsewhere")

    server = await _server(bounce)
    try:
        async with EgressPolicy(parse_networks(["127.0.0.0/8"])).session() as http:
            for headers in ({"Authorization": "Bearer t0ken"}, {"Cookie": "s=1"}, {"X-Api-Key": "k"}):
                with pytest.raises(EgressRefused, match="carrying credentials"):
                    async with http.get(f"http://127.0.0.1:{server.port}/", headers=headers):
                        pass
            assert seen == []
            # without credentials the same redirect is followed (a mirror of a public download, say)
            async with http.get(f"http://127.0.0.1:{server.port}/") as resp:
                assert await resp.text() == "inside"
        assert len(seen) == 1
    finally:
        await server.close()
