"""``/roomverse/sync/1.0.0``: directory anti-entropy over one stream (DESIGN §4).

Every message is one or more signed ``directory`` envelopes (channel
``/roomverse/sync/1.0.0``), each in a length-prefixed frame, closed by an empty frame
(:mod:`node.wire.frames`). A sync is at most four messages; A opens, B serves::

    A ──summary──▶ B        (A's XOR per bucket; one in FULL_DIGEST_EVERY syncs sends a
    A ◀──digest─── B         full digest instead, since a summary can be balanced out)
    A ───diff────▶ B        (what B lacks or holds older, and what A wants)
    A ◀──delta──── B

    A ──digest───▶ B  │  an empty digest answering a summary means "in sync": done.
    A ◀───diff──── B  │
    A ───delta───▶ B  │

So the bytes exchanged grow with the difference, not with the directory. Envelopes are
checked like gossip (signature, Noise-authenticated sender, timestamp window) but not
against the replay window: a sync message only asks for or offers signed entries, and
merging those is idempotent, so a replayed one gains nothing. Every read is bounded in
size, count and time.

A side that refuses a message (a bad envelope, a broken exchange) answers with a
``refusal`` (reason, detail) before it gives up, so the other side can say why on its
owner's screen (``sync_refused``) instead of seeing its syncs just fail. A refusal is
read whatever its timestamp: it is how a node whose clock is off by more than the
envelope window learns that everything it sends is refused (``stale_timestamp``). It is
still signed, channel-bound and from the Noise-authenticated peer; the worst a replayed
one can do is say again that the peer refused us. Refusals are never answered.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import trio

from keys import (
    DEFAULT_WINDOW_MS,
    PROTO_SYNC,
    StaleTimestamp,
    Verified,
    peer_id_from_str,
    verify,
)
from keys.envelope import MAX_TS_MS
from keys.errors import RemoteError
from keys.kinds import KIND_DIRECTORY, SIZE_CAPS
from node.directory.replica import DirectoryService
from node.wire.clock_skew import ClockSkew
from node.wire.frames import END_OF_MESSAGE, ByteStream, FrameReader, StreamFailed, frame
from registry_crdt import (
    DIRECTORY_BODIES,
    Delta,
    Diff,
    Digest,
    Message,
    Refusal,
    Summary,
    from_body,
    to_bodies,
)
from registry_crdt.messages import MAX_REFUSAL_DETAIL_CHARS

logger = logging.getLogger(__name__)

SYNC_TIMEOUT_S: Final = 10.0
MAX_PARTS: Final = 256
"""Bodies in one message (each ≤ 60 KiB): bounds what one sync can make us read."""
FULL_DIGEST_EVERY: Final = 8
REFUSAL_SEND_TIMEOUT_S: Final = 2.0

Seal = Callable[[str, Mapping[str, Any]], Awaitable[bytes]]
"""``seal(channel, body) -> envelope bytes`` (kind ``directory``), with our next seq."""

_M = TypeVar("_M", Delta, Diff, Digest, Summary)


class SyncProtocolError(RemoteError):
    """The peer broke the sync protocol (wrong message, too many parts, mixed types)."""

    reason = "sync_protocol"


class SyncRefused(RemoteError):
    """The peer refused what we sent, and said why (its ``refusal``)."""

    reason = "refused_by_peer"

    def __init__(self, refusal: Refusal, offset_s: float) -> None:
        super().__init__(f"refused: {refusal.reason}: {refusal.detail}")
        self.refusal = refusal
        self.offset_s = offset_s
        """How far our clock is ahead of the refuser's (by the refusal's own ``ts``)."""


@dataclass
class SyncResult:
    peer_id: str
    messages: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    entries_sent: int = 0
    entries_received: int = 0
    changed: int = 0
    failure: str | None = None
    """The ``reason`` code if the sync failed (``timeout``: the peer went silent)."""


class SyncSession:
    """One side of one sync over ``stream`` with the peer ``peer_id``."""

    def __init__(
        self,
        stream: ByteStream,
        peer_id: str,
        service: DirectoryService,
        seal: Seal,
        clock_skew: ClockSkew | None = None,
    ) -> None:
        self._stream = stream
        self._peer = peer_id_from_str(peer_id)
        self._service = service
        self._seal = seal
        self._skew = clock_skew
        self._reader = FrameReader(stream, SIZE_CAPS[KIND_DIRECTORY])
        self.result = SyncResult(peer_id)

    # -- the two roles --------------------------------------------------------------------

    async def open(self, *, full_digest: bool) -> SyncResult:
        directory = self._service.directory
        await self._send(directory.digest() if full_digest else directory.summary())
        reply = await self._receive()
        if isinstance(reply, Digest):
            if reply.ranges:
                await self._answer_digest(reply)
        elif isinstance(reply, Diff):
            await self._answer_diff(reply)
        else:
            raise SyncProtocolError(f"expected a digest or a diff, got a {_name(reply)}")
        return self.result

    async def serve(self) -> SyncResult:
        first = await self._receive()
        if isinstance(first, Summary):
            digest = self._service.directory.digest(against=first)
            await self._send(digest)
            if digest.ranges:
                await self._answer_diff(await self._expect(Diff))
        elif isinstance(first, Digest):
            await self._answer_digest(first)
        else:
            raise SyncProtocolError(f"a sync starts with a summary or digest, not a {_name(first)}")
        return self.result

    async def _answer_digest(self, digest: Digest) -> None:
        await self._send(self._service.directory.diff(digest))
        await self._absorb((await self._expect(Delta)).entries)

    async def _answer_diff(self, diff: Diff) -> None:
        await self._absorb(diff.entries)
        await self._send(self._service.directory.delta_for(diff.want))

    async def _absorb(self, entries: tuple[bytes, ...]) -> None:
        self.result.entries_received += len(entries)
        if entries:
            absorbed = await self._service.absorb(entries, "sync", self._peer)
            self.result.changed += absorbed.changed

    # -- messages -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        # Never more parts than a receiver takes: what does not fit (a newcomer to a
        # large directory) follows on the next sync.
        bodies = to_bodies(message)[:MAX_PARTS]
        for body in bodies:
            if body["type"] in ("delta", "diff"):
                self.result.entries_sent += len(body["entries"])
            data = frame(await self._seal(PROTO_SYNC, body))
            await self._stream.send_all(data)
            self.result.bytes_sent += len(data)
        await self._stream.send_all(END_OF_MESSAGE)
        self.result.messages += 1

    async def _expect(self, kind: type[_M]) -> _M:
        message = await self._receive()
        if not isinstance(message, kind):
            raise SyncProtocolError(f"expected a {kind.__name__.lower()}, got a {_name(message)}")
        return message

    async def _receive(self) -> Message:
        parts: list[Message] = []
        sealed_at = 0
        while True:
            data = await self._reader.read_frame()
            if data is None:
                raise StreamFailed("the peer closed the sync stream mid-exchange")
            if not data:
                break
            if len(parts) == MAX_PARTS:
                raise SyncProtocolError(f"a sync message of more than {MAX_PARTS} parts")
            self.result.bytes_received += len(data) + 4
            envelope = self._verify(data)
            sealed_at = envelope.ts_ms
            if self._skew is not None:
                self._skew.exchange(envelope.sender, envelope.ts_ms)
            parts.append(from_body(envelope.body))
        self.result.messages += 1
        message = _join(parts)
        if isinstance(message, Refusal):
            offset_s = (self._service.clock_ms() - sealed_at) / 1000
            raise SyncRefused(message, offset_s)
        return message

    def _verify(self, data: bytes) -> Verified:
        def check(window_ms: int = DEFAULT_WINDOW_MS) -> Verified:
            return verify(
                data,
                channel=PROTO_SYNC,
                now_ms=self._service.clock_ms(),
                transport_peer=self._peer,
                window_ms=window_ms,
                bodies=DIRECTORY_BODIES,
            )

        try:
            return check()
        except StaleTimestamp:
            # A refusal is read whatever its timestamp (see the module docstring).
            envelope = check(window_ms=MAX_TS_MS)
            if envelope.body.get("type") != "refusal":
                raise
            return envelope

    async def refuse(self, error: RemoteError) -> None:
        """Tell the peer why we give up (bounded; a peer that is gone is not waited for)."""
        refusal = Refusal(error.reason, _refusal_detail(error))
        with trio.move_on_after(REFUSAL_SEND_TIMEOUT_S):
            try:
                await self._send(refusal)
            except (StreamFailed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                logger.debug("refusal to %s not sent: %s", self.result.peer_id, exc)


def _join(parts: list[Message]) -> Message:
    """One message from its parts (a large digest, diff or delta comes in several).

    Each part was checked alone by ``from_body``; across parts the same rules must hold,
    or a peer could repeat one part 256 times to make us answer with 256 copies of the
    directory: digest ranges and items keep increasing, and no peer is wanted twice.
    """
    if not parts:
        raise SyncProtocolError("an empty sync message")
    first = parts[0]
    if any(type(part) is not type(first) for part in parts):
        raise SyncProtocolError("a sync message mixes message types")
    if len(parts) == 1:
        return first
    if isinstance(first, Summary | Refusal):
        raise SyncProtocolError(f"a {_name(first)} comes in one part")
    if isinstance(first, Digest):
        digests = [p for p in parts if isinstance(p, Digest)]
        ranges = tuple(r for d in digests for r in d.ranges)
        items = tuple(i for d in digests for i in d.items)
        if any(a[1] > b[0] for a, b in itertools.pairwise(ranges)):
            raise SyncProtocolError("digest parts overlap or are out of order")
        if any(a.peer >= b.peer for a, b in itertools.pairwise(items)):
            raise SyncProtocolError("digest items repeat or are out of order across parts")
        return Digest(ranges, items)
    if isinstance(first, Diff):
        diffs = [p for p in parts if isinstance(p, Diff)]
        want = tuple(w for d in diffs for w in d.want)
        if len(set(want)) != len(want):
            raise SyncProtocolError("a diff wants the same peer twice")
        return Diff(tuple(e for d in diffs for e in d.entries), want)
    deltas = [p for p in parts if isinstance(p, Delta)]
    return Delta(tuple(e for d in deltas for e in d.entries))


def _name(message: Message) -> str:
    return type(message).__name__.lower()


def _refusal_detail(error: RemoteError) -> str:
    """One printable line the peer's owner can read (the refusal's ``detail``)."""
    if isinstance(error, StaleTimestamp) and error.ahead_ms is not None:
        seconds = round(abs(error.ahead_ms) / 1000)
        side = "ahead of" if error.ahead_ms > 0 else "behind"
        return (
            f"your clock is {seconds} s {side} mine, beyond the envelope window: "
            "everything you send is refused until a clock is set right"
        )
    text = "".join(c if c.isprintable() else " " for c in str(error))
    return text[:MAX_REFUSAL_DETAIL_CHARS]


async def run_sync(
    role: str,
    stream: ByteStream,
    peer_id: str,
    service: DirectoryService,
    seal: Seal,
    *,
    full_digest: bool = False,
    clock_skew: ClockSkew | None = None,
) -> SyncResult:
    """Run one side of a sync, bounded by SYNC_TIMEOUT_S; count and log the outcome.

    A failure is counted in ``service.sync`` and named by ``result.failure``; a message
    we refuse is answered with a refusal, a refusal from the peer is reported
    (``sync_refused``); nothing the peer does makes this raise.
    """
    session = SyncSession(stream, peer_id, service, seal, clock_skew)
    counters = service.sync
    try:
        with trio.fail_after(SYNC_TIMEOUT_S):
            if role == "open":
                result = await session.open(full_digest=full_digest)
            else:
                result = await session.serve()
    except (RemoteError, trio.TooSlowError) as exc:
        reason = exc.reason if isinstance(exc, RemoteError) else "timeout"
        counters.failed += 1
        counters.by_reason[reason] = counters.by_reason.get(reason, 0) + 1
        counters.last_error = f"{peer_id}: {exc}"
        if isinstance(exc, SyncRefused):
            refusal = exc.refusal
            service.rejections.peer_refused(
                peer_id, PROTO_SYNC, refusal.reason, refusal.detail, exc.offset_s
            )
        elif isinstance(exc, RemoteError) and not isinstance(exc, StreamFailed):
            service.rejections.reject(peer_id_from_str(peer_id), PROTO_SYNC, exc)
            await session.refuse(exc)
        logger.info("sync (%s) with %s failed: %s", role, peer_id, exc)
        session.result.failure = reason
        return session.result
    finally:
        counters.bytes_sent += session.result.bytes_sent
        counters.bytes_received += session.result.bytes_received
        counters.entries_received += session.result.entries_received
    counters.ok += 1
    return result
