"""Shared fixtures: databases (SQLite and the real PostgreSQL), keys, a running receiver."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine

from sync_core.settings import Settings
from sync_core.store import migrate
from sync_core.store.db import make_engine
from sync_core.wecom.crypto import generate_aes_key

# The property tests share two cores with the end-to-end stacks: generating an example can be
# slow for reasons that have nothing to do with the code under test, so the speed health check
# only adds flakes (each test sets its own example count; deadlines are off everywhere).
settings.register_profile("shared-machine", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")

PG_DSN = os.environ.get("WECOM_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_unreachable_reason() -> str | None:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return f"PostgreSQL not reachable at {PG_DSN}: {type(exc).__name__}"
    return None


_PG_REASON = _pg_unreachable_reason()


def require_postgres() -> None:
    if _PG_REASON is None:
        return
    if UNDER_CI:
        pytest.fail(f"{_PG_REASON} (CI=true: the PostgreSQL tests must run)")
    pytest.skip(_PG_REASON)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the real PostgreSQL, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wecom-sync.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wecom-sync.db'}"
    return str(request.getfixturevalue("pg_url"))


def _migrated(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    yield from _migrated(db_url)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated SQLite database."""
    yield from _migrated(sqlite_url)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A migrated schema in the real PostgreSQL."""
    yield from _migrated(pg_url)


@dataclass(frozen=True)
class CallbackKeys:
    corp_id: str
    token: str
    aes_key: str


def random_aes_key() -> str:
    return generate_aes_key()


@pytest.fixture
def keys() -> CallbackKeys:
    return CallbackKeys(corp_id="ww" + secrets.token_hex(8), token=secrets.token_urlsafe(24),
                        aes_key=random_aes_key())


def make_settings(db_url: str, keys: CallbackKeys | None = None, **extra: object) -> Settings:
    values: dict[str, object] = {"database_url": db_url, "ops_token": "ops-test-token"}
    if keys is not None:
        values.update(wecom_corp_id=keys.corp_id, wecom_callback_token=keys.token,
                      wecom_encoding_aes_key=keys.aes_key)
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
