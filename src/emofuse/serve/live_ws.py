"""``WS /v1/live``: a live stream over a WebSocket, on the engine of :mod:`emofuse.live`.

Protocol. The client opens ``/v1/live`` (``?token=T`` when the server has a token: browsers cannot set headers
on a WebSocket), then sends one JSON text message::

    {"type": "start", "sample_rate": 16000, "format": "pcm16", "modalities": ["voice", "face", "text"]}

(every field optional; ``modalities`` a subset of the server's; ``"partials": false`` for no partial
transcripts; ``"speculate": false`` to analyse an utterance only once its pause is over; ``"asr_window": 30``
for Whisper's full window instead of the live default of 10 s), and then binary messages whose first byte
tags them: ``0x01`` + little-endian 16-bit mono PCM (~100 ms each), ``0x02`` + one JPEG (or PNG / WebP)
frame. ``{"type": "stop"}`` ends the stream: the open utterance is analysed, then ``{"type": "end", ...}`` and
the socket closes (1000). The server sends JSON events: ``ready`` (after the start message), ``face``,
``partial``, ``utterance`` (see :mod:`emofuse.live`), ``dropped`` and, before closing on a bad message,
``error``.

Bounded by construction: frames wait in one slot (a newer frame replaces an unread one: ``frames_dropped`` in
``end``), audio in the session's bounded buffer, events in a queue of 64 (face and partial events are dropped
when a client reads too slowly; an utterance that cannot be queued within 5 s closes the stream with 1008).
A bad start message, an unknown tag, a frame that is not an image or a stream silent for ``live_idle`` s
closes that stream (1003 / 1008 / 1001) with the reason; the others go on. At most ``max_live`` streams per
worker (1013 beyond).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ..errors import EmofuseError, InputError

AUDIO, FRAME = 1, 2
QUEUE = 64


def add_live_route(app: FastAPI, state: dict[str, Any], options: Any) -> None:
    pool = ThreadPoolExecutor(max_workers=2 * options.max_live, thread_name_prefix="emofuse-live")
    live: dict[int, int] = {}  # engine id -> streams on it

    @app.websocket("/v1/live")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        if options.token is not None and not hmac.compare_digest(
                (ws.query_params.get("token") or "").encode(), options.token.encode()):
            await _close(ws, 1008, "this server needs its token: connect to /v1/live?token=<token>")
            return
        if not state["ready"]:
            await _close(ws, 1013, "the models are still loading; retry shortly")
            return
        if sum(live.values()) >= options.max_live:
            await _close(ws, 1013, f"the server already serves {options.max_live} live streams; retry later")
            return
        engine = min(state["engines"], key=lambda e: live.get(id(e), 0))
        live[id(engine)] = live.get(id(engine), 0) + 1
        try:
            await _serve_stream(ws, engine, options, pool)
        finally:
            live[id(engine)] -= 1


async def _serve_stream(ws: WebSocket, engine: Any, options: Any, pool: ThreadPoolExecutor) -> None:
    from ..live import LiveOptions

    loop = asyncio.get_running_loop()
    try:
        first = await asyncio.wait_for(ws.receive(), options.live_idle)
    except asyncio.TimeoutError:
        await _close(ws, 1001, f"no start message within {options.live_idle:g} s")
        return
    if first.get("type") == "websocket.disconnect":
        return
    try:
        start = _start_message(first, engine.analyzer.options.modalities)
        session = engine.session(LiveOptions(sample_rate=start["sample_rate"], partials=start["partials"],
                                             speculate=start["speculate"], asr_window=start["asr_window"]))
    except EmofuseError as e:
        await _close(ws, 1003, str(e))
        return
    session.modalities = tuple(start["modalities"])
    out: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
    audio_ready, frame_ready, stopped = asyncio.Event(), asyncio.Event(), asyncio.Event()
    slot: list[tuple[bytes, float, float] | None] = [None]
    counts = {"frames_dropped": 0, "events_dropped": 0}
    failure: list[tuple[int, str]] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    def fail(code: int, reason: str) -> None:
        """End the stream from a worker: the receiver may be waiting for a message that never comes."""
        failure.append((code, reason))
        stopped.set()
        audio_ready.set()
        frame_ready.set()
        if "receive" in tasks and asyncio.current_task() is not tasks["receive"]:
            tasks["receive"].cancel()

    async def emit(events: list[dict[str, Any]]) -> None:
        for ev in events:
            if ev["type"] in ("face", "partial"):
                try:
                    out.put_nowait(ev)
                except asyncio.QueueFull:
                    counts["events_dropped"] += 1
                continue
            try:
                await asyncio.wait_for(out.put(ev), 5.0)
            except asyncio.TimeoutError:
                fail(1008, "the client reads events too slowly; the stream was closed")

    async def receive() -> None:
        while not stopped.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), options.live_idle)
            except asyncio.TimeoutError:
                failure.append((1001, f"no message for {options.live_idle:g} s; the stream was closed"))
                break
            if msg["type"] == "websocket.disconnect":
                failure.append((0, "client left"))
                break
            data = msg.get("bytes")
            if data is not None:
                if not data or data[0] not in (AUDIO, FRAME):
                    failure.append((1003, f"a binary message must start with 0x01 (audio) or 0x02 (frame), not "
                                          f"{data[:1].hex() or 'nothing'}"))
                    break
                if data[0] == AUDIO:
                    try:
                        await emit(session.push_audio(data[1:]))
                    except InputError as e:
                        failure.append((1003, str(e)))
                        break
                    audio_ready.set()
                else:
                    if slot[0] is not None:
                        counts["frames_dropped"] += 1  # the newest frame wins
                    slot[0] = (data[1:], session.now, time.monotonic())
                    frame_ready.set()
                continue
            try:
                kind = json.loads(msg.get("text") or "").get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind != "stop":
                failure.append((1003, "a text message after the start must be {\"type\": \"stop\"}"))
                break
            break
        stopped.set()
        audio_ready.set()
        frame_ready.set()

    async def speech() -> None:
        while True:
            await audio_ready.wait()
            audio_ready.clear()
            if stopped.is_set():
                if not failure:
                    await emit(await loop.run_in_executor(pool, session.finish))
                return
            await emit(await loop.run_in_executor(pool, session.step))

    async def faces() -> None:
        while not stopped.is_set():
            await frame_ready.wait()
            frame_ready.clear()
            item, slot[0] = slot[0], None
            if item is None:
                continue
            data, t, arrived = item
            try:
                ev = await loop.run_in_executor(pool, session.push_frame, data, t)
            except InputError as e:
                fail(1003, str(e))
                return
            if ev is not None:
                ev["latency_ms"] = round((time.monotonic() - arrived) * 1e3, 1)
                await emit([ev])
            else:
                counts["frames_dropped"] += 1

    async def send() -> None:
        while True:
            ev = await out.get()
            if ev is None:  # type: ignore[comparison-overlap]
                return
            await ws.send_text(json.dumps(ev, ensure_ascii=False))

    await ws.send_text(json.dumps({"type": "ready", "modalities": list(session.modalities), "asr_window": session.asr_window,
                                   "sample_rate": start["sample_rate"], "max_fps": session.options.max_fps}))
    sender = asyncio.create_task(send())
    tasks.update(receive=asyncio.create_task(receive()), speech=asyncio.create_task(speech()),
                 faces=asyncio.create_task(faces()))
    for r in await asyncio.gather(*tasks.values(), return_exceptions=True):
        if isinstance(r, WebSocketDisconnect):
            failure.append((0, "client left"))
        elif isinstance(r, Exception):  # this stream ends, with its reason; the server goes on
            failure.append((1011, f"internal error ({type(r).__name__}); please report it"))
    code, reason = failure[0] if failure else (1000, "")
    if code:
        if code == 1000:
            await out.put({"type": "end", **session.stats, "dropped_frames": session.dropped_frames, **counts})
        else:
            await out.put({"type": "error", "detail": reason})
    await out.put(None)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(sender, 10.0)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
        sender.cancel()
    if code:
        await _close(ws, code, reason, say=False)  # the error event went out through the queue


def _start_message(msg: dict[str, Any], served: tuple[str, ...]) -> dict[str, Any]:
    """The checked start message; InputError naming what is wrong."""
    from ..live import LiveOptions

    try:
        d = json.loads(msg.get("text") or "")
    except ValueError:
        d = None
    if not isinstance(d, dict) or d.get("type") != "start":
        raise InputError("the first message must be JSON {\"type\": \"start\", \"sample_rate\": 16000, \"format\": "
                         "\"pcm16\"}")
    unknown = sorted(set(d) - {"type", "sample_rate", "format", "modalities", "language", "partials", "speculate",
                             "asr_window"})
    if unknown:
        raise InputError(f"unknown start field(s) {unknown}; known: sample_rate, format, modalities, partials, "
                         "speculate, asr_window")
    for flag in ("partials", "speculate"):
        if not isinstance(d.get(flag, True), bool):
            raise InputError(f"{flag} must be true or false, not {d.get(flag)!r}")
    if d.get("format", "pcm16") != "pcm16":
        raise InputError(f"audio format {d.get('format')!r} is not supported: send 16-bit little-endian mono PCM "
                         "(\"pcm16\")")
    if d.get("language") is not None:
        raise InputError("a live stream's language is detected per utterance; leave 'language' out (or start the "
                         "server with --language)")
    mods = d.get("modalities", list(served))
    if not isinstance(mods, list) or not mods or any(m not in served for m in mods):
        raise InputError(f"modalities must be a non-empty subset of what this server runs: {list(served)}")
    return {"sample_rate": d.get("sample_rate", 16000), "modalities": [m for m in served if m in mods],
            "partials": d.get("partials", True), "speculate": d.get("speculate", True), "asr_window": d.get("asr_window", LiveOptions.asr_window)}


async def _close(ws: WebSocket, code: int, reason: str, say: bool = True) -> None:
    """Close with ``code``; an error's reason also goes out as an ``error`` event first (``say``), whole: a close
    frame's reason holds at most 123 bytes."""
    try:
        if say and code != 1000 and reason:
            await ws.send_text(json.dumps({"type": "error", "detail": reason}))
        await ws.close(code, reason.encode()[:120].decode("utf-8", "ignore"))
    except (RuntimeError, WebSocketDisconnect):
        pass  # the client is gone already
