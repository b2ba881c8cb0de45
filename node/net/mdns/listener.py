"""What arrives from zeroconf's thread: the record listener and the inbox it fills.

Zeroconf calls :class:`RecordListener` on its own thread for every record it caches,
expires or says goodbye to. The listener keeps only our service's PTR and TXT records
and coalesces them per instance in an :class:`Inbox`, which the trio side drains.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress

import trio
from zeroconf import (
    RecordUpdate,
    RecordUpdateListener,
    Zeroconf,
    current_time_millis,
)

# zeroconf re-exports these from its package only implicitly (mypy --strict refuses that)
from zeroconf._dns import DNSPointer, DNSText

from node.net.mdns.records import (
    CLASS_IN,
    INSTANCE_SUFFIX,
    MAX_INSTANCES,
    SERVICE_LOWER,
    TYPE_TXT,
    decode_txt,
)

logger = logging.getLogger(__name__)


class Inbox:
    """Zeroconf thread → trio: latest TXT strings per instance name, coalesced.

    ``put`` runs on zeroconf's thread and never blocks; it wakes the trio side at most once
    per batch through the trio token. ``()`` means the instance is gone.
    """

    def __init__(self, token: trio.lowlevel.TrioToken, capacity: int = MAX_INSTANCES) -> None:
        self._token = token
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, ...]] = {}
        self._event = trio.Event()
        self._wake_scheduled = False

    def put(self, name: str, strings: tuple[bytes, ...]) -> None:
        with self._lock:
            if name not in self._items and len(self._items) >= self._capacity:
                return  # the next query round brings it back
            self._items[name] = strings
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
            event = self._event
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(event.set)

    async def get_batch(self) -> dict[str, tuple[bytes, ...]]:
        await self._event.wait()
        with self._lock:
            items, self._items = self._items, {}
            self._wake_scheduled = False
            self._event = trio.Event()
        return items


class RecordListener(RecordUpdateListener):
    """Runs on zeroconf's loop: hands the TXT strings of every ``_p2p`` instance a packet
    touched to the inbox.

    A packet's own TXT records are used as they are (js sends one TXT record per address,
    all in one packet; zeroconf one record with every address). Only when a packet names
    an instance without carrying its TXT (a lone PTR, an expiry) is the cache read: its
    view of a *changed* TXT lags, because zeroconf re-arms superseded cache-flush records
    for another second each time the new record arrives.
    """

    def __init__(self, zc: Zeroconf, inbox: Inbox) -> None:
        self._zc = zc
        self._inbox = inbox
        self._gone: dict[str, bool] = {}  # instance name -> a goodbye/expired PTR came
        self._carried: dict[str, list[bytes]] = {}  # instance name -> TXT strings in packet

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        for update in records:
            record = update.new
            if isinstance(record, DNSPointer):
                if record.name.lower() != SERVICE_LOWER:
                    continue
                name = record.alias.lower()
                gone = record.is_expired(now)
            elif isinstance(record, DNSText):
                name = record.name.lower()
                gone = False
            else:
                continue
            if not name.endswith(INSTANCE_SUFFIX):
                continue
            if name not in self._gone:
                if len(self._gone) >= MAX_INSTANCES:
                    continue
                self._gone[name] = False
            self._gone[name] = self._gone[name] or gone
            if isinstance(record, DNSText) and not record.is_expired(now):
                self._carried.setdefault(name, []).extend(decode_txt(record.text))

    def async_update_records_complete(self) -> None:
        touched, self._gone = self._gone, {}
        carried, self._carried = self._carried, {}
        now = current_time_millis()
        for name, gone in touched.items():
            strings: tuple[bytes, ...] = ()
            if gone:
                pass
            elif name in carried:
                strings = tuple(carried[name])
            else:
                strings = tuple(
                    s
                    for record in self._zc.cache.async_all_by_details(name, TYPE_TXT, CLASS_IN)
                    if isinstance(record, DNSText) and not record.is_expired(now)
                    for s in decode_txt(record.text)
                )
            self._inbox.put(name, strings)
