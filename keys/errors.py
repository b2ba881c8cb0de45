"""The project's one exception tree.

Every error RoomVerse raises on purpose derives from :class:`RoomverseError`::

    RoomverseError
    ├── LocalError                 you (the caller, the owner, the config) misused something
    │   ├── ConfigError            a config file or flag is invalid (names the field)
    │   ├── KeyFileError           a key file cannot be used
    │   │   ├── KeyFileExists
    │   │   ├── KeyFileMissing
    │   │   ├── PassphraseRequired
    │   │   ├── WrongPassphrase
    │   │   └── CorruptKeyFile
    │   └── KeyUsageError          a ``keys`` function got an argument it cannot use
    │       ├── InvalidPeerId      a PeerID string is not an Ed25519 libp2p PeerID
    │       └── SealError          seal() was asked for an envelope verify() would refuse
    └── RemoteError                a peer sent something we refuse; log it, penalise, go on
        └── EnvelopeError          an envelope failed verification (``reason`` is a short code)
            ├── Malformed, UnknownVersion, UnknownKind, Oversize, SchemaError
            │   (UnknownKind ─ WrongChannel: a known kind on a channel that does not carry it)
            ├── BadSignature, SenderMismatch, StaleTimestamp
            └── Replayed

The node adds its own local errors under :class:`LocalError` (``node.errors``: the
control socket, publishing); the engines theirs (``node.engine.errors``).

Remote errors carry a stable ``reason`` code so logs and ``rejected`` events can be
matched by scripts without parsing prose.
"""

from __future__ import annotations


class RoomverseError(Exception):
    """Root of every error RoomVerse raises on purpose."""


class LocalError(RoomverseError):
    """The caller or the owner misused something: a bad config, key file or command."""


class RemoteError(RoomverseError):
    """A peer sent something we refuse. Never fatal: log, count, carry on."""

    reason: str = "remote_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(LocalError):
    """A config value is invalid; ``field`` names it (dotted path)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class KeyFileError(LocalError):
    """A key file cannot be read, written or used. Messages never contain key material."""


class KeyFileExists(KeyFileError):
    """Refused to replace an existing key file (pass ``overwrite=True`` to mean it)."""


class KeyFileMissing(KeyFileError):
    """There is no key file at the given path."""


class PassphraseRequired(KeyFileError):
    """The key file is encrypted and no passphrase was given."""


class WrongPassphrase(KeyFileError):
    """The passphrase does not decrypt the key file (or the ciphertext was altered)."""


class CorruptKeyFile(KeyFileError):
    """The key file is not a valid RoomVerse key file (syntax, fields, or key/PeerID mismatch)."""


class KeyUsageError(LocalError):
    """A ``keys`` function was called with an argument it cannot use (bad seed, bad state)."""


class InvalidPeerId(KeyUsageError):
    """A PeerID string or bytes is not an Ed25519 libp2p PeerID."""


class SealError(KeyUsageError):
    """``seal()`` refused to sign an envelope that ``verify()`` would refuse.

    ``reason`` carries the code ``verify()`` would have used (``schema``, ``oversize``, ...).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class EnvelopeError(RemoteError):
    """An envelope failed verification; ``reason`` says which check refused it."""

    reason = "envelope_error"


class Malformed(EnvelopeError):
    """Not a well-formed, canonically encoded envelope (bad msgpack, keys, types)."""

    reason = "malformed"


class UnknownVersion(EnvelopeError):
    """The envelope's ``v`` is not a version this code speaks."""

    reason = "unknown_version"


class UnknownKind(EnvelopeError):
    """The envelope's ``kind`` is not one this code knows."""

    reason = "unknown_kind"


class WrongChannel(UnknownKind):
    """A known kind arrived on a topic or protocol that does not carry it."""

    reason = "wrong_channel"


class Oversize(EnvelopeError):
    """The envelope exceeds the size cap of its channel or kind."""

    reason = "oversize"


class SchemaError(EnvelopeError):
    """The body does not match its kind's schema; the message names the field."""

    reason = "schema"


class BadSignature(EnvelopeError):
    """The signature does not verify under the sender's key."""

    reason = "bad_signature"


class SenderMismatch(EnvelopeError):
    """``from`` is not the peer the transport says delivered the envelope."""

    reason = "sender_mismatch"


class StaleTimestamp(EnvelopeError):
    """``ts`` is further from the local clock than the accepted window.

    ``sender`` and ``ahead_ms`` (``ts - now``) are set when :func:`keys.verify` raises it,
    which it does only after the signature verified: the sender's clock really says so.
    """

    reason = "stale_timestamp"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        sender: bytes | None = None,
        ahead_ms: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.sender = sender
        self.ahead_ms = ahead_ms


class Replayed(EnvelopeError):
    """``(from, seq)`` was already accepted, or is older than the replay window.

    ``sender`` and ``seq`` name the envelope when :class:`keys.ReplayWindow` raises it.
    """

    reason = "replayed"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        sender: bytes | None = None,
        seq: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.sender = sender
        self.seq = seq
