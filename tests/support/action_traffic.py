"""Speech from every node at a steady pace, and who heard what, and when.

:class:`ActionTraffic` makes each node say a numbered line (``speak``, over the node's
control socket, as ``roomverse act`` does) every ``every_s`` seconds, one sender thread
per node, so a node whose publish is held up by backpressure delays only itself. Every
line is tagged, so it is told apart from greetings and other traffic. Afterwards it says,
per receiving node, which of the lines sent by the *other* nodes arrived (from the
node's ``action_received`` events), how often, and how long after it was sent.

Latency is the receiver's event time (``ts`` of ``action_received``, its wall clock) minus
the moment the test asked the sender to speak (this machine's wall clock): all nodes run
on one machine, so the clock is shared — unless a node runs under ``faketime``, whose
receipts are therefore left out of the latencies (``shifted``).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from node import ControlError
from tests.support.procs import POLL_INTERVAL_S, NodeProcess
from tests.support.waiting import wait_until


@dataclass(frozen=True, slots=True)
class Sent:
    """One line a node was asked to say, and the node's reply."""

    sender: str
    """PeerID of the node that said it."""
    text: str
    asked_at: float
    """Wall clock (this machine's ``time.time()``) right before the request."""
    ok: bool
    reply: str
    """The reply, or the error, in short (for failures)."""


@dataclass
class Delivery:
    """What one node heard of the lines the others said."""

    node: str
    expected: int
    received: int
    duplicates: int
    missing: list[Sent] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)


class ActionTraffic:
    """Tagged lines from each of ``nodes`` every ``every_s`` seconds, while :meth:`run`."""

    def __init__(
        self,
        nodes: Sequence[NodeProcess],
        *,
        every_s: float,
        tag: str,
        shifted: Iterable[NodeProcess] = (),
    ) -> None:
        self.nodes = list(nodes)
        self.every_s = every_s
        self.tag = tag
        self.shifted = {node.peer_id for node in shifted}
        """Nodes whose event clock is not this machine's (their receipts carry no latency)."""
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    # -- sending ----------------------------------------------------------------------

    def say(self, node: NodeProcess, n: int) -> Sent:
        """Ask ``node`` to say its ``n``-th line now; the result is recorded."""
        text = f"{self.tag} {node.peer_id[-6:]} #{n}"
        asked_at = time.time()
        try:
            reply = node.control(
                {"cmd": "publish", "kind": "action", "body": {"type": "speak", "text": text}}
            )
            ok, summary = bool(reply.get("ok")), str(reply)
        except (ControlError, OSError) as exc:
            ok, summary = False, f"{type(exc).__name__}: {exc}"
        sent = Sent(node.peer_id, text, asked_at, ok, summary[:200])
        with self._lock:
            self.sent.append(sent)
        return sent

    def run(self, seconds: float, *, alongside: Callable[[], None] | None = None) -> None:
        """Every node says a line every ``every_s`` for ``seconds`` (a fixed span on purpose:
        it is the traffic being simulated). ``alongside`` is called repeatedly on this
        thread meanwhile (e.g. to sample directories); it should return within a second
        or so. Returns when every sender has finished its last request."""
        end = time.monotonic() + seconds
        stop = threading.Event()

        def sender(node: NodeProcess) -> None:
            n = 0
            next_at = time.monotonic()
            while next_at < end and not stop.is_set():
                self.say(node, n)
                n += 1
                next_at += self.every_s
                # The pace of the traffic, not a wait for something to happen.
                stop.wait(max(0.0, next_at - time.monotonic()))

        threads = [
            threading.Thread(target=sender, args=(node,), name=f"speak {node.name}", daemon=True)
            for node in self.nodes
        ]
        for thread in threads:
            thread.start()
        try:
            while time.monotonic() < end:
                if alongside is not None:
                    alongside()
                stop.wait(min(POLL_INTERVAL_S * 5, max(0.0, end - time.monotonic())))
        finally:
            stop.set()
            for thread in threads:
                # A request is bounded by the control socket's 30 s timeout.
                thread.join(40.0)

    def failed(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if not s.ok]

    # -- receiving --------------------------------------------------------------------

    def delivery(self, node: NodeProcess) -> Delivery:
        """What ``node`` heard of the lines the other nodes said (and were acknowledged)."""
        with self._lock:
            wanted = {(s.sender, s.text): s for s in self.sent if s.ok and s.sender != node.peer_id}
        heard: Counter[tuple[str, str]] = Counter()
        latencies: list[float] = []
        for event in node.of("action_received"):
            body = event.get("body") or {}
            key = (str(event.get("from")), str(body.get("text")))
            sent = wanted.get(key)
            if sent is None:
                continue
            heard[key] += 1
            if heard[key] == 1 and node.peer_id not in self.shifted:
                latencies.append(float(event["ts"]) - sent.asked_at)
        return Delivery(
            node=node.name,
            expected=len(wanted),
            received=len(heard),
            duplicates=sum(count - 1 for count in heard.values()),
            missing=[s for key, s in wanted.items() if key not in heard],
            latencies_s=latencies,
        )

    def deliveries(self) -> list[Delivery]:
        return [self.delivery(node) for node in self.nodes]

    def all_delivered(self) -> bool:
        return all(not d.missing for d in self.deliveries())

    def wait_delivered(self, timeout: float) -> float:
        """Wait until every node heard every line of the others; return the seconds it
        took. AssertionError naming what is missing where."""
        start = time.monotonic()
        wait_until(
            self.all_delivered,
            timeout,
            f"every {self.tag!r} line at every node",
            poll=POLL_INTERVAL_S,
            detail=self.describe_missing,
        )
        return time.monotonic() - start

    def describe_missing(self) -> str:
        lines = []
        for d in self.deliveries():
            if d.missing:
                shown = ", ".join(s.text for s in d.missing[:5])
                more = f" (+{len(d.missing) - 5})" if len(d.missing) > 5 else ""
                lines.append(f"{d.node}: {d.received}/{d.expected}, missing {shown}{more}")
                first = d.missing[0]
                lines.append(f"  {first.text!r}, asked at {first.asked_at:.1f}: {first.reply}")
        return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank above; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


__all__ = ["ActionTraffic", "Delivery", "Sent", "median", "percentile"]
