"""The case review web application: `create_app(settings)` builds the FastAPI app that `cryoplan serve` runs.

Pages (Jinja2, server-rendered) and the JSON API under ``/api/`` call the same functions in
`cryoplan.service.store`; this module wires settings, the database, the job runner, error handling and the
security headers.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm.exc import StaleDataError

from cryoplan import __version__
from cryoplan.errors import InputError
from cryoplan.service import db as database
from cryoplan.service.auth import LoginLocked, NotLoggedIn
from cryoplan.service.jobs import JobRunner, PlanOptions
from cryoplan.service.routes import api, pages, status
from cryoplan.service.settings import ServiceSettings
from cryoplan.service.store import NotAllowed, NotFound, VersionConflict, run_document
from cryoplan.service.uploads import UploadTooLarge

PACKAGE = Path(str(resources.files("cryoplan.service")))
NIIVUE_BUNDLE = PACKAGE / "viewer" / "node_modules" / "@niivue" / "niivue" / "dist" / "index.js"

# Scripts only from the app itself (no inline script, so injected markup cannot run); NiiVue needs WebGL
# workers from blob: URLs and WebAssembly for some decoders.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "worker-src 'self' blob:; connect-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app: migrate the database to the latest schema, then mount pages, API and static files."""
    settings = settings or ServiceSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
    async def lifespan(_app: FastAPI):
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
    app.state.templates.env.globals["version"] = __version__

    # Refuse a body larger than any upload may be before reading it (the upload itself is counted again
    # as it is stored, for bodies sent without a length).
    max_body_bytes = int(settings.max_upload_mb * 2**20) + 2**20

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body_bytes:
            response = error(request, 413, f"request body larger than {max_body_bytes} bytes")
        else:
            response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def error(request: Request, status: int, message: str, **extra) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message, **extra}, status_code=status)
        return app.state.templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )

    @app.exception_handler(NotLoggedIn)
    async def _login_redirect(request: Request, _exc: NotLoggedIn):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        status = 413 if isinstance(exc, UploadTooLarge) else 422
        return error(request, status, str(exc), field=exc.field)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return error(request, 404, f"{exc} not found")

    @app.exception_handler(VersionConflict)
    async def _conflict(request: Request, exc: VersionConflict):
        return error(request, 409, str(exc), current_version=exc.current)

    @app.exception_handler(StaleDataError)
    async def _race(request: Request, _exc: StaleDataError):
        return error(request, 409, "the case was changed by someone else while saving; reload it and save again")

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed):
        return error(request, 409, str(exc))

    @app.exception_handler(LoginLocked)
    async def _locked(request: Request, _exc: LoginLocked):
        minutes = settings.login_window_s / 60
        return error(request, 429, f"too many failed logins; try again in {minutes:g} minutes")

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(status.router)
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
