"""What both sides of ``bench/gossip.py`` agree on: payloads, acks, node set-up, /proc."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

from node import (
    MESHSUB_PROTOCOLS,
    AutonomySettings,
    CharacterConfig,
    CharacterNode,
    EngineSettings,
    EventLog,
    NetworkSettings,
    NodeOptions,
    run_node,
)

if TYPE_CHECKING:
    # As in node.process: trio-typing's stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

VARIANTS = ("raw", "signed", "node")
RAW_TOPIC = "bench/raw"
ACK_TOPIC = "bench/ack"
LISTEN = "/ip4/127.0.0.1/tcp/0"
PAYLOAD_SIZE = 256
INDEX_DIGITS = 16
ACK_BATCH_MAX = 256
ACK_PAIR = struct.Struct("<qq")
RAW_INDEX = struct.Struct(">Q")
RAW_PAD = bytes(range(256))[: PAYLOAD_SIZE - RAW_INDEX.size]
TEXT_PAD = "x" * (PAYLOAD_SIZE - INDEX_DIGITS)
PEER_WAIT_S = 15.0
PROBE_ATTEMPTS = 60
PROBE_TIMEOUT_S = 0.5
RECEIVE_BATCH = 256


class Offer:
    """What every host this process opens offers (set once by ``_gossip_worker.py``)."""

    meshsub: tuple[str, ...] = MESHSUB_PROTOCOLS


AckSend = trio.MemorySendChannel[tuple[int, int]]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def action_body(index: int) -> dict[str, Any]:
    """A 256-character speak action whose first 16 characters are the message index."""
    return {"type": "speak", "text": f"{index:0{INDEX_DIGITS}d}{TEXT_PAD}"}


def index_of_body(body: Any) -> int | None:
    try:
        return int(str(body["text"])[:INDEX_DIGITS])
    except (KeyError, TypeError, ValueError):
        return None


def pack_acks(acks: list[tuple[int, int]]) -> bytes:
    return b"".join(ACK_PAIR.pack(i, t) for i, t in acks)


def unpack_acks(data: bytes) -> list[tuple[int, int]]:
    usable = len(data) - len(data) % ACK_PAIR.size
    return [ACK_PAIR.unpack_from(data, off) for off in range(0, usable, ACK_PAIR.size)]


def node_config(name: str, data_dir: Path) -> CharacterConfig:
    # No engine is needed to gossip; the discard port refuses at once, and the embedded
    # engine (which would fetch a model) is never started.
    return CharacterConfig(
        name=name,
        engines=(
            EngineSettings(
                name="none", preset="openai-compatible", base_url="http://127.0.0.1:9/v1"
            ),
        ),
        autonomy=AutonomySettings(enabled=False),
        network=NetworkSettings(listen=(LISTEN,), bootstrap=(), mdns=False),
        data_dir=data_dir,
    )


def devnull() -> TextIO:
    """Where the bench nodes write their JSON event lines (a real node writes to stdout)."""
    return open(os.devnull, "w")


async def run_node_until_stopped(
    config: CharacterConfig,
    events: EventLog,
    stop: trio.CancelScope,
    *,
    task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run_node`` (no greeting); when it stops (SIGTERM, SIGINT), ``stop`` is cancelled."""
    await run_node(
        config, events, NodeOptions(greet=False, meshsub=Offer.meshsub), task_status=task_status
    )
    stop.cancel()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, all threads (None if unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
