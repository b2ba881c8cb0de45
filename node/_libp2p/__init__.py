"""The one package that imports py-libp2p (a test enforces it).

Everything else in RoomVerse talks to the network through :class:`P2PHost`, whose
surface is plain Python types (strings for multiaddrs and peer ids, bytes for payloads),
so py-libp2p's quirks stay here and the rest of the code stays testable.

py-libp2p 0.8.1 drops messages silently with its defaults (see shared/FIELD-NOTES.md);
what this module does about each:

* the gossipsub spam cap (10 msg/s per topic per forwarding peer, own publishes
  included) is switched off: our own envelope checks and rate limits are the defence;
* the heartbeat defaults to 120 s; we run it every second so meshes repair quickly;
* ``publish()`` never waits and the per-peer outgoing queues hold 32 RPCs: before each
  publish we wait while any peer queue is at least half full (backpressure);
* the gossipsub message id is (author, seqno) and the seqno counter restarts from the
  wall clock in seconds, so a restarted node repeats ids: we seed it in nanoseconds;
* every message triggers an IDONTWANT to each meshsub/1.2 peer: we keep 1.2 but send
  them only for relayed messages of at least 1 KiB, as go-libp2p does;
* the subscription channel holds 32 messages and ``send_nowait`` drops when it is
  full: each subscription gets a task that only moves messages into our own large
  buffer, and py-libp2p's "fail to deliver" warnings are counted, never ignored;
* it publishes only to the topic mesh, and to nobody while the mesh is empty: our own
  messages go to every subscribed peer (go-libp2p's "flood publish");
* it forgets a peer's subscriptions whenever one of its connections ends, even with
  another one alive: we keep them (the peer never announces them again);
* it refuses, for 60 s, to redial a peer whose last dial failed: our backoff decides;
* a failed stream request is cleaned up in a *shielded* reset that, on a dead link,
  blocks until TCP gives up: we stop waiting for it and reset late streams;
* closing a connection first writes a GO_AWAY, which waits behind a full socket
  buffer on a dead link: we close the TCP sockets under it first;
* with ``LIBP2P_DEBUG`` set it logs (payloads in hex included) through handlers of its
  own, past ours and their PII filter: :func:`route_logging_to_root` takes them over.

Modules: :mod:`.host` (P2PHost, open_p2p_host), :mod:`.routers` (the Pubsub and
GossipSub subclasses), :mod:`.streams` (P2PStream), :mod:`.sockets` (the TCP sockets
under a connection and ``TCP_INFO``), :mod:`.peer_events` (delivered messages, peers
coming and going), :mod:`.addrs` (multiaddr parsing), :mod:`.logs` (py-libp2p's logging).
"""

from node._libp2p.addrs import DialError, split_peer_addr, validate_listen_addr
from node._libp2p.host import MESHSUB_PROTOCOLS, P2PHost, Validator, open_p2p_host
from node._libp2p.logs import route_logging_to_root
from node._libp2p.peer_events import PeerEvent, PubsubMessage
from node._libp2p.routers import DropCounters
from node._libp2p.streams import (
    P2PStream,
    PingTimeout,
    StreamHandler,
    StreamOpenFailed,
    StreamOpenTimeout,
)

__all__ = [
    "MESHSUB_PROTOCOLS",
    "DialError",
    "DropCounters",
    "P2PHost",
    "P2PStream",
    "PeerEvent",
    "PingTimeout",
    "PubsubMessage",
    "StreamHandler",
    "StreamOpenFailed",
    "StreamOpenTimeout",
    "Validator",
    "open_p2p_host",
    "route_logging_to_root",
    "split_peer_addr",
    "validate_listen_addr",
]
