"""Health, readiness, metrics and the ops inbox listing over real HTTP."""

from __future__ import annotations

import httpx

from sync_core.wecom.crypto import WeComCrypto

from .conftest import CallbackKeys, make_settings
from .helpers import change_contact, running_receiver, signed_post


def test_health_ready_metrics(db_url: str) -> None:
    with running_receiver(make_settings(db_url)) as srv:
        from sync_core.version import version

        assert httpx.get(f"{srv.url}/healthz").json() == {"status": "ok",
                                                          "version": version()}
        ready = httpx.get(f"{srv.url}/readyz")
        metrics = httpx.get(f"{srv.url}/metrics")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert metrics.status_code == 200
    assert "wecom_sync_inbox_events" in metrics.text
    assert f'wecom_sync_build_info{{version="{version()}"}} 1.0' in metrics.text
    # The default schedule is on: the next upstream fire time is exported.
    assert 'wecom_sync_next_reconcile_timestamp_seconds{direction="upstream"}' in metrics.text


def test_readyz_reports_an_unreachable_database(sqlite_url: str) -> None:
    # A PostgreSQL URL nobody listens on: the app still starts (no migrations), but is
    # not ready.
    settings = make_settings("postgresql://postgres@127.0.0.1:9/none?connect_timeout=1")
    from receiver.app import create_app
    from simulators.server import BackgroundServer

    with BackgroundServer(create_app(settings, run_migrations=False)) as srv:
        response = httpx.get(f"{srv.url}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_ops_requires_a_configured_token(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url, ops_token=None)) as srv:
        response = httpx.get(f"{srv.url}/ops/events",
                             headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403


def test_ops_bearer_token(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        none = httpx.get(f"{srv.url}/ops/events")
        wrong = httpx.get(f"{srv.url}/ops/events", headers={"Authorization": "Bearer nope"})
        basic = httpx.get(f"{srv.url}/ops/events", auth=("ops", "ops-test-token"))
        right = httpx.get(f"{srv.url}/ops/events",
                          headers={"Authorization": "Bearer ops-test-token"})
    assert none.status_code == wrong.status_code == basic.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 200 and right.json() == {"events": []}


def test_ops_events_filters_by_status_and_validates(db_url: str, keys: CallbackKeys) -> None:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    ops = {"Authorization": "Bearer ops-test-token"}
    with running_receiver(make_settings(db_url, keys)) as srv:
        for uid in ("a", "b", "c"):
            params, body = signed_post(crypto, change_contact(
                keys.corp_id, f"<ChangeType>delete_user</ChangeType><UserID>{uid}</UserID>"),
                keys.corp_id)
            assert httpx.post(f"{srv.url}/wecom/callback", params=params,
                              content=body).text == "success"
        pending = httpx.get(f"{srv.url}/ops/events", params={"status": "pending"},
                            headers=ops).json()["events"]
        dead = httpx.get(f"{srv.url}/ops/events", params={"status": "dead"},
                         headers=ops).json()["events"]
        limited = httpx.get(f"{srv.url}/ops/events", params={"limit": "2"},
                            headers=ops).json()["events"]
        bad = httpx.get(f"{srv.url}/ops/events", params={"status": "bogus"}, headers=ops)
        bad_limit = httpx.get(f"{srv.url}/ops/events", params={"limit": "x"}, headers=ops)
    assert [e["entity_key"] for e in pending] == ["c", "b", "a"]
    assert dead == [] and len(limited) == 2
    assert {"id", "source", "entity_kind", "entity_key", "status", "attempts", "received_at",
            "last_error"} <= set(pending[0])
    assert bad.status_code == 400 and "status" in bad.json()["error"]
    assert bad_limit.status_code == 400
