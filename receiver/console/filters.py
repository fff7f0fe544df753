"""Jinja filters: times shown in UTC to the second, durations in words, values as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def when(value: str | None) -> str:
    """``2026-11-29T23:30:01.123+00:00`` → ``2026-11-29 23:30:01 UTC`` (the zone kept when
    it is not UTC: the next scheduled run is in the server's zone, as cron reads it)."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() and moment.utcoffset().total_seconds():  # type: ignore[union-attr]
        return moment.strftime("%Y-%m-%d %H:%M %Z").strip() or moment.isoformat()
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def run_duration(run: dict[str, Any]) -> str:
    started, finished = run.get("started_at"), run.get("finished_at")
    if not started:
        return "—"
    end = datetime.fromisoformat(finished) if finished else datetime.now(UTC)
    return duration((end - datetime.fromisoformat(started)).total_seconds()) + (
        "" if finished else " so far")


def show(value: Any) -> str:
    """A changed field's value: strings as they are (Chinese included), the rest as JSON."""
    if value is None:
        return "∅"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def tojson_pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


ALL = {"when": when, "duration": duration, "run_duration": run_duration, "show": show,
       "tojson_pretty": tojson_pretty}
