"""Errors of the directory, hung under the project's tree (see :mod:`keys.errors`)::

    RemoteError
    └── DirectoryError             a peer sent directory data we refuse (``reason`` code)
        ├── MalformedEntry         not msgpack, not a map, wrong types, non-canonical bytes
        ├── InvalidField           a field is out of its bounds; ``field`` names it
        │   └── UnknownField       a field this schema does not define
        ├── UnsupportedVersion     an entry ``v`` or card ``schemaVersion`` we do not speak
        ├── EntryTooLarge          over MAX_ENTRY_BYTES (or a card over MAX_CARD_BYTES)
        ├── BadEntrySignature      the entry or card signature does not verify
        ├── WrongSigner            signed by someone who may not write this key
        ├── FutureClock            the clock is more than MAX_SKEW_MS ahead of ``now_ms``
        └── MalformedMessage       a sync message (delta, summary, digest, diff) is malformed
    LocalError
    ├── DirectoryUsageError        make_entry / sign_card / HLC asked for something invalid
    └── CorruptSnapshot            a persisted snapshot cannot be restored

Every ``DirectoryError`` raised while checking remote bytes is one of these; no other
exception escapes the decoders, whatever the input.
"""

from __future__ import annotations

from keys.errors import LocalError, RemoteError


class DirectoryError(RemoteError):
    """A peer sent directory data we refuse; ``reason`` says which check refused it."""

    reason = "directory"


class MalformedEntry(DirectoryError):
    """Not a well-formed, canonically encoded entry (bad msgpack, not a map, wrong types)."""

    reason = "malformed"


class InvalidField(DirectoryError):
    """A field is missing, of the wrong type, or out of bounds; ``field`` is its path."""

    reason = "invalid_field"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownField(InvalidField):
    """A field this schema does not define (unknown fields are refused, never kept)."""

    reason = "unknown_field"


class UnsupportedVersion(DirectoryError):
    """An entry ``v`` or a card ``schemaVersion`` this code does not speak."""

    reason = "unsupported_version"


class EntryTooLarge(DirectoryError):
    """The entry (or the card) is over its size cap."""

    reason = "oversize"


class BadEntrySignature(DirectoryError):
    """The entry or card signature does not verify under the signer's key."""

    reason = "bad_signature"


class WrongSigner(DirectoryError):
    """The entry claims a signer that may not write its key (card id, vouching bridge)."""

    reason = "wrong_signer"


class FutureClock(DirectoryError):
    """The entry's clock is further ahead of ``now_ms`` than the accepted skew."""

    reason = "future_clock"


class MalformedMessage(DirectoryError):
    """A sync message body is not a valid delta, summary, digest or diff."""

    reason = "malformed_message"


class DirectoryUsageError(LocalError):
    """A directory function was asked for something it cannot do; ``reason`` as above."""

    def __init__(self, message: str, *, reason: str = "usage") -> None:
        super().__init__(message)
        self.reason = reason


class CorruptSnapshot(LocalError):
    """A persisted directory snapshot is not one this code wrote (or it was altered)."""
