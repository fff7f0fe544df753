"""``wecom-sync`` command line. Thin: parse argv, build settings, call into sync_core."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sync_core.settings import Settings, SettingsError, load_settings

from .params import argument

if TYPE_CHECKING:
    from sync_core.runtime import SyncRuntime

T = TypeVar("T")
log = logging.getLogger("wecom_sync")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # a simulator's own options (see simulate.py)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except SettingsError as exc:
        print(f"wecom-sync: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wecom-sync",
        description="Keep a WeCom directory and an Authing user pool in step.")
    from sync_core.version import version

    parser.add_argument("--version", action="version", version=f"wecom-sync {version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="HTTP receiver (and worker, scheduler) in one process")
    serve.add_argument("--host", help="listen address (default WECOM_SYNC_HOST)")
    serve.add_argument("--port", type=argument(1, 65535, "port"),
                       help="listen port (default WECOM_SYNC_PORT)")
    serve.add_argument("--no-worker", action="store_true",
                       help="only receive and store; another process applies events")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser("worker", help="apply stored events (no HTTP)")
    worker.set_defaults(handler=_worker)

    setup = sub.add_parser("setup-authing",
                           help="create the organization and define the extension fields")
    setup.set_defaults(handler=_setup_authing)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(title="db commands", metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply Alembic migrations up to head")
    upgrade.set_defaults(handler=_db_upgrade)

    from . import cli_ops, cli_runs, demo, simulate

    cli_runs.register(sub)
    cli_ops.register(sub)
    simulate.register(sub)
    demo.register(sub)
    return parser


def settings_from_env() -> Settings:
    settings = load_settings()
    from sync_core import logs

    logs.configure(settings.log_level, settings.log_format)
    return settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = settings_from_env()
    app = create_app(settings, with_worker=not args.no_worker)  # names missing credentials
    if not settings.callback_configured:
        import logging

        try:
            settings.require("wecom_corp_id", "wecom_callback_token", "wecom_encoding_aes_key")
        except SettingsError as exc:
            logging.getLogger("wecom_sync").warning(
                "WeCom callback not configured (%s): /wecom/callback answers 503", exc)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # Runs in progress are interrupted at shutdown; their record names the signal.
            app.state.stop_reason = f"interrupted by {signal.Signals(sig).name}"
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    Server(uvicorn.Config(app, host=args.host or settings.host,
                          port=args.port or settings.port,
                          log_level=settings.log_level.lower(), access_log=args.access_log,
                          timeout_graceful_shutdown=10, log_config=None)).run()
    return 0


class StopSignals:
    """SIGINT and SIGTERM with handlers of our own: PID 1 in a container has no default
    action for SIGTERM, so without one ``docker stop`` would wait and then kill.

    The first signal calls ``on_stop(signal.SIGTERM)``; a second one ends the process at
    once, recording nothing (a run left ``running`` is failed when its lease expires)."""

    def __init__(self, on_stop: Callable[[signal.Signals], None]) -> None:
        self.received: signal.Signals | None = None
        self._on_stop = on_stop

    def install(self) -> None:
        """In the running event loop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, sig: signal.Signals) -> None:
        if self.received is not None:
            os._exit(128 + sig)
        self.received = sig
        log.warning("%s received: stopping", sig.name)
        self._on_stop(sig)


def with_runtime(job: Callable[[SyncRuntime], Awaitable[T]],
                 on_stop: Callable[[SyncRuntime, signal.Signals], None] | None = None, *,
                 need_wecom: bool = True) -> T:
    """Settings from the environment, a migrated database and the upstream clients for the
    length of ``job``; everything is closed afterwards. With ``on_stop``, SIGINT and
    SIGTERM call it with the runtime and the signal (see ``StopSignals``).
    ``need_wecom=False``: WeCom's credentials may be unset (a run from a file alone)."""
    from sync_core.metrics import Metrics
    from sync_core.runtime import build_runtime
    from sync_core.store import migrate
    from sync_core.store.db import make_engine

    settings = settings_from_env()
    engine = make_engine(settings.database_url)

    async def main() -> T:
        runtime = build_runtime(settings, engine, Metrics(), need_wecom=need_wecom)
        if on_stop is not None:
            StopSignals(lambda sig: on_stop(runtime, sig)).install()
        try:
            await asyncio.to_thread(migrate.upgrade, engine)
            return await job(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(main())
    finally:
        engine.dispose()


def _worker(args: argparse.Namespace) -> int:
    stop = asyncio.Event()

    async def job(runtime: SyncRuntime) -> None:
        await runtime.work(stop)

    def on_stop(runtime: SyncRuntime, sig: signal.Signals) -> None:
        stop.set()
        runtime.reconciler.interrupt(f"interrupted by {sig.name}")

    with_runtime(job, on_stop)
    return 0


def _setup_authing(args: argparse.Namespace) -> int:
    from sync_core.errors import SyncError

    async def job(runtime: SyncRuntime) -> tuple[str, str]:
        await runtime.sync.prepare()
        return runtime.sync.binding.organization_code, runtime.sync.binding.root_department_id

    try:
        code, root = with_runtime(job)
    except SyncError as exc:
        print(f"wecom-sync: Authing setup failed: {exc}", file=sys.stderr)
        return 1
    print(f"organization {code!r} ready (root department {root}); extension fields defined")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from sync_core.store import migrate
    from sync_core.store.db import make_engine

    settings = settings_from_env()
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        print(f"database at revision {migrate.current_revision(engine)}")
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        print(f"wecom-sync: database upgrade failed: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
