"""What the server's routes share that needs no web framework: the body-size guard, admission, upload names."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any, Awaitable, Callable

from ..errors import InputError

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
                   Awaitable[None]]


class BodyTooLarge(InputError):
    """A request body over the server's limit (HTTP 413)."""


class BodyLimit:
    """ASGI wrapper: a request whose Content-Length is over ``max_bytes`` is refused (413) before a byte of its
    body is read; one that sends more than it announced (or announces nothing: chunked) fails with
    :class:`BodyTooLarge` as soon as the limit is crossed, so an upload is never read whole to be refused."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def message(self) -> str:
        return (f"the request body is over the server's limit of {self.max_bytes / 2**20:.3g} MiB; send fewer or "
                "smaller files, or start the server with a larger --max-upload-mb")

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _json(send, 413 if length.isdigit() else 400,
                        {"detail": self.message() if length.isdigit() else "a malformed Content-Length header"})
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.message())
            return msg

        await self.app(scope, limited, send)


async def _json(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


class Gate:
    """Admission: at most ``slots`` analyses run at once and ``queue`` more wait; a request beyond that is
    refused at once (429) with a Retry-After estimated from the recent analysis times. Used on one event loop."""

    def __init__(self, slots: int, queue: int) -> None:
        self.slots, self.queue = slots, queue
        self.inflight = 0  # admitted: running or waiting
        self.mean_seconds = 2.0  # moving average of an analysis' time (seeds the first Retry-After)

    def admit(self) -> bool:
        if self.inflight >= self.slots + self.queue:
            return False
        self.inflight += 1
        return True

    def release(self, seconds: float | None = None) -> None:
        self.inflight -= 1
        if seconds is not None:
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, drained ``slots`` at a time."""
        ahead = max(1, self.inflight - self.slots + 1)
        return int(min(600, max(1, math.ceil(self.mean_seconds * ahead / self.slots))))


class Pool:
    """The worker's analyzers (one per slot, each in its LiveEngine), lent to one request at a time."""

    def __init__(self, items: list[Any]) -> None:
        self._q: asyncio.Queue[Any] = asyncio.Queue()
        for x in items:
            self._q.put_nowait(x)

    async def take(self, timeout: float) -> Any:
        return await asyncio.wait_for(self._q.get(), timeout)

    def give(self, x: Any) -> None:
        self._q.put_nowait(x)


_UNSAFE = re.compile(r"[^\w.\-]+")


def upload_name(filename: str | None, index: int) -> str:
    """The client's file name reduced to a safe base name (no folders, no leading dots, at most 120 characters,
    its extension kept: it tells the analysis what the file claims to be)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = _UNSAFE.sub("_", base).lstrip(".")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:110] + dot + ext[:9]) if dot and len(ext) <= 9 else base[:120]
    return base or f"upload-{index}"
