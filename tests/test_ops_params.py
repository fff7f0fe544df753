"""Ops path and query parameters are checked before they reach the store: 400 or 404, never
a 5xx, and every filter the contract documents narrows the answer."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from sync_core.store import runs
from sync_core.store.db import make_engine
from sync_core.store.models import utcnow
from sync_core.wecom.crypto import WeComCrypto

from .conftest import CallbackKeys, make_settings
from .helpers import change_contact, running_receiver, signed_post

OPS = {"Authorization": "Bearer ops-test-token"}
HUGE = "99999999999999999999999"


@pytest.mark.parametrize("method, path", [
    ("GET", f"/ops/runs/{HUGE}"),
    ("POST", f"/ops/events/{HUGE}/replay"),
    ("POST", f"/ops/runs/{HUGE}/approve"),
    ("POST", f"/ops/sync/departments/{HUGE}"),
    ("GET", f"/ops/runs/{2**31}"),  # INTEGER on PostgreSQL is 32-bit
    ("GET", f"/ops/runs/{2**63}"),
    ("GET", "/ops/runs/0"),
    ("GET", "/ops/runs/%C2%B2"),  # "²": str.isdigit() says yes, int() says no
    ("GET", "/ops/runs/-1"),
    ("GET", f"/ops/events?before={HUGE}"),
    ("GET", f"/ops/runs?before={HUGE}"),
    ("GET", "/ops/runs/5?item_status=bogus"),
    ("GET", "/ops/runs/5?kind=tag"),
    ("GET", "/ops/runs/5?action=explode"),
    ("GET", "/ops/runs?status=bogus"),
    ("GET", "/ops/runs?direction=sideways"),
    ("GET", "/ops/runs?mode=all"),
    ("GET", "/ops/events?status=bogus"),
    ("GET", "/ops/events?entity_kind=robot"),
    ("GET", "/ops/events?entity_key=" + "k" * 256),
    ("GET", "/ops/events?entity_key=%00"),
    ("GET", "/ops/events?stauts=pending"),  # a misspelt filter is refused, not ignored
    ("GET", "/ops/events?status=pending&status=dead"),
    ("GET", "/ops/runs?limit=501"),
    ("POST", "/ops/sync/users/zhangsan?force=1"),
])
def test_a_hostile_parameter_is_a_400(db_url: str, method: str, path: str,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with running_receiver(make_settings(db_url)) as srv:
        response = httpx.request(method, srv.url + path, headers=OPS, timeout=30)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and len(response.json()["error"]) < 300
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_run_or_event_that_does_not_exist_is_a_404(db_url: str) -> None:
    with running_receiver(make_settings(db_url)) as srv:
        answers = [httpx.request(m, srv.url + p, headers=OPS) for m, p in (
            ("GET", f"/ops/runs/{2**31 - 1}"), ("POST", f"/ops/events/{2**31 - 1}/replay"),
            ("GET", "/ops/runs/5"), ("GET", "/ops/nothing"))]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]


def _seed_runs(engine: Engine) -> list[int]:
    """Three finished runs with items of every kind and a few statuses."""
    now = utcnow()
    made = []
    for mode, source, status in (("create_update", "api", "succeeded"),
                                 ("full", "excel", "partial"),
                                 ("delete_only", "api", "blocked")):
        with engine.begin() as conn:
            run_id = runs.create(conn, direction="upstream", mode=mode, source=source,
                                 dry_run=False, trigger="manual", owner="test", now=now,
                                 lease=timedelta(minutes=1))
            items: list[dict[str, Any]] = [
                {"kind": "user", "key": "a", "action": "create", "status": "applied"},
                {"kind": "user", "key": "b", "action": "update", "status": "failed"},
                {"kind": "department", "key": "2", "action": "create", "status": "applied"},
                {"kind": "department", "key": "3", "action": "delete", "status": "skipped"},
            ]
            runs.add_items(conn, run_id=run_id, first_seq=0, items=[
                {**i, "changes": [], "error": None} for i in items])
            runs.finish(conn, run_id=run_id, status=status, counters={}, now=now)
        made.append(run_id)
    return made


def test_every_documented_filter_narrows_the_answer(db_url: str, keys: CallbackKeys) -> None:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    engine = make_engine(db_url)
    with running_receiver(make_settings(db_url, keys)) as srv:
        first, second, third = _seed_runs(engine)
        engine.dispose()
        for body in ("<ChangeType>delete_user</ChangeType><UserID>x</UserID>",
                     "<ChangeType>delete_user</ChangeType><UserID>y</UserID>",
                     "<ChangeType>delete_party</ChangeType><Id>7</Id>"):
            params, content = signed_post(crypto, change_contact(keys.corp_id, body),
                                          keys.corp_id)
            assert httpx.post(f"{srv.url}/wecom/callback", params=params,
                              content=content).text == "success"

        def get(path: str, **params: str) -> Any:
            response = httpx.get(srv.url + path, params=params, headers=OPS)
            assert response.status_code == 200, response.text
            return response.json()

        def keys_of(**params: str) -> list[str]:
            return [e["entity_key"] for e in get("/ops/events", **params)["events"]]

        def run_ids(**params: str) -> list[int]:
            return [r["id"] for r in get("/ops/runs", **params)["runs"]]

        def item_keys(run_id: int, **params: str) -> list[str]:
            return [i["key"] for i in get(f"/ops/runs/{run_id}", **params)["items"]]

        assert keys_of(entity_key="x") == ["x"]
        assert keys_of(entity_kind="department") == ["7"]
        assert keys_of(entity_kind="user", entity_key="7") == []
        assert keys_of(source="wecom", status="pending") == ["7", "y", "x"]
        assert keys_of(source="ops") == []
        newest = get("/ops/events")["events"][0]["id"]
        assert keys_of(before=str(newest)) == ["y", "x"]

        assert run_ids() == [third, second, first]
        assert run_ids(status="partial") == [second]
        assert run_ids(mode="delete_only") == [third]
        assert run_ids(source="excel") == [second]
        assert run_ids(direction="upstream", limit="2") == [third, second]
        assert run_ids(direction="downstream") == []
        assert run_ids(before=str(third)) == [second, first]

        assert item_keys(first) == ["a", "b", "2", "3"]
        assert item_keys(first, item_status="applied") == ["a", "2"]
        assert item_keys(first, kind="department") == ["2", "3"]
        assert item_keys(first, action="create") == ["a", "2"]
        assert item_keys(first, kind="user", action="create") == ["a"]
        assert item_keys(first, item_status="staged") == []


@pytest.mark.parametrize("body, named", [
    ({"mode": "full", "dryrun": True}, "dryrun"),  # a misspelt option is never ignored
    ({"source": "excel", "excel": "x"}, "multipart"),  # a JSON body cannot carry a file
    ({"file": "report.xlsx"}, "multipart"),
    ({"sheet": "1"}, "sheet"),  # file options belong with the file
    ({"dry_run": "yes"}, "dry_run"),  # JSON has booleans: a string is a mistake
    ({"dry_run": 1}, "dry_run"),
    ({"dry_run": None}, "dry_run"),
    ({"mode": ["full"]}, "mode"),
    ({"direction": 1}, "direction"),
    ({"source": {"api": True}}, "source"),
])
def test_a_reconcile_body_with_an_unknown_field_or_wrong_type_is_a_400(
        db_url: str, body: dict[str, Any], named: str) -> None:
    """Checked before anything else: this receiver has no credentials, so a body that got
    past the check would be a 503."""
    with running_receiver(make_settings(db_url)) as srv:
        answer = httpx.post(f"{srv.url}/ops/reconcile", headers=OPS, json=body)
        listed = httpx.get(f"{srv.url}/ops/runs", headers=OPS).json()["runs"]
    assert answer.status_code == 400 and named in answer.json()["error"], answer.text
    assert listed == []


@pytest.mark.parametrize("data, files, named", [
    ({"dryrun": "true"}, {"file": ("a.xlsx", b"x")}, "dryrun"),
    ({}, {"file": ("a.xlsx", b"x"), "depts": ("d.csv", b"x")}, "depts"),
    ({"file": "a.xlsx"}, {"departments": ("d.csv", b"x")}, "file"),
    ({"mode": ["full", "delete_only"]}, {"file": ("a.xlsx", b"x")}, "mode"),
])
def test_a_multipart_reconcile_with_an_unknown_or_repeated_part_is_a_400(
        db_url: str, data: dict[str, Any], files: dict[str, Any], named: str) -> None:
    with running_receiver(make_settings(db_url)) as srv:
        answer = httpx.post(f"{srv.url}/ops/reconcile", headers=OPS, data=data, files=files)
    assert answer.status_code == 400 and named in answer.json()["error"], answer.text


@pytest.mark.parametrize("path", [
    "/ops/runs/1/approve", "/ops/runs/1/reject", "/ops/runs/1/cancel",
    "/ops/events/1/replay", "/ops/sync/users/zhangsan", "/ops/sync/departments/2",
])
def test_a_route_without_options_refuses_a_body_with_fields(db_url: str, path: str) -> None:
    """``{"force": true}`` on a route that has no options must not look accepted."""
    with running_receiver(make_settings(db_url)) as srv:
        refused = httpx.post(srv.url + path, headers=OPS, json={"force": True})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS).json()["events"]
        empty = httpx.post(srv.url + path, headers=OPS, json={})
    assert refused.status_code == 400 and "body" in refused.json()["error"], refused.text
    assert events == []
    assert empty.status_code != 400, empty.text  # {} is no options
