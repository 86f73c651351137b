"""The SSRF guard on video URLs."""

import ipaddress

import pytest

from appliance.media.ssrf import UrlRefused, check_addresses, check_port, check_syntax, check_url, parse_networks


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/",
        "http://192.168.0.10/", "http://172.16.5.4/", "http://[fe80::1]/", "http://0.0.0.0/", "http://localhost/v",
        "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
    ],
)
async def test_internal_targets_refused_by_default(url: str) -> None:
    with pytest.raises(UrlRefused):
        await check_url(url, [])


async def test_loopback_allowed_when_listed() -> None:
    await check_url("http://127.0.0.1:8000/page.html", parse_networks(["127.0.0.0/8"]))
    with pytest.raises(UrlRefused):  # allowing loopback does not open the private ranges
        await check_url("http://10.0.0.1/page.html", parse_networks(["127.0.0.0/8"]))


def test_public_address_passes() -> None:
    check_addresses([ipaddress.ip_address("93.184.216.34")], [])


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/v.mp4", "file:///etc/passwd", "http://user:pw@example.com/", "http://exa mple.com/",
     "http://example.com/a;rm -rf", "http://example.com/\nx", "javascript:alert(1)", "http:///nohost",
     "http://example.com:99999/"],
)
def test_bad_syntax_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_syntax(url)


async def test_unresolvable_host_refused() -> None:
    with pytest.raises(UrlRefused, match="does not resolve"):
        await check_url("http://no-such-host.invalid/video", [])


def test_bad_cidr_is_named() -> None:
    with pytest.raises(ValueError, match="not-a-cidr"):
        parse_networks(["127.0.0.0/8", "not-a-cidr"])


async def test_check_url_returns_the_vetted_addresses() -> None:
    assert await check_url("http://127.0.0.1:8000/v", parse_networks(["127.0.0.0/8"])) == [
        ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize("port", [22, 25, 6379, 8080])
def test_public_targets_only_on_web_ports(port: int) -> None:
    public = [ipaddress.ip_address("93.184.216.34")]
    check_port(80, public, [])
    check_port(443, public, [])
    with pytest.raises(UrlRefused, match=f"port {port} .*egress.allowed_networks"):
        check_port(port, public, [])
    # a listed network opens every port of its addresses (the tests' sites run on high loopback ports)
    check_port(port, public, parse_networks(["93.184.216.0/24"]))


async def test_odd_port_refused_at_add_time() -> None:
    with pytest.raises(UrlRefused, match="port 25"):
        await check_url("http://93.184.216.34:25/v.mp4", [])
