"""Finding dead connections fast, so the dialer can replace them.

A partition or a pulled cable leaves TCP connections open but mute; after a heal, TCP's
retransmission backoff keeps them mute for up to a minute more, while gossipsub goes on
sending into them. :class:`Liveness` asks the kernel every LIVENESS_CHECK_S which
connections have had data unacknowledged for WEDGED_AFTER_S (see
``P2PHost.close_wedged``) and closes those, reporting their peers as unresponsive. A
connection superseded by a newer one to the same peer is closed too, but not reported:
the peer is on the newer one; and the two connections of a simultaneous dial (both
peers dialling at once, as at every start-up on a LAN) are neither — both stay; it also
pings every peer each
PING_INTERVAL_S, which keeps data in flight on connections nothing else uses and, as a
fallback where the kernel cannot tell, drops a peer that misses SILENT_STRIKES pings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from node import _libp2p
from node.wire.frames import StreamFailed

logger = logging.getLogger(__name__)

LIVENESS_CHECK_S = 1.0
WEDGED_AFTER_S = 3.0
PING_INTERVAL_S = 15.0
PING_TIMEOUT_S = 5.0
SILENT_STRIKES = 2

LostConnection = Callable[[str, str], None]
"""``lost(peer_id, reason)``: a dead connection to the peer was closed."""


class Liveness:
    def __init__(self, host: _libp2p.P2PHost, lost: LostConnection) -> None:
        self._host = host
        self._lost = lost
        self._pinging: set[str] = set()
        self._strikes: dict[str, int] = {}

    async def run(self, nursery: trio.Nursery) -> None:
        next_ping = trio.current_time()
        while True:
            for peer_id in await self._host.close_wedged(WEDGED_AFTER_S):
                self._lost(peer_id, "tcp_unacknowledged")
            if trio.current_time() >= next_ping:
                next_ping = trio.current_time() + PING_INTERVAL_S
                for peer_id in self._host.connected_peers():
                    if peer_id not in self._pinging:
                        self._pinging.add(peer_id)
                        nursery.start_soon(self._check, peer_id)
            await trio.sleep(LIVENESS_CHECK_S)

    async def _check(self, peer_id: str) -> None:
        try:
            await self._host.ping(peer_id, timeout=PING_TIMEOUT_S)
        except (_libp2p.PingTimeout, _libp2p.StreamOpenTimeout) as exc:
            strikes = self._strikes[peer_id] = self._strikes.get(peer_id, 0) + 1
            if strikes >= SILENT_STRIKES:
                del self._strikes[peer_id]
                await self._host.disconnect(peer_id)
                self._lost(peer_id, exc.reason)
        except StreamFailed as exc:
            logger.debug("ping %s failed: %s", peer_id, exc)
        else:
            self._strikes.pop(peer_id, None)
        finally:
            self._pinging.discard(peer_id)
