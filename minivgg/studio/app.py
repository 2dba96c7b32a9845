"""The studio's web application (Starlette): the page, its JSON API and the event stream.

Security, after Jupyter server: every API call carries the random token of the printed URL (query
``token`` or header ``X-Minivgg-Token``; 403 without), the ``Host`` header must name this server
(400 otherwise: DNS rebinding), a form is limited in bytes (413) and its images in pixels and decoded
by the CLI's hardened loader, file names never come from the client and nothing is written outside
the runs folder. The static files (``static/``: HTML, CSS, plain JavaScript) hold no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UserError
from ..run.image import load_image
from ..run.samples import SAMPLES, sample_path
from ..style.presets import PRESETS
from . import jobs, runs
from .hub import Hub

STATIC = Path(__file__).with_name("static")
PING_SECONDS = 2.0
_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": message, **({"field": field} if field else {})}
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8765`` -> ``::1``).

    Examples
    --------
    >>> host_name("127.0.0.1:8765"), host_name("[::1]:80"), host_name("LocalHost")
    ('127.0.0.1', '::1', 'localhost')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class _HostMiddleware:
    """400 for a request whose ``Host`` is not this server (DNS rebinding)."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, {h.strip("[]").lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                await _error(400, "this server only answers to its own address")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class _TokenMiddleware:
    """403 for a request to the page or the API without the server's token."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            request = Request(scope)
            given = request.query_params.get("token") or request.headers.get("x-minivgg-token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                response = _error(403, "this address needs the token printed by 'minivgg serve'")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


class _BodyLimitMiddleware:
    """413 for a request body over ``jobs.MAX_REQUEST_BYTES`` (by its length, or as it arrives)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        mb = self.limit // 2**20
        await _error(413, f"the form is larger than {mb} MB; use smaller images")(
            scope, receive, send
        )


def create_app(runs_folder, token: str, hosts=("127.0.0.1", "localhost", "::1")) -> Starlette:
    """The studio's ASGI application over ``runs_folder`` (created if missing).

    Parameters
    ----------
    runs_folder : str or Path
        Where every run's folder is written (and the gallery read from).
    token : str
        The secret every request but the static files must carry.
    hosts : sequence of str
        Host names the ``Host`` header may give (the port is not compared).

    Returns
    -------
    Starlette
        The application; its ``state.hub`` is the run queue (``hub.Hub``).

    Examples
    --------
    >>> import tempfile
    >>> app = create_app(tempfile.mkdtemp(), "secret")
    >>> app.state.hub.current is None, [r.path for r in app.routes][:3]
    (True, ['/', '/api/state', '/api/samples/{name}'])
    """
    folder = runs.open_runs_folder(runs_folder)
    runs.interrupted_runs(folder)
    hub = Hub(folder)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            await run_in_threadpool(hub.close)

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", headers=_NO_STORE)

    async def state(request: Request):
        return JSONResponse(
            {
                **hub.queue_event(),
                "streams": len(hub.streams),
                "samples": [
                    {"name": s.name, "title": s.title, "author": s.author, "year": s.year}
                    for s in SAMPLES.values()
                ],
                "presets": list(PRESETS),
                "color_modes": list(jobs.COLOR_MODES),
                "max_styles": jobs.MAX_STYLES,
                "max_upload_mb": jobs.MAX_UPLOAD_BYTES // 2**20,
                "worker_pid": hub.worker_pid(),
            },
            headers=_NO_STORE,
        )

    async def sample(request: Request):
        name = request.path_params["name"]
        if name not in SAMPLES:
            return _error(404, f"unknown sample {name!r}; the samples are {', '.join(SAMPLES)}")
        return FileResponse(sample_path(name), media_type="image/jpeg")

    async def gallery(request: Request):
        return JSONResponse(await run_in_threadpool(runs.gallery, folder), headers=_NO_STORE)

    def _run_id(request: Request) -> str | None:
        run_id = request.path_params["run_id"]
        if not runs.is_run_id(run_id) or not (folder / run_id / runs.SETTINGS).is_file():
            return None
        return run_id

    async def run_info(request: Request):
        run_id = _run_id(request)
        if run_id is None:
            return _error(404, "no such run")
        info = runs.summary(folder, run_id) or {}
        log = runs.read_json(folder / run_id / runs.LOG) or {}
        rows = hub.rows if run_id == hub.current else log.get("iterations", [])
        return JSONResponse({**info, "rows": rows}, headers=_NO_STORE)

    async def run_file(request: Request):
        run_id, name = _run_id(request), request.path_params["name"]
        if run_id is None or name not in runs.SERVED:
            return _error(404, "no such file")
        path = folder / run_id / runs.SERVED[name]
        if not path.is_file():
            return _error(404, f"run {run_id} has no {name} yet")
        download = request.query_params.get("download") == "1"
        return FileResponse(
            path,
            headers=_NO_STORE,
            filename=f"minivgg-{run_id}-{name}" if download else None,
        )

    async def stop(request: Request):
        run_id = _run_id(request)
        if run_id is None:
            return _error(404, "no such run")
        result = hub.stop(run_id)
        if result is None:
            return _error(409, f"run {run_id} is neither running nor queued")
        return JSONResponse({"id": run_id, "status": result})

    async def resume(request: Request):
        run_id = _run_id(request)
        if run_id is None:
            return _error(404, "no such run")
        info = runs.summary(folder, run_id) or {}
        if run_id == hub.current or any(i == run_id for i, _ in hub.waiting):
            return _error(409, f"run {run_id} is already running or queued")
        if not info.get("resumable"):
            return _error(
                409, f"run {run_id} has no checkpoint to resume from (only a stopped run has one)"
            )
        return JSONResponse({"id": run_id, "status": hub.submit(run_id, resume=True)})

    async def create(request: Request):
        try:
            form = await request.form(max_files=16, max_fields=64, max_part_size=64 * 1024)
        except _TooLarge:
            raise
        except (MultiPartException, ClientDisconnect, ValueError) as exc:
            return _error(400, f"the form could not be read ({exc})", "form")
        run_id, run_folder = runs.new_run(folder)
        try:
            settings = jobs.parse_settings(form)
            files = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[name] = await value.read(jobs.MAX_UPLOAD_BYTES + 1)
            await run_in_threadpool(_store, settings, form, files, run_folder)
        except UserError as exc:
            runs.remove_run(folder, run_id)
            field = exc.field if isinstance(exc, jobs.FieldError) else jobs.field_of(str(exc))
            return _error(400, str(exc), field)
        except BaseException:
            runs.remove_run(folder, run_id)
            raise
        finally:
            await form.close()
        return JSONResponse({"id": run_id, "status": hub.submit(run_id)}, status_code=201)

    def _store(settings: dict, form, files: dict, run_folder: Path) -> None:
        """Check the settings, save the inputs and the painted regions, write ``settings.json``."""
        n = len(settings["styles"])
        for name in ("content", *(f"style{k}" for k in range(1, n + 1))):
            value = form.get(name)
            source = (
                settings["content"] if name == "content" else settings["styles"][int(name[5:]) - 1]
            )
            if source == "upload" and isinstance(value, str) and value:
                raise jobs.FieldError(name, f"the {name} field must be a file upload, not text")
        jobs.check(settings, run_folder)
        jobs.store_input(run_folder, "content", settings["content"], files.get("content"), folder)
        for k in range(1, n + 1):
            jobs.store_input(
                run_folder,
                f"style{k}",
                settings["styles"][k - 1],
                files.get(f"style{k}"),
                folder,
                k,
            )
        masks = [files.get(f"mask{k}") for k in range(1, n + 1)]
        if n > 1 and any(m is not None for m in masks):
            shape = load_image(run_folder / runs.CONTENT).shape[:2]
            for k, data in enumerate(masks, 1):
                if not data:
                    raise jobs.FieldError(
                        "regions", f"paint a region for style {k}, or clear the regions"
                    )
                jobs.store_mask(run_folder, k, data, shape)
            settings["masks"] = True
        runs.write_json(run_folder / runs.SETTINGS, settings)

    async def events(request: Request):
        stream = hub.subscribe()

        async def messages():
            try:
                yield f"retry: 1000\n{hub_encode_hello()}"
                while True:
                    try:
                        message = await asyncio.wait_for(stream.get(), PING_SECONDS)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": ping\n\n"
                        continue
                    if message is None:
                        return
                    yield message
            finally:
                hub.streams.discard(stream)

        return StreamingResponse(
            messages(),
            media_type="text/event-stream",
            headers={**_NO_STORE, "X-Accel-Buffering": "no"},
        )

    def hub_encode_hello() -> str:
        return f"event: hello\ndata: {json.dumps(hub.snapshot(), default=float)}\n\n"

    async def not_found(request: Request, exc):
        return _error(getattr(exc, "status_code", 404), "no such page")

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/api/samples/{name}", sample),
        Route("/api/runs", gallery, methods=["GET"]),
        Route("/api/runs", create, methods=["POST"]),
        Route("/api/runs/{run_id}", run_info),
        Route("/api/runs/{run_id}/files/{name}", run_file),
        Route("/api/runs/{run_id}/stop", stop, methods=["POST"]),
        Route("/api/runs/{run_id}/resume", resume, methods=["POST"]),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    allowed = {*hosts, "127.0.0.1", "localhost", "::1"}
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_HostMiddleware, hosts=allowed),
            Middleware(_TokenMiddleware, token=token),
            Middleware(_BodyLimitMiddleware, limit=jobs.MAX_REQUEST_BYTES),
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.hub = hub
    return app
