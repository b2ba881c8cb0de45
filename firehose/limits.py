"""What a viewer may ask for, and how many of them: pure checks the web app applies
before it accepts a WebSocket (filters, Origin, connections per IP).

Nothing here touches a socket or a clock, so every rule is tested directly. A refused
viewer gets a :class:`ViewerRefused` naming the HTTP status and a stable ``reason``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from keys import InvalidPeerId, peer_id_from_str
from keys.errors import RemoteError

KINDS = ("action", "context")


@dataclass(frozen=True, slots=True)
class ViewerLimits:
    """Per-viewer and per-client bounds (the design's defaults)."""

    max_per_ip: int = 32
    max_frame_bytes: int = 1024
    """Largest frame a viewer may send; viewers send nothing, so anything bigger is abuse."""
    max_filters: int = 16
    queue_size: int = 1024
    """Events waiting for one viewer; a viewer whose queue is full is dropped."""
    frame_objects: int = 64
    """Most JSON lines (objects) joined into one outgoing text frame."""
    frame_bytes: int = 64 * 1024
    """Most UTF-8 bytes joined into one outgoing text frame (a bigger object goes alone)."""
    frames_per_s: int = 25_000
    """Writes per second the fan-out aims at, all viewers together: a pass over N viewers
    (one write each, of every frame it has waiting) starts at most every
    ``N / frames_per_s`` seconds (40 ms at 1,000 viewers), so more viewers get fuller
    frames instead of the writer taking the CPU the node's receive path needs. A write of
    already encoded bytes costs 10-20 µs (a non-blocking ``send``; on loopback it carries
    the receiver's side of TCP too; 2-core CI machine): 25,000/s is about a third of a
    core."""
    outbox_bytes: int = 256 * 1024
    """Bytes a viewer's socket did not take that the fan-out keeps for it; while that
    many wait, its events stay in its queue (``queue_size``), which then overflows."""
    ping_interval_s: float = 20.0
    """Every viewer is pinged this often; one that sends nothing (not even a pong) for
    twice as long is cut."""
    allow_origins: frozenset[str] = field(default_factory=frozenset)
    """Browser origins allowed besides the page's own (``http://host:port``)."""
    backfill_page: int = 256
    """Rows read from the backlog at a time when a viewer resumes."""
    backfill_stall_s: float = 3.0
    """A resuming viewer that takes no events for this long is a slow consumer."""
    close_grace_s: float = 2.0
    """How long the goodbye (``closing`` frame, close handshake) may take."""

    def check(self) -> None:
        for name in (
            "max_per_ip",
            "max_frame_bytes",
            "max_filters",
            "queue_size",
            "frame_objects",
            "frame_bytes",
            "frames_per_s",
            "outbox_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.ping_interval_s <= 0:
            raise ValueError("ping_interval_s must be above 0")


class ViewerRefused(RemoteError):
    """A viewer's request breaks a rule; ``status`` is the HTTP answer before upgrade."""

    reason = "refused"

    def __init__(self, message: str, *, reason: str, status: int) -> None:
        super().__init__(message, reason=reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a viewer wants: empty ``characters`` means everyone."""

    characters: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset(KINDS)

    def matches(self, kind: str, sender: str) -> bool:
        return kind in self.kinds and (not self.characters or sender in self.characters)


@dataclass(frozen=True, slots=True)
class ViewerRequest:
    filters: Filters
    cursor: int | None
    """Resume from this cursor (inclusive); None = live only."""


def parse_request(query: Mapping[str, Sequence[str]], max_filters: int) -> ViewerRequest:
    """Read ``character``, ``kind`` and ``cursor`` query parameters (each a list of the
    values given); other parameters are ignored."""
    characters = list(query.get("character", ()))
    kinds = list(query.get("kind", ()))
    if len(characters) + len(kinds) > max_filters:
        raise ViewerRefused(
            f"at most {max_filters} filter values", reason="too_many_filters", status=400
        )
    for character in characters:
        try:
            peer_id_from_str(character)
        except InvalidPeerId:
            raise ViewerRefused(
                f"character={character[:60]!r} is not a PeerID", reason="bad_filter", status=400
            ) from None
    for kind in kinds:
        if kind not in KINDS:
            raise ViewerRefused(
                f"kind must be one of {', '.join(KINDS)}", reason="bad_filter", status=400
            )
    cursors = list(query.get("cursor", ()))
    if len(cursors) > 1:
        raise ViewerRefused("at most one cursor", reason="bad_cursor", status=400)
    cursor = None
    if cursors:
        text = cursors[0]
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            raise ViewerRefused("cursor must be a whole number", reason="bad_cursor", status=400)
        cursor = int(text)
    filters = Filters(frozenset(characters), frozenset(kinds) if kinds else frozenset(KINDS))
    return ViewerRequest(filters, cursor)


def check_origin(origin: str | None, host: str | None, allowed: Collection[str]) -> None:
    """A browser's ``Origin`` must be the page's own host or explicitly allowed
    (``allowed`` holds :func:`normalize_origin` forms); a client that sends no Origin
    (not a browser) is not subject to the rule."""
    if origin is None:
        return
    normal = normalize_origin(origin)
    if normal in allowed:
        return
    parts = urlsplit(normal)
    if host is not None and parts.scheme in ("http", "https") and parts.netloc == host.lower():
        return
    raise ViewerRefused(f"origin {origin[:80]!r} is not allowed", reason="origin", status=403)


def normalize_origin(origin: str) -> str:
    """How ``--allow-origin`` values are compared (scheme://host[:port], lower case)."""
    return origin.strip().rstrip("/").lower()


class ConnectionCounter:
    """Open viewer connections per client IP, capped."""

    def __init__(self, max_per_ip: int) -> None:
        self.max_per_ip = max_per_ip
        self._open: dict[str, int] = {}

    def acquire(self, ip: str) -> None:
        count = self._open.get(ip, 0)
        if count >= self.max_per_ip:
            raise ViewerRefused(
                f"at most {self.max_per_ip} connections per address",
                reason="too_many_connections",
                status=429,
            )
        self._open[ip] = count + 1

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def open_for(self, ip: str) -> int:
        return self._open.get(ip, 0)

    @property
    def total(self) -> int:
        return sum(self._open.values())
