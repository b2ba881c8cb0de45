"""Two :class:`VisitSession` s over an in-memory stream pair, for tests of one visit:
real signed envelopes and frames, real SQLite memory with redaction, a scripted voice
(:class:`node.testing.voice.ScriptedVoice`), and each side's events kept to read back."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from keys import Identity, seal
from keys.errors import RemoteError
from node.agent.relations import RelationKeeper
from node.clock import now_ms
from node.config import VisitSettings
from node.events import EventLog
from node.privacy.redact import redact
from node.storage.memory import Memory
from node.storage.store import Store
from node.testing.voice import ScriptedVoice
from node.visits.contracts import Partner, VisitResult
from node.visits.conversation import Line
from node.visits.messages import VISIT_BODIES, Knock
from node.visits.session import VisitSession
from node.visits.wire import VisitChannel
from registry_crdt import Status

_seq = itertools.count(1)


class Side:
    def __init__(self, tmp_path: Path, name: str, **settings: Any) -> None:
        self.identity = Identity.generate()
        self.name = name
        self.store = Store(tmp_path / f"{name}.db")
        self.memory = Memory(self.store.db, redact)
        self.events_out = io.StringIO()
        events = EventLog("json", self.events_out)
        self.voice = ScriptedVoice(name)
        self.rejected: list[RemoteError] = []
        self.published: list[tuple[str, Line]] = []
        self.session = VisitSession(
            me=self.identity.peer_id,
            name=name,
            card=lambda: bytes(32),
            settings=VisitSettings(**settings),
            voice=self.voice,
            memory=self.memory,
            relations=RelationKeeper(self.memory, events, now_ms),
            events=events,
            clock_ms=now_ms,
            status=lambda: Status.ONLINE,
            may_reply=lambda: True,
            on_line=self._on_line,
            reject=lambda peer, channel, exc: self.rejected.append(exc),
            turn_timeout_s=120.0,
        )

    async def _on_line(self, visit: str, partner: Partner, line: Line, mine: bool) -> None:
        if mine and visit not in self.session.private_visits:
            self.published.append((visit, line))

    def partner(self) -> Partner:
        return Partner(self.identity.peer_id_str, self.name)

    def describe(self, peer_id: str, knock: Knock) -> Partner:
        return Partner(peer_id, knock.name)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The events called ``name`` this side emitted, in order."""
        records = [json.loads(line) for line in self.events_out.getvalue().splitlines()]
        return [record for record in records if record["event"] == name]


def channels(a: Side, b: Side) -> tuple[VisitChannel, VisitChannel]:
    left, right = trio.testing.memory_stream_pair()
    return (
        VisitChannel(left, b.identity.peer_id_str, sealer(a.identity), now_ms),
        VisitChannel(right, a.identity.peer_id_str, sealer(b.identity), now_ms),
    )


def sealer(identity: Identity) -> Any:
    async def seal_it(kind: str, channel: str, body: Mapping[str, Any]) -> bytes:
        return seal(
            identity,
            kind=kind,
            channel=channel,
            seq=next(_seq),
            ts_ms=now_ms(),
            body=body,
            bodies=VISIT_BODIES,
        )

    return seal_it


@asynccontextmanager
async def sides(tmp_path: Path, *names: str, **settings: Any) -> AsyncIterator[list[Side]]:
    made = [Side(tmp_path, name, **settings) for name in names]
    try:
        yield made
    finally:
        for side in made:
            side.store.close()


async def visit(
    guest: Side, host: Side, *, turns: int = 0, private: bool | None = None
) -> tuple[VisitResult, VisitResult | None]:
    to_host, to_guest = channels(guest, host)
    hosted: list[VisitResult | None] = []

    async def serve() -> None:
        result = await host.session.host(to_guest, host.describe)
        if result is not None:
            await host.session.remember(result)
        hosted.append(result)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        line = await guest.session.opening(host.partner())
        ours = await guest.session.guest(
            to_host, host.partner(), line, turns=turns, private=private
        )
    return ours, hosted[0]


__all__ = ["Side", "channels", "sealer", "sides", "visit"]
