"""Registered URLs are SSRF targets: where the bridge may send requests.

A participant's URL must be https, carry no credentials, and resolve only to public
addresses (no loopback, private, link-local, shared or reserved ones), unless the bridge
runs with ``--allow-private-urls`` (a LAN or a test). The address is checked when the
URL is registered (:func:`check_resolves`) and again on every connection
(:class:`GuardedBackend`, under httpx), so a DNS name that later resolves to 127.0.0.1
(DNS rebinding) is refused at connect time too.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx
import trio

from bridge.problems import Problem

RESOLVE_TIMEOUT_S: Final = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "unsafe-url", "URL refused", detail)


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """The URL's parts if its shape is acceptable (not yet where it resolves)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a URL: {exc}") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl(f"the URL must be {' or '.join(schemes)}, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must not carry credentials")
    if parts.fragment:
        raise UnsafeUrl("the URL must not have a #fragment")
    if port == 0:
        raise UnsafeUrl("port 0 is not a port")
    return parts


def address_allowed(address: IpAddress, *, allow_private: bool) -> bool:
    if address.is_unspecified or address.is_multicast:
        return False
    if allow_private:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_allowed(address.ipv4_mapped, allow_private=False)
    return address.is_global


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        with trio.fail_after(RESOLVE_TIMEOUT_S):
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, trio.TooSlowError) as exc:
        raise UnsafeUrl(f"{host!r} does not resolve: {exc}") from exc
    addresses: list[IpAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[IpAddress]:
    """Where ``host`` resolves, if every address is allowed (one that is not makes the
    whole name refused: a name that mixes public and private answers is not trusted)."""
    addresses = await resolve(host, port)
    refused = [str(a) for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if not addresses or refused:
        raise UnsafeUrl(
            f"{host!r} resolves to {', '.join(refused) or 'nothing'}: loopback, private, "
            "link-local and reserved addresses are refused (--allow-private-urls allows them)"
        )
    return addresses


async def check_resolves(url: str, *, allow_private: bool) -> SplitResult:
    """:func:`check_url`, then where its host resolves now."""
    parts = check_url(url, allow_private=allow_private)
    default = 443 if parts.scheme == "https" else 80
    await checked_addresses(
        parts.hostname or "", parts.port or default, allow_private=allow_private
    )
    return parts


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, checking every connection's address first: it resolves
    the host itself and connects to a checked address (TLS still verifies the name)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, *, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, allow_private=self._allow_private)
        except UnsafeUrl as exc:
            raise httpcore.ConnectError(exc.detail) from exc
        return await self._inner.connect_tcp(
            str(addresses[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not participants")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    *, allow_private: bool, timeout_s: float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through :class:`GuardedBackend`; no
    proxies from the environment, no redirects (a redirect could point anywhere)."""
    transport = httpx.AsyncHTTPTransport(retries=0, trust_env=False, verify=verify)
    pool = transport._pool  # httpcore's pool: httpx has no public way to set its backend
    pool._network_backend = GuardedBackend(pool._network_backend, allow_private=allow_private)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False
    )
