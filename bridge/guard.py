"""Who may use the bridge, and how often: the shared community token (checked in constant
time), rate limits per client address and per token, the real client address behind a
proxy (``--trust-proxy``: the last hop of ``X-Forwarded-For``, which ngrok appends)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

from bridge.problems import Problem
from bridge.rate import Rate, RateLimiter

TOKEN_HEADER: Final = "X-Roomverse-Token"


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per minute (and burst) for each kind of route."""

    visit_per_ip: Rate = field(default_factory=lambda: Rate(per_minute=3, burst=3))
    """The seed's suggestion: about 3 visits a minute per address."""
    chat_per_ip: Rate = field(default_factory=lambda: Rate(per_minute=30, burst=10))
    other_per_ip: Rate = field(default_factory=lambda: Rate(per_minute=60, burst=20))
    per_token: Rate = field(default_factory=lambda: Rate(per_minute=600, burst=100))
    """All requests with one token (the community's share of the owner's engine)."""

    def check(self) -> None:
        for name in ("visit_per_ip", "chat_per_ip", "other_per_ip", "per_token"):
            getattr(self, name).check(name)


class Gate:
    def __init__(self, token: str | None, limits: Limits, *, trust_proxy: bool) -> None:
        self._token = None if token is None else token.encode()
        self._trust_proxy = trust_proxy
        self._per_ip = {
            "visit": RateLimiter(limits.visit_per_ip),
            "chat": RateLimiter(limits.chat_per_ip),
            "other": RateLimiter(limits.other_per_ip),
        }
        self._per_token = RateLimiter(limits.per_token)

    def client_ip(self, peer: str, forwarded_for: str) -> str:
        """The client's address: the connection's peer, or with ``--trust-proxy`` the last
        address in ``X-Forwarded-For`` (the one our own proxy appended)."""
        if self._trust_proxy:
            last = forwarded_for.split(",")[-1].strip()
            if last:
                return last
        return peer

    def admit(self, route: str, ip: str, given: str, now_s: float) -> None:
        """Raise a 401 or 429 :class:`Problem` unless this request (``route`` kind, from
        ``ip``, with the token header ``given``) may go on."""
        if self._token is not None and not hmac.compare_digest(given.encode(), self._token):
            detail = "wrong token" if given else f"the {TOKEN_HEADER} header is missing"
            raise Problem(401, "unauthorized", "Unauthorized", detail)
        wait = self._per_ip[route if route in self._per_ip else "other"].take(ip, now_s)
        if wait is None and self._token is not None:
            key = hashlib.sha256(given.encode()).hexdigest()
            wait = self._per_token.take(key, now_s)
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"too many {route} requests from {ip}; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
