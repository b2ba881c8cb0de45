"""The control-socket commands a running node answers (see :mod:`node.control.socket`).

One JSON request in, one JSON reply out: ``publish`` (``roomverse act``), ``status``,
``directory`` (``roomverse directory``), ``set_status`` (``roomverse away|asleep|online``),
``memory`` (``roomverse memory``), ``end_visit`` (``roomverse end-visit``, the dashboard's
"End visit"); ``visit`` (``roomverse visit``) streams its replies.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Final

import trio

from keys import TOPIC_ACTIONS, TOPIC_CONTEXTS, TOPIC_DIRECTORY
from node.control.socket import Reply
from node.errors import ControlError
from node.storage.memory import OPEN, VISIT_ID
from node.visits.messages import MAX_TURNS
from node.visits.ongoing import NotVisiting
from registry_crdt import Status

if TYPE_CHECKING:
    from node.character import CharacterNode

PUBLIC_KINDS = ("action", "context")
SET_STATUS = {s.value: s for s in (Status.ONLINE, Status.AWAY, Status.ASLEEP)}
STATUS_TOPICS = (TOPIC_ACTIONS, TOPIC_CONTEXTS, TOPIC_DIRECTORY)
NO_CHARACTER = {"ok": False, "error": "this node has no character (a spectator, e.g. the firehose)"}
END_WAIT_S: Final = 20.0
"""How long ``end_visit`` waits for the visits to be over before it answers (a visit
waiting for the partner's line ends right after it; the control socket allows 30 s)."""


async def handle_control(node: CharacterNode, request: dict[str, Any]) -> Reply:
    """Answer one control-socket request (``roomverse act|status|directory|away...``)."""
    cmd = request["cmd"]
    if cmd == "visit":
        return await _visit(node, request)
    if cmd == "memory":
        return await _memory(node, request)
    if cmd == "end_visit":
        return await _end_visit(node, request)
    if cmd == "publish":
        kind = request.get("kind")
        body = request.get("body")
        if not isinstance(kind, str) or kind not in PUBLIC_KINDS or not isinstance(body, dict):
            return {"ok": False, "error": 'publish needs "kind" (action|context) and "body"'}
        body = _decode_binary_fields(body)
        envelope, recipients = await node.publish(kind, body)
        return {"ok": True, "seq": envelope.seq, "ts": envelope.ts_ms, "recipients": recipients}
    if cmd == "status":
        return {"ok": True, **status_of(node)}
    if cmd == "directory":
        search = request.get("search")
        if search is not None and not isinstance(search, str):
            return {"ok": False, "error": '"search" must be text'}
        return {
            "ok": True,
            "entries": node.directory.listing(search),
            **node.directory.summary(),
        }
    if cmd == "set_status":
        if node.spectator:
            return NO_CHARACTER
        status = SET_STATUS.get(str(request.get("status")))
        if status is None:
            return {"ok": False, "error": f"status must be one of {', '.join(SET_STATUS)}"}
        entry = await node.directory.write_own(status)
        return {
            "ok": True,
            "status": status.value,
            "clock": [entry.clock.wall_ms, entry.clock.counter],
        }
    return {"ok": False, "error": f"unknown command {cmd!r}"}


def status_of(node: CharacterNode) -> dict[str, Any]:
    return {
        "peer_id": node.identity.peer_id_str,
        "name": node.config.name,
        "addrs": node.public_addrs(),
        "peers": sorted(node.host.connected_peers()),
        "topic_peers": {topic: sorted(node.host.pubsub_peers(topic)) for topic in STATUS_TOPICS},
        "mesh_peers": {topic: sorted(node.host.mesh_peers(topic)) for topic in STATUS_TOPICS},
        "received": node.received,
        "drops": {
            "libp2p_subscription": node.host.drops.subscription_overflow,
            "buffer": node.host.drops.buffer_overflow,
            "publish_timeouts": node.host.drops.publish_timeouts,
        },
        "rejected": dict(node.rejections.by_reason),
        "refused_by_peers": dict(node.rejections.refused_by_peers),
        "outgoing_queues": node.host.outgoing_queues(),
        "gossip_link_resets": node.gossip_health.resets,
        "catch_up": node.catch_up.counters.to_json(),
        "directory": node.directory.summary(),
        "clock": node.clock_skew.reading().to_json(),
        "own_status": node.directory.status.value,
        "agent": None if node.agent is None else node.agent.describe(),
        "visiting": [] if node.agent is None else node.agent.session.ongoing.listing(),
    }


async def _visit(node: CharacterNode, request: dict[str, Any]) -> Reply:
    target = request.get("target")
    turns = request.get("turns", 0)
    private = request.get("private")
    if not isinstance(target, str) or not target:
        return {"ok": False, "error": '"target" must be a name or PeerID'}
    if isinstance(turns, bool) or not isinstance(turns, int) or not 0 <= turns <= MAX_TURNS:
        return {"ok": False, "error": f'"turns" must be a whole number 0..{MAX_TURNS}'}
    if private is not None and not isinstance(private, bool):
        return {"ok": False, "error": '"private" must be true or false'}
    if node.agent is None:
        return NO_CHARACTER
    return node.agent.visit(target, turns=turns, private=private or None)


async def _end_visit(node: CharacterNode, request: dict[str, Any]) -> dict[str, Any]:
    """End one visit in progress (``"visit"``), or every one (none given), politely; wait
    until they are over (``"wait": false``: answer at once). Raises
    :class:`NotVisiting` for a visit that is not in progress."""
    visit = request.get("visit")
    wait = request.get("wait", True)
    if visit is not None and (not isinstance(visit, str) or VISIT_ID.fullmatch(visit) is None):
        return {"ok": False, "error": '"visit" must be a visit id (32 lowercase hex characters)'}
    if not isinstance(wait, bool):
        return {"ok": False, "error": '"wait" must be true or false'}
    if node.agent is None:
        return NO_CHARACTER
    try:
        ending = node.agent.session.end(visit)
    except NotVisiting:
        if visit is None:
            raise
        stored = await node.agent.memory.conversation(visit)
        if stored is None:
            raise NotVisiting(f"no visit {visit} is in progress or in memory") from None
        if stored.visit.outcome == OPEN:
            raise NotVisiting(
                f"visit {visit} is still at the door: end it once it has begun"
            ) from None
        raise NotVisiting(f"visit {visit} is already over ({stored.visit.outcome})") from None
    if wait:
        with trio.move_on_after(END_WAIT_S):
            for ongoing in ending:
                await ongoing.ended.wait()
    return {"ok": True, "visits": [ongoing.to_json() for ongoing in ending]}


async def _memory(node: CharacterNode, request: dict[str, Any]) -> dict[str, Any]:
    if node.agent is None:
        return NO_CHARACTER
    memory = node.agent.memory
    what = request.get("what", "visits")
    limit = request.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        return {"ok": False, "error": '"limit" must be 1..1000'}
    footprints = node.agent.souvenirs.footprints
    me = {"self_name": node.config.name, "self_id": node.identity.peer_id_str}
    if what == "visits":
        rows = await memory.visits(limit)
        trails = await footprints.for_visits([row.visit_id for row in rows])
        return {
            "ok": True,
            "visits": [v.to_json() for v in rows],
            "souvenirs": {visit: [f.to_json() for f in calls] for visit, calls in trails.items()},
            **me,
        }
    if what == "relations":
        return {"ok": True, "relations": [r.to_json() for r in await memory.relations()]}
    if what == "conversation":
        visit = request.get("visit")
        conversation = await memory.conversation(visit) if isinstance(visit, str) else None
        if conversation is None:
            return {"ok": False, "error": f"no visit {visit!r} in memory"}
        calls = await footprints.for_visit(conversation.visit.visit_id)
        return {
            "ok": True,
            "conversation": conversation.to_json(),
            "souvenirs": [f.to_json() for f in calls],
            **me,
        }
    return {"ok": False, "error": "memory shows visits, relations or conversation"}


def _decode_binary_fields(body: dict[str, Any]) -> dict[str, Any]:
    """JSON cannot carry bytes: the control socket sends ``<field>_b64`` instead."""
    out = dict(body)
    for key in [k for k in out if k.endswith("_b64")]:
        value = out.pop(key)
        try:
            out[key[: -len("_b64")]] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ControlError(f"{key} is not valid base64") from None
    return out
