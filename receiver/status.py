"""The status strip: one snapshot of what an operator checks first. Served as
``GET /ops/status`` and shown on every console page; nothing here calls WeCom or Authing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sync_core.engine.scheduler import next_fire, scheduled_directions
from sync_core.http.client import CredentialState
from sync_core.store import runs
from sync_core.store.inbox import _iso
from sync_core.store.models import EventStatus, InboxEvent, RunStatus, utcnow
from sync_core.version import version
from sync_core.wecom.source import WeComSource

from .context import ctx

DIRECTIONS = ("upstream", "downstream")
_OPEN = (EventStatus.PENDING.value, EventStatus.FAILED.value)


def schedule(settings: Any, now: datetime | None = None) -> dict[str, dict[str, str | None]]:
    """Direction → its cron and next fire time (ISO, the server's zone, as cron reads it)."""
    local = (now or utcnow()).astimezone()
    return {direction: {"cron": cron, "next_run_at": next_fire(cron, local).isoformat()}
            for direction, cron in scheduled_directions(settings).items()}


async def snapshot(request: Request) -> dict[str, Any]:
    c = ctx(request)
    now = utcnow()

    def read() -> dict[str, Any]:
        t = InboxEvent.__table__  # type: ignore[attr-defined]
        with c.engine.connect() as conn:
            depth = {s: int(n) for s, n in conn.execute(
                select(t.c.status, func.count()).group_by(t.c.status))}
            oldest = conn.execute(select(func.min(t.c.received_at))
                                  .where(t.c.status.in_(_OPEN))).scalar()
            # A partial run failed some items: it is not a success.
            last = {d: runs.last_finished(conn, direction=d, statuses=(
                RunStatus.SUCCEEDED.value,)) for d in DIRECTIONS}
            active = {d: runs.recent(conn, direction=d, limit=1, status=RunStatus.RUNNING.value)
                      for d in DIRECTIONS}
        return {"depth": depth, "oldest": oldest, "last": last, "active": active}

    data = await run_in_threadpool(read)
    oldest = data["oldest"]
    age = None if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())
    planned = schedule(c.settings, now)
    directions = {}
    for d in DIRECTIONS:
        last = data["last"][d]
        directions[d] = {
            "last_success": None if last is None else {
                "run_id": last["id"], "status": last["status"],
                "finished_at": _iso(last["finished_at"])},
            "running": [r["id"] for r in data["active"][d]],
            "next_run_at": planned.get(d, {}).get("next_run_at"),
            "cron": planned.get(d, {}).get("cron"),
        }
    return {
        "version": version(),
        "inbox": {"depth": {s.value: data["depth"].get(s.value, 0) for s in EventStatus},
                  "open": sum(data["depth"].get(s, 0) for s in _OPEN),
                  "oldest_open_age_seconds": None if age is None else round(age, 1)},
        "directions": directions,
        "wecom_reads": _wecom_reads(request),
        "credentials": _credentials(request),
    }


def _wecom_reads(request: Request) -> str:
    runtime = request.app.state.runtime
    if runtime is None:
        return "unknown"
    source = runtime.sync.source  # the upstream direction reads WeCom
    if not isinstance(source, WeComSource):
        return "unknown"
    return "restricted" if source.cooldown.active else "available"


def credential_states(runtime: Any) -> dict[str, CredentialState]:
    """The last word of each remote on our credentials (readiness and the strip); no call
    is made here."""
    return {"wecom": runtime.remotes.wecom.credentials,
            "authing": runtime.remotes.authing.credentials}


def _credentials(request: Request) -> dict[str, dict[str, str | None]]:
    """Each remote's last word on our credentials (the readiness state), no call made."""
    runtime = request.app.state.runtime
    if runtime is None:
        return {name: {"state": "not configured", "reason": None}
                for name in ("wecom", "authing")}
    out: dict[str, dict[str, str | None]] = {}
    for name, state in credential_states(runtime).items():
        if state.refused is not None:
            out[name] = {"state": "refused", "reason": state.refused[:300]}
        else:
            out[name] = {"state": "accepted" if state.checked else "unchecked", "reason": None}
    return out


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
