"""A rogue libp2p peer for tests: publishes whatever bytes the test hands it.

Run as ``python tests/support/rogue.py --seed-file PATH [--topic T ...]``. It starts a libp2p
host through :func:`node._libp2p.open_p2p_host` (gossipsub, strict signing: the gossipsub
origin of everything it publishes is its own peer id) with the Ed25519 seed in
``PATH``, subscribes to the topics (default ``roomverse/1/actions``), prints::

    {"event": "ready", "peer_id": "12D3KooW...", "addrs": [...]}

and then reads one JSON command per line on stdin, answering each with one JSON line
that echoes the command's ``id``:

* ``{"id": 1, "cmd": "dial", "addr": "/ip4/127.0.0.1/tcp/N/p2p/12D3...", "topic": T}``
  dials, then waits until the peer subscribes to ``T`` and is in our gossipsub mesh
  for ``T`` (so a publish reaches it) → ``{"id": 1, "event": "dialed", "peer_id": ...}``
* ``{"id": 2, "cmd": "publish", "topic": T, "data_b64": "..."}``
  → ``{"id": 2, "event": "published", "size": N}``
* ``{"id": 3, "cmd": "publish_unchecked", "topic": T, "data_b64": "..."}`` queues one
  signed gossipsub message for each topic peer, skipping our own outbound size check
  (py-libp2p drops an RPC over 1 MiB before sending it)
  → ``{"id": 3, "event": "published", "size": N, "peers": P, "queued": Q}``
* ``{"id": 4, "cmd": "write_frame", "peer_id": ..., "frame_b64": "..."}`` writes one
  length-prefixed frame of any bytes on our pubsub stream to the peer, as if it were an
  RPC → ``{"id": 4, "event": "written", "size": N}``
* ``{"id": 5, "cmd": "sync_stream", "peer_id": ..., "data_b64": "...", "protocol": ...}``
  opens ``protocol`` (default ``/roomverse/sync/1.0.0``) to the peer, writes the bytes,
  and reads whatever comes back until the peer closes or resets the stream
  → ``{"id": 5, "event": "synced", "read": N}``
* ``{"id": 6, "cmd": "quit"}`` → ``{"id": 5, "event": "bye"}``, then exits.

A command that fails answers ``{"id": ..., "event": "error", "error": "..."}`` and the
process keeps reading. End of stdin also exits.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.utils.varint import encode_uvarint

from keys import PROTO_SYNC, TOPIC_ACTIONS
from node._libp2p import P2PHost, open_p2p_host, split_peer_addr
from node.clock import poll_until
from node.wire.frames import StreamFailed

DIAL_TIMEOUT_S = 10.0
MESH_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 5.0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def in_mesh(host: P2PHost, topic: str, peer_id: str) -> bool:
    """Whether ``peer_id`` is in our gossipsub mesh for ``topic``.

    P2PHost does not expose the router; a test helper may look inside. A subscribed
    gossipsub peer publishes only to its mesh, which fills on the next heartbeat
    (GRAFT) after the remote's subscription arrives, so publishing before that loses
    the message.
    """
    mesh = host._pubsub.router.mesh.get(topic, set())
    return any(peer.to_base58() == peer_id for peer in mesh)


def forget_addrs(host: P2PHost, addr: str) -> None:
    """Drop what the peerstore remembers about the addresses of ``addr``'s peer.

    py-libp2p 0.8.1 appends every address it learns for a peer and dials only the first
    TCP one (``Swarm.dial_peer``: MAX_ADDRS_PER_PEER, at most one per transport class),
    so once a peer restarts on a new port, dialing its new address keeps trying the old,
    dead one. The test restarts the node it dials, so the rogue forgets the old address.
    """
    _, peer_id = split_peer_addr(addr)
    host._host.get_peerstore().clear_addrs(ID.from_base58(peer_id))


async def wait_in_mesh(host: P2PHost, topic: str, peer_id: str) -> bool:
    """Poll (bounded: :data:`MESH_TIMEOUT_S`) until ``peer_id`` is in our mesh: the
    runtime's own wait (the rogue is a peer process; it answers, it does not assert)."""
    return await poll_until(lambda: in_mesh(host, topic, peer_id), MESH_TIMEOUT_S)


def publish_unchecked(host: P2PHost, topic: str, data: bytes) -> tuple[int, int]:
    """Sign ``data`` as Pubsub.publish does and queue it for every peer on ``topic``.

    Goes straight onto each peer's outbound RPC queue, skipping the size check of
    ``GossipSub.send_rpc`` (which drops an RPC over 1 MiB); the per-peer sender task then
    writes it in turn with everything else, so frames never interleave.
    Returns (peers on the topic, RPCs queued).
    """
    pubsub = host._pubsub
    msg = rpc_pb2.Message(
        data=data,
        topicIDs=[topic],
        from_id=pubsub.my_id.to_bytes(),
        seqno=pubsub._next_seqno(),
    )
    assert pubsub.sign_key is not None, "open_p2p_host runs gossipsub with strict signing"
    msg.signature = pubsub.sign_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
    msg.key = pubsub.host.get_public_key().serialize()
    peers = list(pubsub.peer_topics.get(topic, set()))
    queued = 0
    for peer in peers:
        queue = pubsub.peer_queues.get(peer)
        if queue is not None and queue.push(rpc_pb2.RPC(publish=[msg])):
            queued += 1
    return len(peers), queued


async def write_frame(host: P2PHost, peer_id: str, frame: bytes) -> None:
    """Write one length-prefixed ``frame`` (any bytes) on our pubsub stream to ``peer_id``.

    Bypasses the sender task: call it only while nothing else is being sent to the peer.
    """
    pubsub = host._pubsub
    stream = pubsub.peers[ID.from_base58(peer_id)]
    with trio.fail_after(WRITE_TIMEOUT_S):
        await stream.write(encode_uvarint(len(frame)) + frame)


async def protocol_stream(host: P2PHost, peer_id: str, protocol: str, data: bytes) -> int:
    """Write ``data`` on a ``protocol`` stream to ``peer_id``; count what comes back."""
    stream = await host.open_stream(peer_id, protocol, timeout=WRITE_TIMEOUT_S)
    read = 0
    try:
        with trio.fail_after(WRITE_TIMEOUT_S):
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                read += len(chunk)
    except StreamFailed:
        pass  # a reset is one way for the node to say no
    finally:
        await stream.aclose()
    return read


async def handle(host: P2PHost, request: dict[str, Any]) -> bool:
    """Run one command and print its answer; False once asked to quit."""
    ident = request.get("id")
    cmd = request.get("cmd")
    if cmd == "dial":
        topic = str(request.get("topic", TOPIC_ACTIONS))
        addr = str(request["addr"])
        forget_addrs(host, addr)
        peer = await host.dial(addr, timeout=DIAL_TIMEOUT_S)
        if not await wait_in_mesh(host, topic, peer):
            emit("error", id=ident, error=f"{peer} not in our mesh for {topic}")
            return True
        emit("dialed", id=ident, peer_id=peer)
        return True
    if cmd == "publish":
        data = base64.b64decode(str(request["data_b64"]), validate=True)
        await host.publish(str(request["topic"]), data)
        emit("published", id=ident, size=len(data))
        return True
    if cmd == "publish_unchecked":
        data = base64.b64decode(str(request["data_b64"]), validate=True)
        peers, queued = publish_unchecked(host, str(request["topic"]), data)
        emit("published", id=ident, size=len(data), peers=peers, queued=queued)
        return True
    if cmd == "write_frame":
        frame = base64.b64decode(str(request["frame_b64"]), validate=True)
        await write_frame(host, str(request["peer_id"]), frame)
        emit("written", id=ident, size=len(frame))
        return True
    if cmd == "sync_stream":
        data = base64.b64decode(str(request["data_b64"]), validate=True)
        protocol = str(request.get("protocol", PROTO_SYNC))
        read = await protocol_stream(host, str(request["peer_id"]), protocol, data)
        emit("synced", id=ident, read=read)
        return True
    if cmd == "quit":
        emit("bye", id=ident)
        return False
    emit("error", id=ident, error=f"unknown command {cmd!r}")
    return True


async def serve_commands(host: P2PHost) -> None:
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.buffer.readline)
        if not line:
            return
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            emit("error", id=None, error=f"bad command line: {exc}")
            continue
        try:
            if not await handle(host, request):
                return
        except Exception as exc:  # report and keep going: the test decides what fails
            emit("error", id=request.get("id"), error=f"{type(exc).__name__}: {exc}")


async def main(seed: bytes, topics: list[str]) -> None:
    async with open_p2p_host(seed, ["/ip4/127.0.0.1/tcp/0"]) as host:
        # Never read: what peers send us (greetings, relays) just sits in the buffer.
        subscriptions = [await host.subscribe(topic) for topic in topics]
        emit("ready", peer_id=host.peer_id, addrs=host.listen_addrs(), topics=topics)
        await serve_commands(host)
        for subscription in subscriptions:
            await subscription.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-file", type=Path, required=True, help="32-byte Ed25519 seed")
    parser.add_argument("--topic", action="append", help="repeatable; default: actions")
    args = parser.parse_args()
    trio.run(main, args.seed_file.read_bytes(), args.topic or [TOPIC_ACTIONS])
