"""The local control socket: how `roomverse act` (and later commands) reach a running node.

A Unix socket ``control.sock`` in the character's data directory, created with mode
0600 inside a 0700 directory, so only the owner can use it; connections from another
uid are refused as well (SO_PEERCRED). One JSON request line in, one JSON reply line out.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

from keys.errors import RoomverseError
from node.errors import ControlError

SOCKET_NAME = "control.sock"
MAX_REQUEST = 512 * 1024
"""Room for the largest legitimate request: a 192 KiB image context, base64-encoded."""
REQUEST_TIMEOUT_S = 30.0

Reply = dict[str, Any] | AsyncIterator[dict[str, Any]]
"""One JSON reply, or a stream of them (``roomverse visit`` prints lines as they come);
a streamed reply ends with an object holding ``"done": true``."""
Handler = Callable[[dict[str, Any]], Awaitable[Reply]]
STREAM_IDLE_TIMEOUT_S = 600.0
"""A streamed reply may go quiet this long between lines (an engine thinking)."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


async def serve_control(
    data_dir: Path,
    handler: Handler,
    *,
    task_status: TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    path = socket_path(data_dir)
    if path.exists() or path.is_symlink():
        path.unlink()  # a stale socket from a killed node; the data-dir lock rules out a live one
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started(path)
    try:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(_serve_one, stream, handler)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        path.unlink(missing_ok=True)


async def _serve_one(stream: trio.SocketStream, handler: Handler) -> None:
    async with stream:
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                if not _same_user(stream):
                    await _reply(stream, {"ok": False, "error": "permission denied"})
                    return
                request = await _read_request(stream)
                try:
                    reply = await handler(request)
                except RoomverseError as exc:
                    reply = {"ok": False, "error": str(exc)}
            if isinstance(reply, dict):
                await _reply(stream, reply)
                return
            await _stream_replies(stream, reply)
        except ControlError as exc:
            await _reply(stream, {"ok": False, "error": str(exc)})
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def _stream_replies(
    stream: trio.SocketStream, replies: AsyncIterator[dict[str, Any]]
) -> None:
    try:
        async with contextlib.aclosing(replies):  # type: ignore[type-var]
            async for reply in replies:
                await _reply(stream, reply)
    except RoomverseError as exc:
        await _reply(stream, {"ok": False, "done": True, "error": str(exc)})


def _same_user(stream: trio.SocketStream) -> bool:
    creds = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


async def _read_request(stream: trio.SocketStream) -> dict[str, Any]:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            raise ControlError(f"request larger than {MAX_REQUEST} bytes")
    try:
        request = json.loads(bytes(buf).split(b"\n", 1)[0])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControlError(f"request is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ControlError('request must be a JSON object with a "cmd" string')
    return request


async def _reply(stream: trio.SocketStream, reply: dict[str, Any]) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(json.dumps(reply, default=str).encode() + b"\n")


def control_request(data_dir: Path, request: dict[str, Any], *, timeout: float = 30.0) -> Any:
    """Send one request to the node running on ``data_dir``; blocking, for the CLI."""
    for reply in _exchange(data_dir, request, timeout):
        return reply
    raise ControlError("the node closed the connection without a reply")


def control_stream(
    data_dir: Path, request: dict[str, Any], *, timeout: float = STREAM_IDLE_TIMEOUT_S
) -> Iterator[dict[str, Any]]:
    """Send a request whose reply is streamed; yield each reply until ``done``."""
    for reply in _exchange(data_dir, request, timeout):
        yield reply
        if reply.get("done"):
            return
    raise ControlError("the node closed the connection before the command finished")


def _exchange(data_dir: Path, request: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
    path = socket_path(data_dir)
    if not path.exists():
        raise ControlError(f"no running node for {data_dir} (start it with `roomverse node`)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            # If the node refuses the request part-way (too large), its reply still waits.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while True:
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                yield _parse_reply(line)
        except (ConnectionRefusedError, FileNotFoundError):
            raise ControlError(f"no running node for {data_dir} (stale control socket)") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path}") from None
        except TimeoutError:
            raise ControlError(f"the node on {data_dir} did not answer in {timeout:.0f}s") from None
        except OSError as exc:
            raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None


def _parse_reply(line: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(line)
    except json.JSONDecodeError:
        raise ControlError("the node sent an unreadable reply") from None
    if not isinstance(reply, dict):
        raise ControlError("the node sent an unreadable reply")
    if not reply.get("ok", False):
        raise ControlError(str(reply.get("error", "the node refused the command")))
    return reply
