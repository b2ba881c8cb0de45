"""Admitting envelopes from gossip: verify each one once, accept it once.

py-libp2p runs our topic validator on every message before it relays or delivers it;
the subscriber then sees the same bytes. :class:`EnvelopeGate` verifies in the
validator, remembers the result, and on delivery re-checks only the replay window (a
duplicate may have been accepted in between) before accepting the envelope. Which bodies
it accepts is given to it (``bodies``, see :mod:`keys.bodies`): the character passes the
validators of every kind its topics carry. Each envelope it verifies is shown to
``observe(sender, ts_ms)`` (the node's clock judgement, :mod:`node.wire.clock_skew`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from keys import BODIES, Bodies, ReplayWindow, Verified, verify

VALIDATED_CACHE = 4096
"""Verified envelopes kept between validator and consumer; past this, verify again."""

Observe = Callable[[bytes, int], None]
"""``observe(sender, ts_ms)``: an envelope ``sender`` sealed at ``ts_ms`` arrived now."""


class EnvelopeGate:
    def __init__(
        self,
        own_peer_id: bytes,
        replay: ReplayWindow,
        clock_ms: Callable[[], int],
        *,
        bodies: Bodies = BODIES,
        observe: Observe | None = None,
    ) -> None:
        self.own_peer_id = own_peer_id
        self._observe = observe
        self.replay = replay
        self._clock_ms = clock_ms
        self._bodies = bodies
        self._validated: OrderedDict[tuple[str, bytes], Verified] = OrderedDict()

    def validate(self, topic: str, origin: bytes, data: bytes) -> None:
        """The gossipsub validator's check; raises :class:`keys.EnvelopeError`."""
        if origin == self.own_peer_id:
            return  # our own publish: sealed and checked before it was sent
        envelope = self._verify(topic, origin, data)
        self._validated[(topic, data)] = envelope
        while len(self._validated) > VALIDATED_CACHE:
            self._validated.popitem(last=False)

    def admit(self, topic: str, origin: bytes, data: bytes) -> Verified:
        """A delivered message: its verified envelope, now counted in the replay window.

        Raises :class:`keys.EnvelopeError` (e.g. ``Replayed`` for a duplicate).
        """
        envelope = self._validated.pop((topic, data), None)
        if envelope is not None and envelope.sender == origin:
            self.replay.check(envelope.sender, envelope.seq)
        else:
            envelope = self._verify(topic, origin, data)
        self.replay.accept(envelope.sender, envelope.seq)
        return envelope

    def _verify(self, topic: str, origin: bytes, data: bytes) -> Verified:
        envelope = verify(
            data,
            channel=topic,
            now_ms=self._clock_ms(),
            transport_peer=origin,
            replay=self.replay,
            bodies=self._bodies,
        )
        if self._observe is not None:
            self._observe(envelope.sender, envelope.ts_ms)
        return envelope
