"""One engine, several callers: replies one at a time, callers in turn, the queue visible,
and a caller who gives up leaves the line without blocking it."""

from __future__ import annotations

import trio
import trio.testing

from node.engine.fair_queue import FairQueue
from node.engine.openai_server import ChatRequest, Generation
from node.testing.fake_openai import ChatMessage


def request(caller: str, text: str = "hi") -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=[ChatMessage(role="user", content=text)],
        max_tokens=8,
        temperature=None,
        headers={},
        caller=caller,
    )


class GatedEngine:
    """Generates when the test says so; records the order and that it never overlaps."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.gate = trio.Semaphore(0)

    async def __call__(self, chat: ChatRequest) -> Generation:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.acquire()
            self.order.append(f"{chat.caller}:{chat.messages[0].content}")
            return Generation(text="ok", prompt_tokens=1, completion_tokens=1)
        finally:
            self.running -= 1


async def test_callers_take_turns_however_many_one_of_them_queues() -> None:
    engine = GatedEngine()
    queue = FairQueue(engine)
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(queue, request("mina", f"m{n}"))
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(queue, request("kai", "k0"))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(queue, request("hana", "h0"))
        await trio.testing.wait_all_tasks_blocked()
        snapshot = queue.snapshot()
        assert snapshot.serving == "mina"
        assert snapshot.waiting == {"mina": 2, "kai": 1, "hana": 1}
        for _ in range(5):
            engine.gate.release()
            await trio.testing.wait_all_tasks_blocked()
    # Mina asked three times before anyone else: she still gets one turn in each round.
    assert engine.order == ["mina:m0", "kai:k0", "hana:h0", "mina:m1", "mina:m2"]
    assert engine.most_at_once == 1
    done = queue.snapshot()
    assert done.serving is None and done.waiting == {}
    assert done.served == {"mina": 3, "kai": 1, "hana": 1}


async def test_a_caller_who_gives_up_leaves_the_line() -> None:
    engine = GatedEngine()
    queue = FairQueue(engine)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue, request("mina"))
        await trio.testing.wait_all_tasks_blocked()
        impatient = trio.CancelScope()
        nursery.start_soon(_call_in, impatient, queue, request("kai"))
        await trio.testing.wait_all_tasks_blocked()
        assert queue.snapshot().waiting == {"kai": 1}
        impatient.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert queue.snapshot().waiting == {}
        nursery.start_soon(queue, request("hana"))
        await trio.testing.wait_all_tasks_blocked()
        engine.gate.release()
        engine.gate.release()
    assert engine.order == ["mina:hi", "hana:hi"]


async def test_a_turn_handed_to_a_caller_who_just_gave_up_passes_on() -> None:
    engine = GatedEngine()
    queue = FairQueue(engine)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue, request("mina"))
        await trio.testing.wait_all_tasks_blocked()
        scope = trio.CancelScope()
        nursery.start_soon(_call_in, scope, queue, request("kai"))
        nursery.start_soon(queue, request("hana"))
        await trio.testing.wait_all_tasks_blocked()
        engine.gate.release()  # Mina is done: the turn goes to Kai...
        scope.cancel()  # ...who leaves before he wakes up
        await trio.testing.wait_all_tasks_blocked()
        assert queue.snapshot().serving == "hana"
        engine.gate.release()
    assert engine.order == ["mina:hi", "hana:hi"]


async def _call_in(scope: trio.CancelScope, queue: FairQueue, chat: ChatRequest) -> None:
    with scope:
        await queue(chat)
