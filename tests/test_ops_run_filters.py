"""Listing runs: every filter is applied by the store before the page is cut, so a page
is full and "older" goes on from the last run shown."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

import httpx
from sqlalchemy import Engine

from sync_core.store import migrate, runs
from sync_core.store.db import make_engine
from sync_core.store.models import utcnow

from .conftest import make_settings
from .helpers import running_receiver
from .test_operator_names import BASE, OPS, TOKEN


def _runs(engine: Engine, count: int, *, dry_run: bool) -> list[int]:
    ids = []
    with engine.begin() as conn:
        for _ in range(count):
            run_id = runs.create(conn, direction="upstream", mode="full", source="api",
                                 dry_run=dry_run, trigger="ops", owner="o", now=utcnow(),
                                 lease=timedelta(seconds=60))
            runs.cancel(conn, run_id=run_id, actor="api", now=utcnow())
            ids.append(run_id)
    return ids


def test_the_dry_run_filter_pages_over_every_run(sqlite_url: str) -> None:
    """Dry runs older than a page of real runs are still found, in the console and the
    API, and the page's "older" link goes on from the last one shown."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    dry = _runs(engine, 3, dry_run=True)
    real = _runs(engine, 105, dry_run=False)  # more than one console page (100)
    with running_receiver(make_settings(sqlite_url)) as srv:
        listed = httpx.get(f"{srv.url}/ops/runs", headers=OPS,
                           params={"dry_run": "true", "limit": "2"}).json()["runs"]
        assert [r["id"] for r in listed] == dry[::-1][:2]
        older = httpx.get(f"{srv.url}/ops/runs", headers=OPS, params={
            "dry_run": "true", "before": str(listed[-1]["id"])}).json()["runs"]
        assert [r["id"] for r in older] == dry[:1]
        assert httpx.get(f"{srv.url}/ops/runs", headers=OPS,
                         params={"dry_run": "maybe"}).status_code == 400
        not_dry = httpx.get(f"{srv.url}/ops/runs", headers=OPS,
                            params={"dry_run": "false", "limit": "500"}).json()["runs"]
        assert sorted(r["id"] for r in not_dry) == real

        with contextlib.closing(httpx.Client(base_url=srv.url)) as client:
            client.post(f"{BASE}/login", data={"token": TOKEN})
            page = client.get(f"{BASE}/runs", params={"dry_run": "true"})
            assert page.status_code == 200
            shown = {int(i) for i in re.findall(r'href="/ops/console/runs/(\d+)"', page.text)}
            assert shown == set(dry)
            page = client.get(f"{BASE}/runs", params={"dry_run": "false"})
            shown = {int(i) for i in re.findall(r'href="/ops/console/runs/(\d+)"', page.text)}
            assert len(shown) == 100 and "before=" in page.text
    engine.dispose()
