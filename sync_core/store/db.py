"""Engine creation: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

# The store cannot be reached or used right now (refused or dropped connections, a locked
# or unopenable SQLite file, an exhausted pool): retrying later is the answer, not a fix.
UNAVAILABLE: tuple[type[Exception], ...] = (
    exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)


def normalize_url(url: str) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1)
                      if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30},
                               **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # A connection the server dropped (a restart, a failover) is replaced before use, busy
    # or idle: one round trip a checkout, which the hot paths keep few.
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(parsed, **kwargs)


def autocommit(engine: Engine) -> Engine:
    """The same pool for reads that need no transaction: on PostgreSQL each statement
    commits alone, which spares the BEGIN before the first and the ROLLBACK when the
    connection goes back to the pool (two round trips a checkout). Under READ COMMITTED
    every statement takes its own snapshot either way. SQLite keeps its own transactions."""
    if is_sqlite(engine):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is out of reach, rather than a bug or bad data."""
    return isinstance(error, UNAVAILABLE)


def describe(error: BaseException) -> str:
    """The driver's own first line, without the SQL and parameters (personal data) that
    SQLAlchemy appends: ``OperationalError: connection failed: … Connection refused``."""
    cause = getattr(error, "orig", None) or error
    text_ = str(cause).strip()
    first = text_.splitlines()[0] if text_ else ""
    return f"{type(cause).__name__}: {first[:200]}"


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes can fail at once with "database
    # is locked" when another writer got there first; taking the write lock up front
    # makes it wait (busy_timeout) instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see above)
    # WAL lets readers run beside the single writer; NORMAL is durable across process
    # crashes in WAL mode (only an OS crash can lose the last commits).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
