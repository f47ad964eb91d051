"""The application factory: one FastAPI app per Runtime, every capability's router mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from clusterbrain import __version__
from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.http.api import router as ingest_router
from clusterbrain.devices.api import router as devices_router
from clusterbrain.devices.command_api import router as command_router
from clusterbrain.devices.sparkplug_api import router as sparkplug_router
from clusterbrain.platform.api import router as platform_router
from clusterbrain.platform.problems import install_problem_handlers
from clusterbrain.production.alarm_api import router as alarm_router
from clusterbrain.production.api import router as production_router
from clusterbrain.production.kpi_api import router as kpi_router
from clusterbrain.telemetry.api import router as telemetry_router
from clusterbrain.telemetry.store import StoreUnavailable


def create_app(runtime: Runtime, *, manage_runtime: bool = False) -> FastAPI:
    """Build the API around a runtime; with ``manage_runtime`` the app closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if manage_runtime:
            runtime.close()

    app = FastAPI(
        title="ClusterBrain",
        version=__version__,
        description="AIoT platform for clusters of small manufacturers.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.state.sessions = runtime.sessions
    app.state.store = runtime.store
    app.state.pipeline = runtime.pipeline
    app.state.directory = runtime.directory
    app.state.broker_auth = runtime.broker_auth
    app.state.alarms = runtime.alarms
    install_problem_handlers(app)
    for router in (
        platform_router,
        devices_router,
        telemetry_router,
        ingest_router,
        production_router,
        kpi_router,
        alarm_router,
        command_router,
        sparkplug_router,
    ):
        app.include_router(router)
    _add_operational_routes(app, runtime)
    if runtime.settings.console:
        from clusterbrain.ui.mount import mount_console

        mount_console(app, runtime)
    return app


def _add_operational_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> JSONResponse:
        checks = {"store": "ok", "mqtt": "disabled", "spool_files": len(runtime.pipeline.spool)}
        try:
            await run_in_threadpool(runtime.store.ping)
        except StoreUnavailable as exc:
            checks["store"] = f"unavailable: {exc.detail}"
        if runtime.mqtt is not None:
            checks["mqtt"] = "connected" if runtime.mqtt.connected else "disconnected"
        healthy = checks["store"] == "ok" and checks["mqtt"] != "disconnected"
        body = {"status": "ok" if healthy else "degraded", "version": __version__, **checks}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        runtime.metrics.queue_depth.set(runtime.pipeline.queue_depth)
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
