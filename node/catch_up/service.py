"""When and with whom catch-up runs (the exchange itself: :mod:`node.catch_up.wire`).

On every new connection to a peer that listens on the actions topic (a connection that
came back after a loss is exactly when gossip may have lost something), and every
``interval_s`` (±25 %) with one random such peer. We offer what we stored in the last
:data:`OFFER_WINDOW_MS`, at most :data:`CANDIDATES` envelopes; we list what we hold of
twice that, so what we got early by gossip is not sent to us again. At most one
exchange we open runs per peer; peers may open one each with us, MAX_INBOUND in all.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import trio

from keys import TOPIC_ACTIONS, peer_id_from_str
from keys.errors import RemoteError
from node._libp2p.interface import Host, Stream
from node.catch_up.wire import (
    KINDS,
    MAX_ANSWER_BYTES,
    MAX_ANSWER_FRAME,
    MAX_ENVELOPES,
    MAX_HELD,
    MAX_REQUEST_BYTES,
    PROTO_CATCH_UP,
    CatchUpProtocolError,
    HeldSet,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)
from node.clock import now_ms
from node.events import EventLog
from node.storage.store import HeldEnvelope
from node.wire.frames import END_OF_MESSAGE, FrameReader, StreamFailed, frame
from node.wire.inbound import InboundLimit

logger = logging.getLogger(__name__)

OFFER_WINDOW_MS: Final = 120_000
"""We offer the public envelopes we stored in the last two minutes: well inside the
±5 min envelope window, so what we send is not refused as stale."""
HELD_WINDOW_MS: Final = 2 * OFFER_WINDOW_MS
CANDIDATES: Final = 512
DEFAULT_INTERVAL_S: Final = 10.0
EXCHANGE_TIMEOUT_S: Final = 10.0
STREAM_OPEN_TIMEOUT_S: Final = 5.0
SUBSCRIBE_WAIT_S: Final = 10.0
MAX_INBOUND: Final = 8


@dataclass(frozen=True, slots=True)
class Absorbed:
    """What became of the envelopes one answer brought."""

    stored: int = 0
    """New to us: stored and shown like gossip."""
    duplicates: int = 0
    """Held already (gossip got there first), our own, or too old to take."""
    refused: int = 0
    """Failed verification (counted and logged by the node's rejection log)."""


Accept = Callable[[Sequence[tuple[str, bytes]], str], Awaitable[Absorbed]]
"""``accept([(channel, envelope bytes), ...], relay_peer_id)``: verify and store."""


class HeldStore(Protocol):
    async def newest_held(self, *, kinds: Sequence[str], limit: int) -> list[HeldEnvelope]: ...


@dataclass
class CatchUpCounters:
    ok: int = 0
    failed: int = 0
    served: int = 0
    """Envelopes we sent to peers that lacked them."""
    fetched: int = 0
    """Envelopes peers sent us."""
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    gossip_after_catch_up: int = 0
    """Gossip copies of envelopes catch-up had brought already (not logged as replays)."""
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CatchUp:
    def __init__(
        self,
        host: Host,
        store: HeldStore,
        own_peer_id: bytes,
        accept: Accept,
        events: EventLog,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._host = host
        self._store = store
        self._own = own_peer_id
        self._accept = accept
        self._events = events
        self.interval_s = interval_s
        self._clock_ms = clock_ms
        self._inbound = InboundLimit(MAX_INBOUND)
        self._asking: set[str] = set()
        self.counters = CatchUpCounters()

    # -- serving --------------------------------------------------------------------

    async def serve(self, stream: Stream) -> None:
        """The ``/roomverse/catchup/1.0.0`` handler: send the peer what it lacks."""
        peer = stream.peer_id
        with self._inbound.admit(peer) as admitted:
            if not admitted:
                await stream.reset()
                return
            try:
                with trio.fail_after(EXCHANGE_TIMEOUT_S):
                    reader = FrameReader(stream, MAX_REQUEST_BYTES)
                    data = await reader.read_frame()
                    if data is None:
                        raise StreamFailed("the peer closed the stream before asking")
                    held = decode_request(data)
                    for item in await self._offer(peer_id_from_str(peer), held):
                        await stream.send_all(item)
                        self.counters.served += 1
                    await stream.send_all(END_OF_MESSAGE)
            except (RemoteError, trio.TooSlowError) as exc:
                self._failed(peer, "serve", exc)

    async def _offer(self, requester: bytes, held: HeldSet) -> list[bytes]:
        """Answer frames for what ``requester`` lacks of our recent envelopes, oldest
        first, within the answer's caps."""
        since = self._clock_ms() - OFFER_WINDOW_MS
        recent = await self._store.newest_held(kinds=KINDS, limit=CANDIDATES)
        lacking = [
            env
            for env in reversed(recent)
            if env.stored_ms >= since
            and env.sender != requester
            and (env.sender, env.seq) not in held
        ]
        frames: list[bytes] = []
        size = 0
        for env in lacking[:MAX_ENVELOPES]:
            data = frame(encode_answer(env.channel, env.raw))
            if size + len(data) > MAX_ANSWER_BYTES:
                break
            frames.append(data)
            size += len(data)
        return frames

    # -- asking -----------------------------------------------------------------------

    async def ask(self, peer_id: str) -> Absorbed | None:
        """One exchange with a connected peer: what it holds that we lack, verified and
        stored. None if it failed (counted and logged; never raises for the peer's faults)."""
        if peer_id in self._asking:
            return None
        self._asking.add(peer_id)
        try:
            try:
                stream = await self._host.open_stream(
                    peer_id, PROTO_CATCH_UP, timeout=STREAM_OPEN_TIMEOUT_S
                )
            except StreamFailed as exc:
                self._failed(peer_id, "open", exc)
                return None
            try:
                with trio.fail_after(EXCHANGE_TIMEOUT_S):
                    await stream.send_all(frame(await self._request()))
                    answer = await _read_answer(FrameReader(stream, MAX_ANSWER_FRAME))
                absorbed = await self._accept(answer, peer_id) if answer else Absorbed()
            except (RemoteError, trio.TooSlowError) as exc:
                self._failed(peer_id, "open", exc)
                return None
            finally:
                await stream.aclose()
        finally:
            self._asking.discard(peer_id)
        self._absorbed(peer_id, len(answer), absorbed)
        return absorbed

    async def _request(self) -> bytes:
        since = self._clock_ms() - HELD_WINDOW_MS
        recent = await self._store.newest_held(kinds=KINDS, limit=MAX_HELD)
        return encode_request(
            [(e.sender, e.seq) for e in recent if e.stored_ms >= since and e.sender != self._own]
        )

    def _absorbed(self, peer_id: str, fetched: int, absorbed: Absorbed) -> None:
        counters = self.counters
        counters.ok += 1
        counters.fetched += fetched
        counters.stored += absorbed.stored
        counters.duplicates += absorbed.duplicates
        counters.refused += absorbed.refused
        if absorbed.stored or absorbed.refused:
            self._events.emit(
                "caught_up",
                peer_id=peer_id,
                stored=absorbed.stored,
                duplicates=absorbed.duplicates,
                refused=absorbed.refused,
            )

    def _failed(self, peer_id: str, role: str, exc: Exception) -> None:
        self.counters.failed += 1
        self.counters.last_error = f"{peer_id}: {exc}"
        logger.info("catch-up (%s) with %s failed: %s", role, peer_id, exc)

    # -- when ---------------------------------------------------------------------------

    async def ask_on_connect(self, peer_id: str) -> None:
        """CatchUp from a newly connected peer once it listens on the actions topic
        (other libp2p peers are never asked)."""
        if await self._host.wait_for_subscriber(TOPIC_ACTIONS, peer_id, SUBSCRIBE_WAIT_S):
            await self.ask(peer_id)

    async def run_periodically(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(self.interval_s * (0.75 + random.random() / 2))
            peers = [p for p in self._host.pubsub_peers(TOPIC_ACTIONS) if p not in self._asking]
            if peers:
                nursery.start_soon(self.ask, random.choice(peers))


async def _read_answer(reader: FrameReader) -> list[tuple[str, bytes]]:
    answer: list[tuple[str, bytes]] = []
    size = 0
    while True:
        data = await reader.read_frame()
        if data is None:
            raise StreamFailed("the peer closed the catch-up stream mid-answer")
        if not data:
            return answer
        size += len(data)
        if len(answer) == MAX_ENVELOPES or size > MAX_ANSWER_BYTES:
            raise CatchUpProtocolError(
                f"an answer over {MAX_ENVELOPES} envelopes or {MAX_ANSWER_BYTES} bytes"
            )
        answer.append(decode_answer(data))
