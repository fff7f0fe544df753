"""The Starlette application factory. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from sync_core.metrics import Metrics
from sync_core.runtime import build_runtime
from sync_core.settings import Settings
from sync_core.store import migrate
from sync_core.store.db import make_engine
from sync_core.store.writer import InboxWriter
from sync_core.version import version
from sync_core.wecom.crypto import WeComCrypto

from . import console, routes_authing, routes_health, routes_ops, routes_runs, routes_wecom
from .context import AppContext
from .failures import AnswerFailures

log = logging.getLogger(__name__)


def build_crypto(settings: Settings) -> WeComCrypto | None:
    if not settings.callback_configured:
        return None
    assert settings.wecom_callback_token and settings.wecom_encoding_aes_key
    return WeComCrypto(settings.wecom_callback_token.get_secret_value(),
                       settings.wecom_encoding_aes_key.get_secret_value(),
                       settings.wecom_corp_id or "")


def create_app(settings: Settings, *, run_migrations: bool = True,
               with_worker: bool = False) -> Starlette:
    """``with_worker``: run the worker in this process (``serve``); it needs the WeCom
    contact secret and the Authing key pair, and SettingsError names a missing one."""
    engine = make_engine(settings.database_url)
    context = AppContext(
        settings=settings,
        engine=engine,
        writer=InboxWriter(engine, batch_max=settings.inbox_batch_max,
                           linger_ms=settings.inbox_batch_linger_ms),
        metrics=Metrics(version=version()),
        crypto=build_crypto(settings),
    )

    runtime = (build_runtime(settings, engine, context.metrics, wake=context.wake)
               if with_worker or _has_remote_credentials(settings) else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_migrations:
            await run_in_threadpool(migrate.upgrade, engine)
        log.info("wecom-sync %s starting", version())
        await context.writer.start()
        stop = asyncio.Event()
        background = [asyncio.create_task(runtime.work(stop), name="worker")
                      ] if runtime and with_worker else []
        try:
            yield
        finally:
            stop.set()
            if runtime is not None:
                # A run must not outlive the process in state "running": it records what
                # it applied and ends now (a reconcile is safe to run again).
                runtime.reconciler.interrupt(getattr(
                    app.state, "stop_reason", "interrupted: the service stopped"))
            await asyncio.gather(*background, return_exceptions=True)
            if runtime is not None:
                await runtime.reconciler.wait()
                await runtime.aclose()
            await context.writer.stop()
            engine.dispose()

    routes = [
        Route("/wecom/callback", routes_wecom.verify_url, methods=["GET"]),
        Route("/wecom/callback", routes_wecom.receive, methods=["POST"]),
        Route("/authing/webhook", routes_authing.receive, methods=["POST"]),
        Route("/healthz", routes_health.healthz, methods=["GET"]),
        Route("/readyz", routes_health.readyz, methods=["GET"]),
        Route("/metrics", routes_health.metrics, methods=["GET"]),
        Route("/ops/events", routes_ops.events, methods=["GET"]),
        Route("/ops/events/{id}", routes_ops.event, methods=["GET"]),
        Route("/ops/events/{id}/replay", routes_ops.replay, methods=["POST"]),
        Route("/ops/objects/{kind}/{key}", routes_ops.object_history, methods=["GET"]),
        Route("/ops/status", routes_ops.status, methods=["GET"]),
        Route("/ops/openapi.json", routes_ops.openapi, methods=["GET"]),
        Route("/ops/sync/users/{userid}", routes_ops.sync_user, methods=["POST"]),
        Route("/ops/sync/departments/{id}", routes_ops.sync_department, methods=["POST"]),
        Route("/ops/reconcile", routes_runs.reconcile, methods=["POST"]),
        Route("/ops/runs", routes_runs.list_runs, methods=["GET"]),
        Route("/ops/runs/{id}", routes_runs.get_run, methods=["GET"]),
        Route("/ops/runs/{id}/approve", routes_runs.approve, methods=["POST"]),
        Route("/ops/runs/{id}/reject", routes_runs.reject, methods=["POST"]),
        Route("/ops/runs/{id}/cancel", routes_runs.cancel, methods=["POST"]),
        Mount("/ops/console", routes=console.routes(), name="console"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Not an ``Exception`` handler: Starlette re-raises after it, and uvicorn then logs
        # a traceback and drops the keep-alive connection (see failures.py).
        middleware=[Middleware(AnswerFailures, throttle=context.throttle)],
    )
    app.state.ctx = context
    app.state.runtime = runtime
    return app


def _has_remote_credentials(settings: Settings) -> bool:
    return all((settings.wecom_corp_id, settings.wecom_contact_secret,
                settings.authing_access_key_id, settings.authing_access_key_secret))

