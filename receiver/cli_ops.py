"""``wecom-sync approve|reject|cancel RUN``, ``wecom-sync events [ID]`` and
``wecom-sync replay EVENT``: what the console and the ops API do, from a shell on the server
(settings from the environment). ``--by NAME`` is recorded with the decision or replay as
``cli:NAME`` (without it, as ``cli``).

Exit 0 when done, 1 when the run or event does not exist or is in the wrong state.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sync_core.store.models import EventSource, EventStatus

from .params import argument

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync_core.runtime import SyncRuntime

T = TypeVar("T")


def register(sub: Any) -> None:
    for name, about in (("approve", "apply the deletes a blocked run staged"),
                        ("reject", "drop the deletes a blocked run staged"),
                        ("cancel", "stop a queued or running run")):
        cmd = sub.add_parser(name, help=about)
        cmd.add_argument("run", type=argument(what="run id"), help="the run id")
        cmd.add_argument("--json", action="store_true", help="print the run as JSON")
        _by(cmd)
        cmd.set_defaults(handler=decide, decision=name)

    replay = sub.add_parser("replay", help="queue an event again (a dead one included)")
    replay.add_argument("id", type=argument(what="event id"), help="the event id")
    replay.add_argument("--json", action="store_true", help="print the event as JSON")
    _by(replay)
    replay.set_defaults(handler=replay_command)

    events = sub.add_parser("events", help="the inbox, or one event with every attempt")
    events.add_argument("id", nargs="?", type=argument(what="event id"), help="an event id")
    events.add_argument("--status", choices=[s.value for s in EventStatus])
    events.add_argument("--source", choices=[s.value for s in EventSource])
    events.add_argument("--limit", type=argument(1, 1000, "limit"), default=50)
    events.add_argument("--json", action="store_true", help="print JSON")
    events.set_defaults(handler=events_command)


def _by(cmd: Any) -> None:
    cmd.add_argument("--by", metavar="NAME", default=None,
                     help="your name, recorded with what you do as cli:NAME")


def _actor(args: argparse.Namespace) -> str:
    """``cli:NAME``; raises ActorError for a name that cannot be recorded."""
    from .actor import actor, operator_name

    return actor("cli", operator_name(args.by))


def decide(args: argparse.Namespace) -> int:
    from sync_core.engine.reconciler import RequestError
    from sync_core.store import runs
    from sync_core.store.models import utcnow

    from .actor import ActorError
    from .cli import with_runtime

    try:
        who = _actor(args)
    except ActorError as exc:
        return _fail(str(exc))
    try:
        if args.decision == "approve":
            async def job(runtime: SyncRuntime) -> None:
                await runtime.reconciler.approve(args.run, who)
                await runtime.reconciler.wait()

            with_runtime(job)
        else:
            step = runs.reject if args.decision == "reject" else runs.cancel
            _with_engine(lambda engine: _in_transaction(engine, lambda conn: step(
                conn, run_id=args.run, actor=who, now=utcnow())))
    except LookupError as exc:
        return _fail(str(exc).strip("'"))
    except (RequestError, runs.DecisionError) as exc:
        return _fail(str(exc))

    def show(engine: Engine) -> dict[str, Any]:
        with engine.connect() as conn:
            run = runs.get(conn, args.run)
            assert run is not None
            return runs.as_json(run, runs.items(conn, args.run))

    run = _with_engine(show)
    if args.json:
        print(json.dumps(run, ensure_ascii=False, indent=2))
    else:
        from .cli_runs import _print_run

        _print_run(run)
    return 0


def replay_command(args: argparse.Namespace) -> int:
    """Re-queue event ``args.id``; a running worker (``serve`` or ``worker``) takes it at its
    next poll. Exit 1 when there is no such event."""
    from sync_core.store import queue
    from sync_core.store.models import utcnow

    from .actor import ActorError
    from .history import event_detail

    try:
        who = _actor(args)
    except ActorError as exc:
        return _fail(str(exc))

    def requeue(engine: Engine) -> dict[str, Any] | None:
        if not _in_transaction(engine, lambda conn: queue.replay(
                conn, event_id=args.id, now=utcnow(), actor=who)):
            return None
        return event_detail(engine, args.id)

    try:
        return _show_event(_with_engine(requeue), args)
    except queue.EventInFlight as exc:
        return _fail(str(exc))


def events_command(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from sync_core.store.inbox import as_json, list_events

    from .history import event_detail

    if args.id is not None:
        return _show_event(_with_engine(lambda engine: event_detail(engine, args.id)), args)

    def select(engine: Engine) -> list[dict[str, Any]]:
        with Session(engine) as session:
            return [as_json(e) for e in list_events(session, status=args.status,
                                                    source=args.source,
                                                    limit=args.limit)]

    listed = _with_engine(select)
    if args.json:
        print(json.dumps({"events": listed}, ensure_ascii=False, indent=2))
        return 0
    from .cli_table import table

    print(table(["id", "status", "source", "kind", "key", "tries", "reason"],
                [[e["id"], e["status"], e["source"], e["entity_kind"], e["entity_key"],
                  e["attempts"], e["last_error"] or ""] for e in listed],
                right=frozenset({0, 5})))
    return 0


def _show_event(event: dict[str, Any] | None, args: argparse.Namespace) -> int:
    """Print one event (``--json`` or text); exit 1 when there is none."""
    if event is None:
        return _fail(f"no event {args.id}")
    if args.json:
        print(json.dumps(event, ensure_ascii=False, indent=2))
    else:
        _print_event(event)
    return 0


def _print_event(event: dict[str, Any]) -> None:
    print(f"event {event['id']}: {event['source']} {event['event_type']} "
          f"{event['entity_kind']} {event['entity_key']} → {event['status']}")
    print(f"  received {event['received_at']}")
    if event.get("outcome") and event["status"] == "done":
        print(f"  result: {event['outcome']}")
    if event.get("last_error"):
        print(f"  reason: {event['last_error']}")
    for a in event["history"]:
        who = f" by {a['actor']}" if a["actor"] else ""
        print(f"  {a['finished_at']}  {a['outcome']}{who}"
              f"{'  attempt ' + str(a['number']) if a['outcome'] != 'replayed' else ''}"
              f"{'  ' + a['detail'] if a['detail'] else ''}")


def _with_engine(job: Callable[[Engine], T]) -> T:
    from sync_core.store import migrate
    from sync_core.store.db import make_engine

    from .cli import settings_from_env

    engine = make_engine(settings_from_env().database_url)
    try:
        migrate.upgrade(engine)
        return job(engine)
    finally:
        engine.dispose()


def _in_transaction(engine: Engine, step: Callable[[Any], T]) -> T:
    with engine.begin() as conn:
        return step(conn)


def _fail(message: str) -> int:
    print(f"wecom-sync: {message}", file=sys.stderr)
    return 1
