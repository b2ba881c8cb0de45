"""Which public envelopes concern our character, as :class:`Stimulus` es.

- A context from our own owner (our own envelope) for us: without ``to``, or ``to`` us
  or everyone (:data:`keys.bodies.EVERYONE`).
- A context from another character for us or for everyone (one without ``to`` is that
  character's owner talking to it: not ours to answer).
- A ``speak`` or ``gesture`` from another character with ``to`` = us. Speech that belongs
  to a visit (it carries ``visit``) is not: the visit itself answers it.
- A ``move`` from another character to our place (``to`` = us).

Nothing else: never our own actions, and nothing aimed at someone else. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keys import Verified
from keys.bodies import EVERYONE
from node.agent.prompts.reaction import Heard


@dataclass(frozen=True, slots=True)
class Stimulus:
    sender: str
    """The PeerID of the one who acted (ours, for our owner's context)."""
    seq: int
    heard: Heard
    ts_ms: int
    """When the one who acted did (its envelope's timestamp)."""


def stimulus_of(envelope: Verified, me: str) -> Stimulus | None:
    """What ``envelope`` asks our character (PeerID ``me``) to react to, if anything."""
    body = envelope.body
    to = body.get("to")
    own = envelope.sender_str == me
    heard: Heard | None = None
    if envelope.kind == "context":
        if (own and to in (None, me, EVERYONE)) or (not own and to in (me, EVERYONE)):
            heard = _context(body, own)
    elif envelope.kind == "action" and not own and to == me:
        action = body.get("type")
        if action == "speak" and "visit" not in body:
            heard = Heard("speak", str(body.get("text", "")))
        elif action == "gesture":
            heard = Heard("gesture", str(body.get("name", "")))
        elif action == "move":
            heard = Heard("move")
    if heard is None:
        return None
    return Stimulus(envelope.sender_str, envelope.seq, heard, envelope.ts_ms)


def _context(body: Any, own: bool) -> Heard:
    if body.get("type") == "image":
        return Heard("context", str(body.get("alt", "")), image=True, from_owner=own)
    return Heard("context", str(body.get("text", "")), from_owner=own)


__all__ = ["Stimulus", "stimulus_of"]
