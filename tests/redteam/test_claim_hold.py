"""Red team: the downstream write held to the claim (``engine.echo.claimed``, commit
3b6097b). Each test names the fault it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from sync_core.metrics import Metrics
from sync_core.runtime import build_runtime
from sync_core.store import migrate
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow

from ..conftest import make_settings


def _link_reads_of_a_claim(tmp_path: Path, direction: str) -> list[str]:
    """The statements on the link table that the worker's claim of one Authing webhook
    makes, with the service wired as ``direction``."""
    settings = make_settings(
        f"sqlite:///{tmp_path / f'{direction}.db'}", direction=direction,
        wecom_corp_id="corp", wecom_contact_secret="s", wecom_api_base="http://127.0.0.1:9",
        authing_api_base="http://127.0.0.1:9", authing_access_key_id="pool",
        authing_access_key_secret="pool-secret", authing_webhook_secret="hook")
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    try:
        runtime = build_runtime(settings, engine, Metrics())
        with engine.begin() as conn:
            insert_new(conn, [NewEvent(source="authing", dedupe_key="a", entity_kind="user",
                                       entity_key="u-1", event_type="user.updated",
                                       payload={}, received_at=utcnow())])
        seen: list[str] = []

        def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if " link" in statement.lower():
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", spy)
        claims = runtime.worker._settle_and_claim([], 8)
        assert [c.entity_key for c in claims] == ["u-1"]
        return seen
    finally:
        engine.dispose()


def test_a_downstream_only_claim_makes_no_echo_read(tmp_path: Path) -> None:
    """Downstream alone records no write intents and holds no write to a claim
    (``WeComWriter.intended_target`` is None when upstream does not run), so its claims
    need no read of the link table. ``Worker._uses_echoes`` takes "both" from the
    distinct directions it maps, and the runtime always maps operator events (``ops``) to
    the upstream sync, in downstream-only mode too: every claim of webhooks paid an echo
    read for nothing."""
    assert _link_reads_of_a_claim(tmp_path, "downstream") == []
    assert _link_reads_of_a_claim(tmp_path, "both") != []  # the read where it serves
