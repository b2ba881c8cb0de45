"""Whom to visit unprompted, and when: pure rules (the node's loop feeds them).

Every interval (with jitter, stretched or stopped by the budget tier) the character
picks someone online: by affinity and novelty, or by asking its engine. Never itself,
never a host that is away, asleep, offline or gone, and never the same host again
within the cool-down.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.config import AutonomySettings
from node.engine.budget import TierPolicy
from registry_crdt import Entry, Presence

NOVELTY_WEIGHT = 3.0
"""A character never visited weighs as much as a close friend: meeting new people matters."""


@dataclass(frozen=True, slots=True)
class Candidate:
    peer_id: str
    name: str
    description: str
    affinity: int | None
    """None: never met."""
    visits: int


def eligible(
    entries: Sequence[Entry],
    *,
    me: bytes,
    now_ms: int,
    last_visited_ms: Mapping[str, int],
    cooldown_s: float,
) -> list[Entry]:
    """Hosts we may visit now: online (not away/asleep/offline/left), taking visits (not a
    bridge), not us, not cooling."""
    out = []
    for entry in entries:
        if entry.peer == me or entry.presence(now_ms) is not Presence.ONLINE:
            continue
        if not entry.card.capabilities.accepts_visits:
            continue
        last = last_visited_ms.get(entry.peer_str)
        if last is not None and now_ms - last < cooldown_s * 1000:
            continue
        out.append(entry)
    return out


def weight(candidate: Candidate) -> float:
    """Affinity draws the character back to friends; novelty to people it never met."""
    if candidate.affinity is None:
        return NOVELTY_WEIGHT
    novelty = 1.0 / (1 + candidate.visits)
    return 0.5 + candidate.affinity / 40 + novelty


def pick_weighted(candidates: Sequence[Candidate], rng: random.Random) -> Candidate | None:
    if not candidates:
        return None
    return rng.choices(list(candidates), weights=[weight(c) for c in candidates], k=1)[0]


def next_wait_s(settings: AutonomySettings, policy: TierPolicy, rng: random.Random) -> float | None:
    """Seconds until the next autonomous visit; None while the budget tier forbids them."""
    if not settings.enabled or not policy.autonomous_visits:
        return None
    factor = policy.visit_interval_factor
    if not math.isfinite(factor):
        return None
    spread = rng.uniform(1 - settings.jitter, 1 + settings.jitter)
    return settings.interval_s * factor * spread
