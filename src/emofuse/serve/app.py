"""The HTTP API: ``create_app(ServeOptions())`` is a FastAPI application; ``run(options)`` serves it with uvicorn.

Routes (the OpenAPI schema is at ``/openapi.json``, its browsable form at ``/docs``):

* ``GET /`` — the web page (``static/``: drop a file, or stream the webcam and microphone over ``/v1/live``).
* ``WS /v1/live`` — a live stream (``live_ws.py``).
* ``GET /healthz`` — the process answers; ``GET /readyz`` — 200 once the models are loaded (503 before, or
  with the cause when loading failed).
* ``GET /v1/models`` — the model components (package, sha256), the heads shipped in the package (sha256) and
  the analysis options this server runs with.
* ``POST /v1/analyze`` — a multipart upload (field ``file``, repeatable: any video, audio or image
  ``emofuse analyze`` takes) or JSON ``{"text": "..." | ["...", ...]}``; the answer is ``{"results": [...],
  "failed": k}``, each result the document ``emofuse analyze --format json`` prints for that input (named by
  the client's file name). One bad input costs its own result (an ``error`` entry); when every input fails
  the status is 422 with the first message as ``detail``.

Limits, all options with defaults: body size (413 before the body is read whole), files per request, text
length, media duration, analyses at once per worker (``concurrency``, each with its own models), requests
waiting (``queue``; beyond it 429 with Retry-After) and the request timeout (504; the analysis stops at its
next progress step). The server writes uploads to its own temporary folder under names it chooses, and never
opens a path named by a client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request  # this module is imported only to serve (emofuse.serve is lazy)
from fastapi.responses import JSONResponse

from ..errors import EmofuseError, InputError
from ..pipeline import AnalyzerOptions
from .limits import BodyLimit, BodyTooLarge, Gate, Pool, upload_name

__all__ = ["ServeOptions", "create_app", "run"]

ENV = "EMOFUSE_SERVE_OPTIONS"  # how `run` hands the options to uvicorn's worker processes


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # processes; each loads its own models
    token: str | None = None  # when set, /v1/* needs "Authorization: Bearer <token>"
    max_upload_mb: float = 256.0  # one request's body
    max_files: int = 32  # files in one request
    max_text_chars: int = 200_000  # text in one request
    concurrency: int = 1  # analyses at once per worker, each with its own models (~0.7 GB): 2 cores gain nothing
    queue: int = 16  # requests waiting for an analysis beyond those running; more get 429
    timeout: float = 600.0  # seconds for a request, waiting included; then 504
    max_live: int = 4  # live WebSocket streams at once per worker; more are closed with 1013 (try again later)
    live_idle: float = 30.0  # seconds a live stream may stay silent (no message) before it is closed
    analyzer: AnalyzerOptions = field(default_factory=lambda: AnalyzerOptions(max_duration=1800.0))

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise InputError(f"--port must be an integer in 0..65535, not {self.port!r}")
        for name in ("workers", "max_files", "max_text_chars", "concurrency", "max_live"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"--{name.replace('_', '-')} must be an integer >= 1, not {v!r}")
        if isinstance(self.queue, bool) or not isinstance(self.queue, int) or self.queue < 0:
            raise InputError(f"--queue must be an integer >= 0, not {self.queue!r}")
        for name in ("max_upload_mb", "timeout", "live_idle"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"--{name.replace('_', '-')} must be a positive number, not {v!r}")
        if self.token is not None and (not self.token.strip() or any(c.isspace() for c in self.token)):
            raise InputError("--token must be a non-empty string without spaces (clients send "
                             "'Authorization: Bearer <token>')")
        if not isinstance(self.analyzer, AnalyzerOptions):
            raise InputError(f"ServeOptions.analyzer must be AnalyzerOptions, not {type(self.analyzer).__name__}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, s: str) -> "ServeOptions":
        d = json.loads(s)
        a = d.pop("analyzer")
        a["modalities"] = tuple(a["modalities"])
        return cls(**d, analyzer=AnalyzerOptions(**a))


class _Expired(Exception):
    """The request's time ran out during its analysis."""


def create_app(options: ServeOptions = ServeOptions(), analyzers: list[Any] | None = None) -> Any:
    """The ASGI application. ``analyzers``: ready analyzers to serve with (tests share theirs); by default the
    worker loads ``options.concurrency`` of them at start-up."""
    from .. import __version__

    state: dict[str, Any] = {"ready": False, "error": None, "pool": None, "load_seconds": None}
    gate = Gate(options.concurrency, options.queue)
    executor = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="emofuse-serve")
    shipped = _shipped_files()

    def load() -> list[Any]:
        from ..pipeline import Analyzer

        return [Analyzer(options.analyzer) for _ in range(options.concurrency)]

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        t0 = time.perf_counter()
        try:
            ready = analyzers if analyzers is not None else await asyncio.get_running_loop().run_in_executor(
                executor, load)
            from ..live import LiveEngine

            engines = [LiveEngine(a) for a in ready]  # each analyzer with its two locks, shared by REST and live
            state.update(pool=Pool(engines), engines=engines, ready=True, load_seconds=round(time.perf_counter() - t0, 2))
        except Exception as e:  # noqa: BLE001 - /readyz says why; the process stays up to say it
            state["error"] = f"{type(e).__name__}: {e}"
        yield
        if analyzers is None:
            for e in state.get("engines", []):
                e.analyzer.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="emofuse", version=__version__, lifespan=lifespan,
                  description="Emotion recognition from voice, face and words: per utterance, what was said "
                              "and which emotion it carried.")

    def refuse(status: int, detail: str, **headers: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)

    async def authorised(request: Request) -> None:
        if options.token is not None:
            got = request.headers.get("authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {options.token}".encode()):
                raise HTTPException(401, "this server needs a bearer token: send 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})

    async def bug(request: Request, e: Exception) -> JSONResponse:  # a short message, never a traceback
        return refuse(500, f"internal error ({type(e).__name__}); please report it with the input that caused it")

    app.add_exception_handler(Exception, bug)
    v1 = [Depends(authorised)]

    static = Path(__file__).resolve().parent / "static"

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        from fastapi.responses import FileResponse

        return FileResponse(static / "index.html", media_type="text/html")

    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if state["ready"]:
            return JSONResponse({"status": "ready", "load_seconds": state["load_seconds"]})
        if state["error"]:
            return JSONResponse({"status": "failed", "detail": state["error"]}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "2"})

    @app.get("/v1/models", dependencies=v1)
    async def models() -> dict[str, Any]:
        from ..store import COMPONENTS

        return {"emofuse": __version__,
                "components": [{"name": c.name, "package": c.dist, "version": c.pin, "path": c.path,
                                "sha256": c.sha256, "licence": c.licence} for c in COMPONENTS.values()],
                "shipped": shipped, "options": json.loads(options.to_json())["analyzer"]}

    @app.post("/v1/analyze", dependencies=v1, openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/json": {"schema": {"type": "object", "required": ["text"], "properties": {
            "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}}}}}})
    async def analyze(request: Request) -> JSONResponse:
        """Analyse uploaded files or text; the same documents as ``emofuse analyze --format json``."""
        deadline = time.monotonic() + options.timeout
        if not state["ready"]:
            return refuse(503, "the models are still loading; retry shortly" if not state["error"] else
                          f"the server could not load its models: {state['error']}", **{"Retry-After": "2"})
        if not gate.admit():
            return refuse(429, f"the server is busy ({gate.inflight} requests running or waiting); retry later",
                          **{"Retry-After": str(gate.retry_after())})
        tmp = Path(tempfile.mkdtemp(prefix="emofuse-serve-"))
        took = None
        try:
            try:
                job = await _read_job(request, tmp, options)
            except EmofuseError as e:
                return refuse(413 if isinstance(e, BodyTooLarge) else 422, str(e))
            try:
                engine = await state["pool"].take(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return refuse(503, f"no analysis slot freed within the server's {options.timeout:g} s request "
                              "timeout; retry later", **{"Retry-After": str(gate.retry_after())})
            try:
                t1 = time.monotonic()
                docs = await asyncio.get_running_loop().run_in_executor(executor, _run_job, engine, job, deadline)
                took = time.monotonic() - t1
            except _Expired:
                return refuse(504, f"the analysis ran past the server's {options.timeout:g} s request timeout; "
                              "send shorter media or fewer files per request")
            finally:
                state["pool"].give(engine)
        finally:
            gate.release(took)
            shutil.rmtree(tmp, ignore_errors=True)
        failed = sum("error" in d for d in docs)
        body = {"results": docs, "failed": failed}
        if failed == len(docs):
            return JSONResponse(body | {"detail": docs[0]["error"]}, status_code=422)
        return JSONResponse(body)

    from .live_ws import add_live_route

    add_live_route(app, state, options)
    return BodyLimit(app, int(options.max_upload_mb * 2**20))


async def _read_job(request: Any, tmp: Path, options: ServeOptions) -> dict[str, Any]:
    """The request's inputs: uploads copied into ``tmp`` (one sub-folder each, under the client's base name), or
    the texts of a JSON body. Raises InputError naming what is wrong."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"the JSON body cannot be parsed ({e}); send {{\"text\": \"...\"}}") from None
        text = body.get("text") if isinstance(body, dict) else None
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InputError("a JSON body must be {\"text\": \"...\"} or {\"text\": [\"...\", ...]} (a string or a "
                             "non-empty list of strings); upload media as multipart form field 'file'")
        if sum(map(len, texts)) > options.max_text_chars:
            raise InputError(f"the text is over the server's limit of {options.max_text_chars} characters; split it "
                             "over several requests or start the server with a larger --max-text-chars")
        return {"texts": texts, "files": []}
    if kind != "multipart/form-data":
        raise InputError(f"unsupported Content-Type {kind or '(none)'!r}: upload files as multipart/form-data "
                         "(field 'file', repeatable) or send JSON {\"text\": ...}")
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    try:
        form = await request.form(max_files=options.max_files, max_fields=16)
    except (MultiPartException, HTTPException) as e:  # Starlette turns the first into the second
        raise InputError(f"the multipart body cannot be read ({getattr(e, 'detail', None) or e}); at most "
                         f"{options.max_files} files per request, in form field 'file'") from None
    files: list[tuple[str, Path]] = []
    try:
        uploads = form.getlist("file")
        others = sorted({k for k in form.keys() if k != "file"})
        if others:
            raise InputError(f"unknown form field(s) {others}: upload files in field 'file' (repeatable)")
        if not uploads:
            raise InputError("no file in the upload: send each file in multipart form field 'file'")
        for i, up in enumerate(uploads):
            if isinstance(up, str):
                raise InputError("form field 'file' must hold a file upload, not a text value")
            name = upload_name(up.filename, i)
            dst = tmp / str(i) / name
            dst.parent.mkdir()
            with dst.open("wb") as f:
                await asyncio.to_thread(shutil.copyfileobj, up.file, f, 1 << 20)
            files.append((name, dst))
    finally:
        await form.close()
    return {"texts": [], "files": files, "tmp": str(tmp)}


def _run_job(engine: Any, job: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
    """Analyse a job on a worker thread, holding the analyzer's models (live streams on it wait); documents in
    input order, each named by the client's name."""
    with engine.speech_lock, engine.face_lock:
        return _analyse(engine.analyzer, job, deadline)


def _analyse(analyzer: Any, job: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
    from ..result import AnalysisError

    def check(*_: Any) -> None:
        if time.monotonic() > deadline:
            raise _Expired

    docs: list[dict[str, Any]] = []
    if job["files"]:
        prefix = job["tmp"] + os.sep
        names = {str(p): n for n, p in job["files"]}
        for r in analyzer.iter_analyze([p for _, p in job["files"]], on_progress=check):
            check()
            d = r.to_dict()
            d["input"] = names.get(d["input"], d["input"]).replace(prefix, "")
            if "error" in d:  # the path of our temporary copy means nothing to the client: its own name instead
                for n, p in job["files"]:
                    d["error"] = d["error"].replace(str(p), n)
                d["error"] = d["error"].replace(prefix, "")
            docs.append(d)
    for t in job["texts"]:
        check()
        try:
            docs.append(analyzer.analyze_text(t, name="<text>").to_dict())
        except EmofuseError as e:
            docs.append(AnalysisError("<text>", str(e), type(e).__name__).to_dict())
    return docs


def _shipped_files() -> list[dict[str, str]]:
    """The model files inside the package, with their sha256 (what this server's answers come from)."""
    folder = Path(__file__).resolve().parent.parent / "weights"
    return [{"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in sorted(folder.glob("*")) if p.suffix in (".safetensors", ".json")]


def _factory() -> Any:
    """uvicorn's worker processes build the app from the options ``run`` put in the environment."""
    return create_app(ServeOptions.from_json(os.environ[ENV]))


def run(options: ServeOptions) -> None:
    """Serve until interrupted (uvicorn; ``options.workers`` processes)."""
    import uvicorn

    if options.workers == 1:
        uvicorn.run(create_app(options), host=options.host, port=options.port, log_level="info")
        return
    os.environ[ENV] = options.to_json()
    uvicorn.run("emofuse.serve.app:_factory", factory=True, host=options.host, port=options.port,
                workers=options.workers, log_level="info")
