"""The online directory of RoomVerse as a CRDT (DESIGN §4). Sans-IO: time is ``now_ms``.

``DIRECTORY_BODIES`` is the ``directory`` envelope body schema: pass it to ``keys.verify``
and ``keys.seal`` (``bodies=``) wherever directory envelopes travel.

Writing (the owner's node)::

    hlc = HLC(last=own_entry.clock if own_entry else ZERO)
    card = NameCard(id=me.peer_id_str, name="Mina", ...)
    entry = make_entry(me, card, addrs, Status.ONLINE, hlc.tick(now_ms), lease_ms, now_ms)
    directory.apply(entry, now_ms)
    publish(to_bodies(Delta((entry.raw,))))          # renew before the lease lapses

A bridge vouches for a legacy HTTP participant with ``make_vouched_entry(bridge,
handle, card, urls, ...)``; its PeerID is ``legacy_peer_id(bridge.peer_id, handle)``.

Receiving: ``message = from_body(verified.body)``, then for each raw entry
``directory.receive(raw, now_ms)`` (= ``apply(verify_entry(raw, now_ms), now_ms)``, with
duplicates skipped by hash) → :class:`ApplyResult` (new, updated, duplicate, stale,
equivocation, beyond_horizon), or a :class:`DirectoryError` with a ``reason``.

Anti-entropy (see :mod:`registry_crdt.messages`): ``summary()`` → ``digest(against)`` →
``diff(digest)`` → ``delta_for(diff.want)``; or ``digest()`` → ``diff`` → ``delta_for``.
A side that refuses a sync message may answer with a :class:`Refusal` (reason, detail).

Reading: ``online(now_ms)``, ``presence(peer or entry, now_ms)`` (a lapsed lease reads
``offline``, with no message), ``get(peer)``, ``entries()``. Leases are read on the
reader's clock: the lease of a held entry runs from when it was written, on this
replica's clock (``Entry.learned_ms``; ``receive(raw, now_ms, offset_of=...)`` with the
measured offset to each writer's clock), so a writer whose clock is off reads like one
whose clock is right (:mod:`registry_crdt.presence`).
Upkeep:
``collect_garbage(now_ms)``; persistence: ``snapshot()`` / ``Directory.restore(data,
now_ms)``; gossip of local changes: ``version`` / ``delta_since(version)``.

Rules (the constants live in :mod:`registry_crdt.limits`):

* Order: last writer wins per peer on ``(clock, sha256(entry bytes))``. Each PeerID has
  one possible signer — the owner, or for ``legacy_peer_id(bridge, handle)`` that bridge —
  so "(clock, signer)" reduces to the clock, with the hash as a deterministic tie-break.
* Equivocation: two entries of one signer with one clock. Reported as ``EQUIVOCATION``
  and resolved by the larger hash, the same on every replica whatever the order.
* Skew: an entry whose clock is over ``MAX_SKEW_MS`` (5 min) ahead of the receiver's
  ``now_ms`` is refused (``future_clock``); it is accepted later, once it is no longer in
  the future, when anti-entropy offers it again. So no entry can outrank its writer's
  next one by more than 5 minutes.
* Presence: read on the reader's clock, from when the version held was written,
  translated by the measured offset to its writer's clock (capped at the writer's
  ``expiresAt`` + 6 min; with no offset measured, or restored from a snapshot, on the
  writer's clock).
  Merge order and retention stay on the writer's clock, so replicas hold the same
  entries whatever their clocks.
* Retention: every entry is forgotten, and refused, from ``clock.wall_ms +
  MAX_LEASE_MS + HORIZON_MS`` (1 h + 24 h). That bound grows with the clock, so when an
  entry (a ``left`` tombstone, a lapsed lease) is collected every older one of the same
  peer is already refused: nothing comes back.
* Unknown fields are refused at every level of entries, cards and bodies
  (``unknown_field``): the data is signed, re-gossiped and shown to LLMs and viewers, so
  nothing unchecked rides along; new fields come with a new ``schemaVersion`` / ``v``.
"""

from registry_crdt.card import (
    CARD_DOMAIN,
    Capabilities,
    IconLink,
    InlineIcon,
    Interfaces,
    NameCard,
    Persona,
    Souvenir,
    VisitMode,
    VisitPolicy,
    card_digest,
    card_from_dict,
    card_to_dict,
    schema_digest,
    sign_card,
    verify_card,
)
from registry_crdt.clock import HLC, ZERO, Clock
from registry_crdt.directory import ApplyResult, Directory, OffsetOf, Outcome
from registry_crdt.entry import (
    ENTRY_DOMAIN,
    DigestItem,
    Entry,
    Presence,
    Status,
    Vouch,
    legacy_peer_id,
    make_entry,
    make_vouched_entry,
    retain_until,
    verify_entry,
)
from registry_crdt.errors import (
    BadEntrySignature,
    CorruptSnapshot,
    DirectoryError,
    DirectoryUsageError,
    EntryTooLarge,
    FutureClock,
    InvalidField,
    MalformedEntry,
    MalformedMessage,
    UnknownField,
    UnsupportedVersion,
    WrongSigner,
)
from registry_crdt.messages import (
    DIRECTORY_BODIES,
    Delta,
    Diff,
    Digest,
    Message,
    Refusal,
    Summary,
    from_body,
    to_bodies,
    validate_directory_body,
)

__all__ = [
    "CARD_DOMAIN",
    "DIRECTORY_BODIES",
    "ENTRY_DOMAIN",
    "HLC",
    "ZERO",
    "ApplyResult",
    "BadEntrySignature",
    "Capabilities",
    "Clock",
    "CorruptSnapshot",
    "Delta",
    "Diff",
    "Digest",
    "DigestItem",
    "Directory",
    "DirectoryError",
    "DirectoryUsageError",
    "Entry",
    "EntryTooLarge",
    "FutureClock",
    "IconLink",
    "InlineIcon",
    "Interfaces",
    "InvalidField",
    "MalformedEntry",
    "MalformedMessage",
    "Message",
    "NameCard",
    "OffsetOf",
    "Outcome",
    "Persona",
    "Presence",
    "Refusal",
    "Souvenir",
    "Status",
    "Summary",
    "UnknownField",
    "UnsupportedVersion",
    "VisitMode",
    "VisitPolicy",
    "Vouch",
    "WrongSigner",
    "card_digest",
    "card_from_dict",
    "card_to_dict",
    "from_body",
    "legacy_peer_id",
    "make_entry",
    "make_vouched_entry",
    "retain_until",
    "schema_digest",
    "sign_card",
    "to_bodies",
    "validate_directory_body",
    "verify_card",
    "verify_entry",
]
