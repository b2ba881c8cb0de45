"""The bridge's guards on their own: rate buckets, the URL and address checks (at
registration and again at connect time), and the request schema."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from bridge.problems import Problem
from bridge.rate import Rate, RateLimiter
from bridge.registry import canonical_url, handle_for
from bridge.schema import parse_registration
from bridge.urls import address_allowed, check_url, guarded_client
from tests.support.legacy_participant import legacy_participant


def test_a_bucket_allows_its_burst_then_one_request_per_refill() -> None:
    limiter = RateLimiter(Rate(per_minute=6, burst=2))  # one token every 10 s
    assert limiter.take("a", 0.0) is None
    assert limiter.take("a", 0.0) is None
    assert limiter.take("a", 0.0) == pytest.approx(10.0)
    assert limiter.take("b", 0.0) is None, "another client has its own bucket"
    assert limiter.take("a", 9.0) == pytest.approx(1.0)
    assert limiter.take("a", 10.5) is None


def test_buckets_are_bounded() -> None:
    limiter = RateLimiter(Rate(per_minute=60, burst=1), max_keys=3)
    for key in "abcd":
        assert limiter.take(key, 0.0) is None
    assert limiter.take("a", 0.0) is None, "the oldest bucket was dropped: a full one again"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared (carrier-grade NAT)
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("224.0.0.1", False),
    ],
)
def test_only_public_addresses_are_allowed(address: str, public: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert address_allowed(ip, allow_private=False) is public
    usable = not ip.is_multicast and not ip.is_unspecified
    assert address_allowed(ip, allow_private=True) is usable


def test_url_shape() -> None:
    check_url("https://example.org/zundamon", allow_private=False)
    check_url("http://127.0.0.1:8000", allow_private=True)
    for bad in ("http://example.org", "ftp://example.org", "https://", "https://a@b.org", "x"):
        with pytest.raises(Problem):
            check_url(bad, allow_private=False)


def test_one_url_is_one_participant() -> None:
    assert canonical_url("HTTPS://Example.ORG:8443/Zunda/") == "https://example.org:8443/Zunda"
    assert handle_for("https://example.org/z/") == handle_for("https://EXAMPLE.org/z")
    assert handle_for("https://example.org/z") != handle_for("https://example.org/y")
    assert canonical_url("https://[::1]:8443/") == "https://[::1]:8443"


async def test_connecting_to_a_private_address_is_refused_at_connect_time() -> None:
    """What a DNS name that resolves to a private address after it was registered would
    reach: the connection itself is refused, whatever checked the URL before."""
    with legacy_participant() as url:
        async with guarded_client(allow_private=False, timeout_s=5) as client:
            with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1"):
                await client.get(f"{url}/manifest")
        async with guarded_client(allow_private=True, timeout_s=5) as client:
            assert (await client.get(f"{url}/manifest")).status_code == 200


def test_a_registration_with_a_card() -> None:
    registration = parse_registration(
        {
            "name": " Zundamon ",
            "url": "https://example.org",
            "card": {"description": "ずんだ餅の妖精", "greeting": "なのだ！"},
        }
    )
    assert registration.name == "Zundamon"
    assert registration.card.greeting == "なのだ！"
    for bad in (
        {"name": "Z", "url": "https://example.org", "card": {"colour": "green"}},
        {"name": "Z", "url": "https://example.org", "card": "green"},
        {"name": "Z\u0007", "url": "https://example.org"},
        {"name": "", "url": "https://example.org"},
        {"name": "Z", "url": "https://example.org", "card": {"greeting": "x" * 501}},
    ):
        with pytest.raises(Problem) as refused:
            parse_registration(bad)
        assert refused.value.status == 422
