"""One visit's stream: signed ``visit`` envelopes, one per frame, read with a deadline.

Envelopes are checked like gossip (signature, the Noise-authenticated sender, the
timestamp window) but not against the replay window: every message names the visit and
turn it belongs to, and :class:`node.visits.conversation.Conversation` refuses anything
out of place, so a replayed envelope cannot enter a visit. The channel itself polices
nothing about order: the session feeds what it sends and receives through its
conversation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import trio

from keys import PROTO_VISIT, Verified, peer_id_from_str, verify
from keys.errors import RemoteError
from keys.kinds import KIND_VISIT, SIZE_CAPS
from node.visits.conversation import VisitProtocolError
from node.visits.messages import VISIT_BODIES, VisitMessage, from_body, to_body
from node.wire.frames import ByteStream, FrameReader, StreamFailed, frame

Seal = Callable[[str, str, Mapping[str, Any]], Awaitable[bytes]]
"""``seal(kind, channel, body) -> envelope bytes`` with our next seq."""


class PartnerSilent(RemoteError):
    """The other side sent nothing within the time allowed."""

    reason = "partner_silent"


class PartnerGone(StreamFailed):
    """The other side closed or reset the stream, or its process is gone."""

    reason = "partner_gone"


MAX_FRAME: Final = SIZE_CAPS[KIND_VISIT]
VANISHED: Final = frozenset({PartnerGone.reason, PartnerSilent.reason, StreamFailed.reason})
"""Why a stream ends when the partner goes away: not held against them."""


class VisitChannel:
    def __init__(
        self,
        stream: ByteStream,
        partner_id: str,
        seal: Seal,
        clock_ms: Callable[[], int],
    ) -> None:
        self.stream = stream
        self.partner_id = partner_id
        self.partner = peer_id_from_str(partner_id)
        self._seal = seal
        self._clock_ms = clock_ms
        self._reader = FrameReader(stream, MAX_FRAME)

    async def send(self, message: VisitMessage) -> bytes:
        """Seal and send ``message``; returns the envelope (receipts keep it)."""
        raw = await self._seal(KIND_VISIT, PROTO_VISIT, to_body(message))
        try:
            await self.stream.send_all(frame(raw))
        except (trio.BrokenResourceError, trio.ClosedResourceError, StreamFailed) as exc:
            raise PartnerGone(f"could not send to {self.partner_id}: {exc}") from exc
        return raw

    async def receive(self, timeout_s: float) -> tuple[Verified, VisitMessage]:
        """The next message, verified; raises a :class:`RemoteError` for anything else."""
        with trio.move_on_after(timeout_s):
            try:
                raw = await self._reader.read_frame()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise PartnerGone(f"{self.partner_id} went away: {exc}") from exc
            except StreamFailed as exc:
                if type(exc) is StreamFailed:
                    raise PartnerGone(f"{self.partner_id} went away: {exc}") from exc
                raise
            if raw is None:
                raise PartnerGone(f"{self.partner_id} closed the visit stream")
            if not raw:
                raise VisitProtocolError("an empty frame on the visit stream")
            envelope = verify(
                raw,
                channel=PROTO_VISIT,
                now_ms=self._clock_ms(),
                transport_peer=self.partner,
                bodies=VISIT_BODIES,
            )
            return envelope, from_body(envelope.body)
        raise PartnerSilent(f"{self.partner_id} said nothing for {timeout_s:.0f}s")

    async def close(self) -> None:
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(2),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, StreamFailed),
        ):
            await self.stream.aclose()
