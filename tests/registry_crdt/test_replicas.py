"""Five replicas under random delivery converge to the same bytes, holding only honest entries.

The network delivers, duplicates, drops and retries entries, replicas disconnect and
reconnect, run anti-entropy pairwise through the real wire encoding, restart from their
snapshots and collect garbage; owners (and a bridge vouching for two legacy participants)
write with their own HLC, sometimes equivocating; forgers inject entries; time jumps by up
to a day. At quiescence — everyone reconnected, garbage collected, anti-entropy between
all pairs — every snapshot is byte-identical and equals the model: per peer, the greatest
entry ever written, unless it is past retention.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from keys import Identity, canonical, peer_id_to_str
from registry_crdt import (
    ENTRY_DOMAIN,
    HLC,
    Directory,
    DirectoryError,
    Entry,
    Status,
    legacy_peer_id,
    make_entry,
    make_vouched_entry,
    retain_until,
)
from registry_crdt.limits import HORIZON_MS, MAX_LEASE_MS, MAX_SKEW_MS
from registry_crdt.testing import identities, sample_card, sync

REPLICAS = 5
START = 1_700_000_000_000
OWNERS = identities(4, seed=8)
(BRIDGE,) = identities(1, seed=9)
HANDLES = ("madoguchi-a", "madoguchi-b")
(MALLORY,) = identities(1, seed=10)
ADDRS = ("/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.2/tcp/4001", "/dns4/mina.example/tcp/4001")
URLS = ("https://a.example", "https://b.example")
STEPS = [0, 1, 1000, 60_000, MAX_LEASE_MS, HORIZON_MS // 2, HORIZON_MS]


@dataclass
class Writer:
    signer: Identity
    handle: str | None
    home: int
    hlc: HLC

    @property
    def peer(self) -> bytes:
        if self.handle is None:
            return self.signer.peer_id
        return legacy_peer_id(self.signer.peer_id, self.handle)

    def write(self, fresh: bool, status: Status, variant: int, lease: int, now: int) -> Entry:
        clock = self.hlc.tick(now) if fresh else self.hlc.last
        card = sample_card(peer_id_to_str(self.peer))
        if self.handle is None:
            addrs = [ADDRS[variant % len(ADDRS)]]
            return make_entry(self.signer, card, addrs, status, clock, lease, now)
        urls = [URLS[variant % len(URLS)]]
        return make_vouched_entry(self.signer, self.handle, card, urls, status, clock, lease, now)


class Network(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.replicas = [Directory() for _ in range(REPLICAS)]
        self.up = [True] * REPLICAS
        self.inflight: list[tuple[int, bytes]] = []
        self.dropped: list[tuple[int, bytes]] = []
        self.writers = [Writer(o, None, i % REPLICAS, HLC()) for i, o in enumerate(OWNERS)]
        self.writers += [Writer(BRIDGE, h, REPLICAS - 1, HLC()) for h in HANDLES]
        self.made: dict[bytes, Entry] = {}

    # --- owners ------------------------------------------------------------------------

    @rule(
        writer=st.integers(0, len(OWNERS) + len(HANDLES) - 1),
        status=st.sampled_from(list(Status)),
        variant=st.integers(0, 5),
        lease=st.sampled_from([1, 60_000, MAX_LEASE_MS]),
    )
    def write(self, writer: int, status: Status, variant: int, lease: int) -> None:
        self.publish(self.writers[writer], True, status, variant, lease, everyone=True)

    @rule(
        writer=st.integers(0, len(OWNERS) + len(HANDLES) - 1),
        status=st.sampled_from(list(Status)),
        variant=st.integers(0, 5),
        to=st.integers(0, REPLICAS - 1),
    )
    def equivocate(self, writer: int, status: Status, variant: int, to: int) -> None:
        """Sign other content with the clock of the last write, and tell only one replica."""
        who = self.writers[writer]
        if who.hlc.last.wall_ms == 0:
            return
        self.publish(who, False, status, variant, 60_000, everyone=False, to=to)

    def publish(
        self,
        who: Writer,
        clock_is_new: bool,
        status: Status,
        variant: int,
        lease: int,
        *,
        everyone: bool,
        to: int = 0,
    ) -> None:
        entry = who.write(clock_is_new, status, variant, lease, self.now)
        self.made[entry.raw] = entry
        self.replicas[who.home].apply(entry, self.now)
        targets = [r for r in range(REPLICAS) if r != who.home] if everyone else [to]
        self.inflight += [(r, entry.raw) for r in targets]

    # --- the network -------------------------------------------------------------------

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 10**6))
    def deliver(self, pick: int) -> None:
        target, raw = self.inflight.pop(pick % len(self.inflight))
        if not self.up[target]:
            self.dropped.append((target, raw))
            return
        before = self.held()
        self.replicas[target].receive(raw, self.now)  # honest entries are never refused
        self.check_nothing_stored_past_retention(before)

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 10**6))
    def duplicate(self, pick: int) -> None:
        self.inflight.append(self.inflight[pick % len(self.inflight)])

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 10**6))
    def drop(self, pick: int) -> None:
        self.dropped.append(self.inflight.pop(pick % len(self.inflight)))

    @precondition(lambda self: self.dropped)
    @rule(pick=st.integers(0, 10**6))
    def retry(self, pick: int) -> None:
        self.inflight.append(self.dropped.pop(pick % len(self.dropped)))

    @rule(replica=st.integers(0, REPLICAS - 1))
    def disconnect(self, replica: int) -> None:
        self.up[replica] = False

    @rule(replica=st.integers(0, REPLICAS - 1))
    def reconnect(self, replica: int) -> None:
        self.up[replica] = True

    @rule(a=st.integers(0, REPLICAS - 1), b=st.integers(0, REPLICAS - 1), use_summary=st.booleans())
    def anti_entropy(self, a: int, b: int, use_summary: bool) -> None:
        if a == b or not (self.up[a] and self.up[b]):
            return
        before = self.held()
        stats = sync(self.replicas[a], self.replicas[b], self.now, use_summary=use_summary)
        assert stats.rejected == []
        self.check_nothing_stored_past_retention(before)

    @rule(
        replica=st.integers(0, REPLICAS - 1),
        forgery=st.sampled_from(["bit_flip", "signed_by_other", "future", "fake_vouch"]),
        pick=st.integers(0, 10**6),
    )
    def forge(self, replica: int, forgery: str, pick: int) -> None:
        if forgery == "bit_flip" and self.made:
            raws = sorted(self.made)
            raw = bytearray(raws[pick % len(raws)])
            raw[pick % len(raw)] ^= 1 << (pick % 8)
            data = bytes(raw)
        elif forgery == "signed_by_other":
            fields = canonical.unpackb(next(iter(self.made), b"") or _honest_raw(self.now))
            fields["status"] = "left"
            del fields["sig"]
            data = canonical.packb({**fields, "sig": MALLORY.sign(b"x")})
        elif forgery == "future":
            writer = Writer(MALLORY, None, 0, HLC())
            data = writer.write(True, Status.ONLINE, 0, 60_000, self.now + MAX_SKEW_MS).raw
            data = _shift_clock(data, self.now)
        else:
            peer = self.writers[pick % len(OWNERS)].signer
            data = _fake_vouch(peer, self.now)
        before = self.replicas[replica].snapshot()
        with pytest.raises(DirectoryError):
            self.replicas[replica].receive(data, self.now)
        assert self.replicas[replica].snapshot() == before

    # --- replicas and time -------------------------------------------------------------

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: int) -> None:
        self.now += step

    @rule(replica=st.integers(0, REPLICAS - 1))
    def collect_garbage(self, replica: int) -> None:
        self.replicas[replica].collect_garbage(self.now)

    @rule(replica=st.integers(0, REPLICAS - 1))
    def restart(self, replica: int) -> None:
        old = self.replicas[replica]
        restored = Directory.restore(old.snapshot(), self.now)
        old.collect_garbage(self.now)
        assert restored.snapshot() == old.snapshot()
        self.replicas[replica] = restored

    # --- what must always hold -------------------------------------------------------------

    def held(self) -> list[set[bytes]]:
        return [{e.raw for e in directory.entries()} for directory in self.replicas]

    def check_nothing_stored_past_retention(self, before: list[set[bytes]]) -> None:
        """A late entry that replicas may already have forgotten is never taken back in."""
        for old, new in zip(before, self.held(), strict=True):
            for raw in new - old:
                assert self.now < retain_until(self.made[raw].clock)

    @invariant()
    def only_honest_entries_are_held(self) -> None:
        for directory in self.replicas:
            for entry in directory.entries():
                assert self.made.get(entry.raw) == entry
                if entry.vouch is None:
                    assert entry.signer == entry.peer
                else:
                    assert entry.signer == BRIDGE.peer_id
                    assert entry.peer == legacy_peer_id(BRIDGE.peer_id, entry.vouch.handle)

    def teardown(self) -> None:
        self.up = [True] * REPLICAS
        for directory in self.replicas:
            directory.collect_garbage(self.now)
        for _ in range(2):
            for a in range(REPLICAS):
                for b in range(a + 1, REPLICAS):
                    sync(self.replicas[a], self.replicas[b], self.now, use_summary=(a + b) % 2 == 0)
        snapshots = {directory.snapshot() for directory in self.replicas}
        assert len(snapshots) == 1
        best: dict[bytes, Entry] = {}
        for entry in self.made.values():
            held = best.get(entry.peer)
            if held is None or entry.wins_over(held):
                best[entry.peer] = entry
        model = Directory(e for e in best.values() if self.now < retain_until(e.clock))
        assert snapshots == {model.snapshot()}


def _honest_raw(now: int) -> bytes:
    return Writer(OWNERS[0], None, 0, HLC()).write(True, Status.ONLINE, 0, 60_000, now).raw


def _shift_clock(raw: bytes, now: int) -> bytes:
    """Re-sign Mallory's entry with a clock a day ahead (her own key: only the clock is bad)."""
    fields = canonical.unpackb(raw)
    del fields["sig"]
    fields["clock"] = [now + 86_400_000, 0]
    fields["expiresAt"] = now + 86_400_000 + 1
    return canonical.packb({**fields, "sig": MALLORY.sign(ENTRY_DOMAIN + canonical.packb(fields))})


def _fake_vouch(victim: Identity, now: int) -> bytes:
    """Mallory, posing as a bridge, vouches for a real character's PeerID."""
    fields = canonical.unpackb(_honest_raw(now))
    del fields["sig"]
    fields["peer"] = victim.peer_id
    fields["vouch"] = {"by": MALLORY.peer_id, "handle": "victim"}
    fields["addrs"] = ["https://evil.example"]
    return canonical.packb({**fields, "sig": MALLORY.sign(ENTRY_DOMAIN + canonical.packb(fields))})


Network.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_replicas_converge = Network.TestCase
