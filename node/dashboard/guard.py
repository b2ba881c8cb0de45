"""Who may use the dashboard: pure checks on a request's Host, token and Origin.

The dashboard holds the character's private memory and can change its state, so every
request (reads too) must carry the token printed at start. Two browser attacks are closed
as well, even though neither could learn the token:

- DNS rebinding: a page on ``evil.example`` whose name resolves to 127.0.0.1 talks to us
  with ``Host: evil.example``; on loopback only loopback names with our port are served.
- Cross-site requests and WebSocket hijacking: a browser ``Origin`` header must name the
  host the page was served from. Clients that are not browsers send no Origin; the token
  is what stands in their way.

No clock, no I/O: the app passes the request's facts in (see :class:`RequestFacts`).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

TOKEN_HEADER = "X-Roomverse-Token"
TOKEN_PARAM = "token"
BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    method: str
    host: str
    """The ``Host`` header as sent ("" if none)."""
    origin: str | None
    token: str | None
    """From the header or the ``token`` query parameter (browsers cannot set headers on a
    WebSocket, and the page's own URL carries it)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal (brackets around IPv6 allowed)."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loopback_host_ok(host: str, port: int) -> bool:
    """Whether a ``Host`` header names this machine's loopback at our port."""
    name, sep, port_text = host.rpartition(":")
    return bool(sep) and port_text == str(port) and is_loopback(name)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (what MCP clients and
    Prometheus's ``authorization: {credentials_file: ...}`` send), or None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == BEARER else None


def token_matches(given: str, token: str) -> bool:
    # Constant time, so response times do not reveal how much of a guess was right.
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def same_origin(origin: str, host: str) -> bool:
    return origin in (f"http://{host}", f"https://{host}")


def refusal(facts: RequestFacts, token: str, *, loopback_port: int | None) -> Refusal | None:
    """Why the request must be refused, or None to serve it.

    ``loopback_port`` is our port when serving on loopback (Host is then checked), None
    when the owner asked for a public address (any Host: we cannot know the names).
    """
    if loopback_port is not None and not loopback_host_ok(facts.host, loopback_port):
        return Refusal(403, f"unexpected Host {facts.host!r}: use the URL the node printed")
    if not facts.token:
        return Refusal(
            401, "missing token: open the dashboard_ready URL printed by `roomverse node`"
        )
    if not token_matches(facts.token, token):
        return Refusal(403, "wrong token (a new one is drawn each time the node starts)")
    if facts.origin is not None and not same_origin(facts.origin, facts.host):
        return Refusal(403, f"cross-origin request from {facts.origin!r} refused")
    return None
