"""Characters in real node processes on loopback, each with its own fake OpenAI engine
served over real HTTP by the test's trio loop.

The node processes are driven with blocking calls (CLI, control socket), which run on
worker threads here so the fake engines keep answering meanwhile.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from node.testing.fake_openai import ChatRequest, FakeOpenAI, FakeReply, serve_fake_openai
from tests.support.procs import NodeProcess, roomverse_argv, run_cli, write_character

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def is_summary(request: ChatRequest) -> bool:
    return "private diary" in request.messages[0].content


def is_answering_machine(request: ChatRequest) -> bool:
    return "answering machine" in request.messages[0].content


def talker(name: str, token: str = "") -> Callable[[ChatRequest], FakeReply]:
    """A fake engine for ``name``: numbered lines that say who spoke, and summaries that
    repeat any ``TOKEN-...`` words the request holds (so a memory can be traced)."""
    counter = iter(range(1, 10_000))

    def reply(request: ChatRequest) -> FakeReply:
        if is_summary(request):
            seen = sorted(set(re.findall(r"TOKEN-[A-Z]+", _text_of(request))))
            return FakeReply(f"I remember our visit. {' '.join(seen)}".strip())
        if is_answering_machine(request):
            return FakeReply(f"{name} is out right now; I'll pass your message on.")
        return FakeReply(f"{name} says line {next(counter)}. {token}".strip())

    return reply


def _text_of(request: ChatRequest) -> str:
    return "\n".join(message.content for message in request.messages)


@dataclass
class Member:
    name: str
    node: NodeProcess
    fake: FakeOpenAI
    character: Path

    @property
    def data_dir(self) -> Path:
        return self.node.data_dir

    async def ready(self) -> None:
        """The node is up and its engine answers (a knock before that is declined)."""
        await in_thread(self.node.wait_ready)
        await in_thread(self.node.wait_for, lambda e: e.get("event") == "engine_ready", 30)

    async def relation_updates(self, count: int) -> None:
        """Wait until this node has updated a relation ``count`` times (after its own
        summary call, which can finish after the other side's CLI returned)."""

        def enough(events: list[dict[str, Any]]) -> bool:
            return sum(1 for e in events if e.get("event") == "relation_updated") >= count

        await in_thread(self.node.wait_until, enough, 30, f"{count} relation updates")

    async def control(self, request: dict[str, Any]) -> dict[str, Any]:
        return await in_thread(self.node.control, request)

    async def memory(self, what: str, visit: str | None = None) -> dict[str, Any]:
        return await self.control({"cmd": "memory", "what": what, "visit": visit})


@dataclass
class Party:
    tmp_path: Path
    stack: AsyncExitStack
    members: dict[str, Member] = field(default_factory=dict)

    async def add(
        self,
        name: str,
        *,
        token: str = "",
        extra: dict[str, Any] | None = None,
        verbose: int = 0,
        node_args: Sequence[str] = (),
    ) -> Member:
        """A character with its own fake engine; ``extra`` goes into its file,
        ``node_args`` onto its ``roomverse node`` command line."""
        fake = await self.stack.enter_async_context(serve_fake_openai(model=f"{name}-model"))
        fake.responder = talker(name, token)
        engine = {
            "preset": "openai-compatible",
            "base_url": fake.base_url,
            "model": f"{name}-model",
            "timeout_s": 10,
        }
        character = write_character(self.tmp_path, name, engine=engine, extra=extra)
        bootstrap = [] if not self.members else next(iter(self.members.values())).node.addrs[:1]
        node = NodeProcess(
            character,
            self.tmp_path / f"data-{name.lower()}",
            bootstrap=bootstrap,
            verbose=verbose,
            extra=node_args,
        )
        member = Member(name, node, fake, character)
        self.members[name] = member
        await member.ready()
        return member

    async def restart(self, name: str) -> Member:
        old = self.members[name]
        await in_thread(old.node.stop)  # already killed by the test: this closes its pipes
        node = NodeProcess(
            old.character, old.data_dir, bootstrap=next(iter(self.members.values())).node.addrs[:1]
        )
        self.members[name] = member = Member(name, node, old.fake, old.character)
        await member.ready()
        return member

    async def everyone_online(self, timeout: float = 30.0) -> None:
        ids = {m.node.peer_id for m in self.members.values()}

        def sees_all(seen: dict[str, str]) -> bool:
            return all(seen.get(peer) == "online" for peer in ids)

        for member in self.members.values():
            await in_thread(member.node.wait_directory, sees_all, timeout, "everyone online")

    async def visit(
        self, guest: str, host: str, *, turns: int = 0, check: bool = True
    ) -> list[dict[str, Any]]:
        """``roomverse visit HOST --json`` from ``guest``: every reply line, in order."""
        args = ["visit", host, "--data-dir", str(self.members[guest].data_dir), "--json"]
        if turns:
            args += ["--turns", str(turns)]
        out = await in_thread(run_cli, *args, check=check, timeout=120.0)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop_all(self) -> None:
        for member in self.members.values():
            member.node.stop()


@asynccontextmanager
async def open_party(tmp_path: Path, names: Sequence[str] = ()) -> AsyncIterator[Party]:
    async with AsyncExitStack() as stack:
        party = Party(tmp_path, stack)
        try:
            for name in names:
                await party.add(name)
            yield party
        finally:
            await in_thread(party.stop_all)


__all__ = ["Party", "in_thread", "open_party", "roomverse_argv"]
