"""The pure peer book: backoff, reconnect, giving up on vanished discovered peers."""

from __future__ import annotations

from node.net.dialing import (
    BACKOFF_CAP_S,
    MAX_FAILURES_DISCOVERED,
    PeerBook,
    backoff_delay,
)


def never(_: str) -> bool:
    return False


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_delay(n, 0.999) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert max(delays) <= BACKOFF_CAP_S
    assert backoff_delay(0, 0.5) == 0.0
    assert backoff_delay(3, 0.0) == backoff_delay(3, 0.999) / (0.5 + 0.999 / 2) * 0.5


def test_self_is_never_wanted() -> None:
    book = PeerBook("me")
    assert not book.want("me", ["/ip4/1.2.3.4/tcp/1"], "mdns", 0.0, permanent=False)
    assert book.due(0.0, never) == []


def test_failed_dial_backs_off_then_retries() -> None:
    book = PeerBook("me")
    book.want("p", ["/a"], "bootstrap", 0.0, permanent=True)
    (peer,) = book.due(0.0, never)
    book.dial_started(peer)
    assert book.due(0.0, never) == []  # in flight
    assert book.dial_failed(peer, 0.0, 0.5)
    assert book.due(0.0, never) == []
    assert book.due(100.0, never) == [peer]


def test_discovered_peer_forgotten_after_repeated_failures_bootstrap_kept() -> None:
    book = PeerBook("me")
    book.want("found", ["/a"], "mdns", 0.0, permanent=False)
    book.want("boot", ["/b"], "bootstrap", 0.0, permanent=True)
    now = 0.0
    for _ in range(MAX_FAILURES_DISCOVERED + 2):
        for peer in book.due(now, never):
            book.dial_started(peer)
            book.dial_failed(peer, now, 0.0)
        now += 1000
    assert "found" not in book.peers
    assert "boot" in book.peers


def test_connected_peers_are_not_dialled_and_fresh_sighting_resets_backoff() -> None:
    book = PeerBook("me")
    book.want("p", ["/a"], "mdns", 0.0, permanent=False)
    assert book.due(0.0, lambda peer: True) == []
    (peer,) = book.due(0.0, never)
    book.dial_started(peer)
    book.dial_failed(peer, 0.0, 0.0)
    book.dial_failed(peer, 0.0, 0.0)
    assert book.due(0.1, never) == []
    book.want("p", ["/c"], "mdns", 0.1, permanent=False)
    assert book.due(0.1, never) == [peer]
    assert peer.addrs[0] == "/c"


def test_disconnect_schedules_a_reconnect() -> None:
    book = PeerBook("me")
    book.want("p", ["/a"], "bootstrap", 0.0, permanent=True)
    (peer,) = book.due(0.0, never)
    book.dial_started(peer)
    book.dial_succeeded(peer, 0.0)
    book.disconnected("p", 10.0)
    assert book.due(10.0, never) == []
    assert book.due(11.0, never) == [peer]


def test_a_path_coming_back_retries_every_peer_in_backoff_at_once() -> None:
    book = PeerBook("me")
    for name in ("a", "b", "c"):
        book.want(name, [f"/{name}"], "directory", 0.0, permanent=False)
    peers = {p.peer_id: p for p in book.due(0.0, never)}
    for peer in peers.values():
        book.dial_started(peer)
        for _ in range(4):
            book.dial_failed(peer, 0.0, 0.0)
    assert book.due(1.0, never) == []  # all backing off (4 failures: 4 s and more)
    book.dial_started(peers["a"])
    book.dial_succeeded(peers["a"], 1.0)  # the partition healed
    assert {p.peer_id for p in book.due(1.0, lambda peer: peer == "a")} == {"b", "c"}
    assert not book.path_is_back("a", 1.0)  # nothing failing any more: nothing to do
