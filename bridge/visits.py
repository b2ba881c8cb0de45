"""Legacy participants visiting libp2p characters through the bridge (the seed's
``POST /characters/{id}/visit`` and ``/chat``).

Each conversation is a real ``/roomverse/visit/1.0.0`` visit the bridge's node makes for
the participant (``CharacterNode.proxy_visit``): the visitor is (re)registered from its
URL first, so the knock can say whom the bridge speaks for; the host decides at its door
as for anyone; every line the host says is handed back to the HTTP request waiting for
it. The visit ends when the host's budget is spent, when the host says goodbye, or when
the participant stops chatting (``idle_s``), with farewell and receipts as always.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Final

import trio

from bridge.problems import Problem
from bridge.registry import Registry
from bridge.schema import Registration
from keys import peer_id_from_str
from keys.errors import RoomverseError
from node import (
    CharacterNode,
    Line,
    Partner,
    ProxyVisitor,
    RelayedLines,
    VisitResult,
    VisitTargetError,
    proxy_visit,
)

logger = logging.getLogger(__name__)

MAX_CONVERSATIONS: Final = 16
"""Visits through the bridge at once: no one can make it hold more of the owners' engines."""
REPLY_TIMEOUT_S: Final = 150.0
"""How long a request waits for the host's next line (its engine may be slow)."""
SETTLE_S: Final = 10.0
"""After the host's line: how long to wait for the visit to either go on (our turn) or
end (the budget is spent), so the answer can say ``done``."""
IDLE_S: Final = 120.0


@dataclass
class Conversation:
    id: str
    host_id: str
    host_name: str
    lines: RelayedLines
    replies: trio.MemorySendChannel[str | None]
    answers: trio.MemoryReceiveChannel[str | None]
    """The host's lines as they come; None once the visit is over."""
    outcome: str = ""
    reason: str = ""
    over: bool = False
    ended: trio.Event = field(default_factory=trio.Event)
    """Set once the visit is over (farewell and receipts done, or failed)."""
    busy: trio.Lock = field(default_factory=trio.Lock)
    """One request at a time per conversation."""


class LegacyVisits:
    def __init__(
        self,
        node: CharacterNode,
        registry: Registry,
        nursery: trio.Nursery,
        *,
        idle_s: float = IDLE_S,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
    ) -> None:
        self._node = node
        self._registry = registry
        self._nursery = nursery
        self._idle_s = idle_s
        self._reply_timeout_s = reply_timeout_s
        self._conversations: dict[str, Conversation] = {}

    async def start(
        self, host_id: str, host_name: str, visitor: Registration, message: str, context: str
    ) -> tuple[Conversation, str, bool]:
        """Knock on ``host_id``'s door for ``visitor`` with ``message``; the conversation,
        the host's first reply (or its answering machine's) and whether the visit is over."""
        if len(self._conversations) >= MAX_CONVERSATIONS:
            raise Problem(
                503,
                "bridge-busy",
                "Too many visits",
                f"{MAX_CONVERSATIONS} visits are under way through this bridge; try again later",
                headers={"Retry-After": "30"},
            )
        registered = await self._registry.register(visitor)
        proxy = ProxyVisitor(
            peer_id=peer_id_from_str(registered.peer_id),
            name=visitor.name,
            card_digest=registered.card_digest,
        )
        replies, answers = trio.open_memory_channel[str | None](64)
        conversation = Conversation(
            id=secrets.token_hex(16),
            host_id=host_id,
            host_name=host_name,
            lines=RelayedLines(message, idle_s=self._idle_s),
            replies=replies,
            answers=answers,
        )
        self._conversations[conversation.id] = conversation
        self._nursery.start_soon(self._run, conversation, proxy, context)
        async with conversation.busy:
            return await self._next_reply(conversation)

    async def chat(
        self, host_id: str, conversation_id: str, message: str
    ) -> tuple[Conversation, str, bool]:
        """The participant's next line; the host's reply to it, and whether it was the last."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None or conversation.host_id != host_id:
            raise Problem(
                404,
                "no-such-conversation",
                "No such conversation",
                "no visit to this host under way has that conversation_id (it may have ended)",
            )
        async with conversation.busy:
            if conversation.over:
                self._conversations.pop(conversation_id, None)
                raise Problem(409, "visit-over", "The visit is over", _ended(conversation))
            if not conversation.lines.say(message):
                raise Problem(409, "not-your-turn", "Not your turn", "wait for the host's reply")
            return await self._next_reply(conversation)

    async def _next_reply(self, conversation: Conversation) -> tuple[Conversation, str, bool]:
        """The host's next line (or the answering machine's), and whether the visit is over
        after it: it goes on once it waits for our next line; it is over once it ended."""
        with trio.move_on_after(self._reply_timeout_s):
            answer = await conversation.answers.receive()
            if answer is not None:
                waiting = conversation.lines.waiting
                with trio.move_on_after(SETTLE_S):
                    await _first_of(waiting, conversation.ended)
                if not conversation.ended.is_set():
                    return conversation, answer, False
            conversation.over = True
            self._conversations.pop(conversation.id, None)
            return conversation, answer or "", True
        raise Problem(
            504,
            "host-slow",
            "The host did not answer in time",
            f"{conversation.host_name} said nothing within {self._reply_timeout_s:g} s",
        )

    async def _run(self, conversation: Conversation, visitor: ProxyVisitor, context: str) -> None:
        async def heard(visit: str, partner: Partner, line: Line, mine: bool) -> None:
            if not mine:
                await conversation.replies.send(line.text)

        result: VisitResult | None = None
        try:
            result = await proxy_visit(
                self._node,
                conversation.host_id,
                visitor,
                conversation.lines,
                on_line=heard,
                context=context,
            )
        except (VisitTargetError, RoomverseError) as exc:
            conversation.outcome, conversation.reason = "failed", str(exc)
            logger.info("bridge visit to %s failed: %s", conversation.host_id, exc)
        finally:
            if result is not None:
                conversation.outcome, conversation.reason = result.outcome, result.reason
                if result.message:  # a decline's answering machine
                    conversation.replies.send_nowait(result.message)
            conversation.replies.send_nowait(None)
            conversation.ended.set()


async def _first_of(*events: trio.Event) -> None:
    """Return once any of ``events`` is set."""
    async with trio.open_nursery() as race:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            race.cancel_scope.cancel()

        for event in events:
            race.start_soon(wait, event)


def _ended(conversation: Conversation) -> str:
    reason = f" ({conversation.reason})" if conversation.reason else ""
    return f"the visit to {conversation.host_name} ended: {conversation.outcome}{reason}"
