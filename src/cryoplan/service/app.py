"""The case review web application: `create_app(settings)` builds the FastAPI app that `cryoplan serve` runs.

Pages (Jinja2, server-rendered) and the JSON API under ``/api/`` call the same functions in
`cryoplan.service.store`; this module wires settings, the database, the job runner, the request limits at
the edge (`cryoplan.service.edge`), error handling and the security headers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cryoplan import __version__
from cryoplan.errors import InputError
from cryoplan.service import db as database
from cryoplan.service.auth import LoginThrottled, NotLoggedIn
from cryoplan.service.edge import RequestLimits
from cryoplan.service.jobs import JobRunner, PlanOptions
from cryoplan.service.labels import TEMPLATE_GLOBALS
from cryoplan.service.routes import admin_users, api, case_entry, inbox, pages, preview, session, status
from cryoplan.service.settings import ServiceSettings
from cryoplan.service.store import NotAllowed, NotFound, VersionConflict, run_document
from cryoplan.service.uploads import UploadTooLarge, sweep_partial_uploads

PACKAGE = Path(str(resources.files("cryoplan.service")))
NIIVUE_BUNDLE = PACKAGE / "viewer" / "node_modules" / "@niivue" / "niivue" / "dist" / "index.js"

# Scripts only from the app itself (no inline script, so injected markup cannot run); NiiVue needs WebGL
# workers from blob: URLs and WebAssembly for some decoders.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "worker-src 'self' blob:; connect-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def back_url(request: Request) -> str:
    """Where an error page's Back link goes: the page the browser came from when it is one of this service's
    (a link, so the Content-Security-Policy, which allows no inline script, does not block it), else the
    case list."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/") or referer.path == request.url.path:
        return "/"
    return referer.path + (f"?{referer.query}" if referer.query else "")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app: migrate the database to the latest schema, then mount pages, API and static files."""
    settings = settings or ServiceSettings()
    # Everything the service writes is patient data, for its own user only: folders 0700, files 0600
    # (Dask workers started from here inherit the mask).
    os.umask(0o077)
    for folder in (settings.data_dir, settings.data_dir / "documents", settings.data_dir / "jobs"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    sweep_partial_uploads(settings.data_dir / "documents")
    engine = database.make_engine(settings.resolved_database_url())
    database.migrate(engine)
    sessions = database.session_factory(engine)
    runner = JobRunner(
        sessions,
        settings.data_dir,
        settings.dask_scheduler,
        settings.dask_workers,
        settings.job_max_attempts,
        lambda db, case: run_document(db, case, settings.data_dir),
        PlanOptions(
            grid_mm=settings.plan_grid_mm, uncertainty_samples=settings.uncertainty_samples, seed=settings.plan_seed
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runner.recover()
        yield
        runner.close()
        engine.dispose()

    app = FastAPI(
        title="cryoplan case review",
        version=__version__,
        lifespan=lifespan,
        description="Cases, documents, workflow, assessments and plans of liver-tumour cryoablation.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.runner = runner
    app.state.secret_key = settings.resolved_secret_key()
    app.state.templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    app.state.templates.env.globals.update(TEMPLATE_GLOBALS, version=__version__)

    # Bodies are counted as they arrive, before any route or login runs: an upload may be its limit plus
    # the multipart framing, any other request a small JSON or form body.
    app.add_middleware(
        RequestLimits,
        max_body_bytes=int(settings.max_json_kb * 2**10),
        max_upload_bytes=int(settings.max_upload_mb * 2**20) + 2**20,
        max_json_depth=settings.max_json_depth,
        respond=lambda scope, status, message: error(Request(scope), status, message),
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def error(request: Request, status: int, message: str, **extra: Any) -> Response:
        """JSON under /api/, an HTML page for browsers (with a Back link that needs no script)."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message, **extra}, status_code=status)
        context = {"status": status, "message": message, "back_url": back_url(request)}
        page: Response = app.state.templates.TemplateResponse(request, "error.html", context, status_code=status)
        return page

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        response = error(request, exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        return error(request, 422, problems)

    @app.exception_handler(NotLoggedIn)
    async def _login_redirect(request: Request, _exc: NotLoggedIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        status = 413 if isinstance(exc, UploadTooLarge) else 422
        return error(request, status, str(exc), field=exc.field)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return error(request, 404, f"{exc} not found")

    @app.exception_handler(VersionConflict)
    async def _conflict(request: Request, exc: VersionConflict) -> Response:
        return error(request, 409, str(exc), current_version=exc.current)

    @app.exception_handler(StaleDataError)
    async def _race(request: Request, _exc: StaleDataError) -> Response:
        return error(request, 409, "the case was changed by someone else while saving; reload it and save again")

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Response:
        return error(request, 409, str(exc))

    @app.exception_handler(LoginThrottled)
    async def _throttled(request: Request, exc: LoginThrottled) -> Response:
        wait_s = max(1, round(exc.retry_after_s))
        response = error(request, 429, f"too many failed logins from your address; try again in {wait_s} s")
        response.headers["Retry-After"] = str(wait_s)
        return response

    app.include_router(session.router)  # before pages: it answers POST /login and /logout
    app.include_router(api.router)
    app.include_router(case_entry.router)  # before pages: /cases/new is not a case id
    app.include_router(pages.router)
    app.include_router(status.router)
    app.include_router(admin_users.router)
    app.include_router(inbox.router)
    app.include_router(preview.router)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    @app.get("/vendor/niivue.js", include_in_schema=False)
    def niivue_bundle() -> Response:
        if not NIIVUE_BUNDLE.exists():
            return Response(
                "NiiVue is not installed: run npm ci --prefix src/cryoplan/service/viewer",
                status_code=404,
                media_type="text/plain",
            )
        return Response(
            NIIVUE_BUNDLE.read_bytes(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
        )

    return app
