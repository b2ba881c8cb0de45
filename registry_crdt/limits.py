"""Every bound of the directory in one place: time rules, sizes and counts.

The time rules must be the same on every replica (they decide what is kept), so they are
constants, not options.
"""

from __future__ import annotations

from typing import Final

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS
HOUR_MS: Final = 60 * MINUTE_MS

# An entry whose clock is further ahead of the receiver's ``now_ms`` than this is refused
# (it would win every merge until the real clocks caught up). Same window as envelopes.
MAX_SKEW_MS: Final = 5 * MINUTE_MS
# The longest lease an entry may ask for, counted from its own clock.
MAX_LEASE_MS: Final = 1 * HOUR_MS
# How long a tombstone (or a lapsed lease) is remembered after the longest lease it, or any
# older entry of the same peer, could have had. See ``retain_until`` in registry_crdt.entry.
HORIZON_MS: Final = 24 * HOUR_MS

# Hybrid logical clock fields: 48-bit milliseconds (year 10889) and a 16-bit counter.
MAX_WALL_MS: Final = 2**48 - 1
MAX_COUNTER: Final = 2**16 - 1

# One encoded entry, card included. A directory envelope (64 KiB) carries at least two.
MAX_ENTRY_BYTES: Final = 24 * 1024
MAX_CARD_BYTES: Final = 20 * 1024
MAX_ADDRS: Final = 16
MAX_ADDR_CHARS: Final = 256
MAX_URL_CHARS: Final = 512
MAX_HANDLE_CHARS: Final = 64

# Name card (DESIGN §4, the ``/manifest`` content).
CARD_SCHEMA_VERSION: Final = 1
MAX_NAME_CHARS: Final = 64
MAX_DESCRIPTION_CHARS: Final = 280
MAX_VERSION_CHARS: Final = 32
MAX_PERSONALITY_CHARS: Final = 1000
MAX_GREETING_CHARS: Final = 280
MAX_LANGUAGES: Final = 8
MAX_TAGS: Final = 16
MAX_TAG_CHARS: Final = 32
MAX_INTERFACE_ADDRS: Final = 8
MAX_SOUVENIRS: Final = 16
MAX_SOUVENIR_NAME_CHARS: Final = 64
MAX_INLINE_ICON_BYTES: Final = 8 * 1024
MAX_VISIT_MINUTES: Final = 240
MAX_VISIT_TURNS: Final = 500
MAX_VISITS_PER_HOUR: Final = 120

# Sync messages. A body must fit a 64 KiB ``directory`` envelope with room for its header.
BODY_BUDGET_BYTES: Final = 60 * 1024
MAX_MESSAGE_ENTRIES: Final = 64
MAX_DIGEST_ITEMS: Final = 2048
MAX_WANT: Final = 2048
MAX_RANGES: Final = 4096
MAX_SUMMARY_BITS: Final = 12
# Digest ranges and summary buckets are over the first 32 bits of the Ed25519 public key.
KEY_SPACE: Final = 2**32
DIGEST_HASH_BYTES: Final = 16
SUMMARY_HASH_BYTES: Final = 8
