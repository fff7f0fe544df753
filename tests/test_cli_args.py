"""A number the CLI cannot use (an id the store cannot hold, a limit or port out of range,
not a number) is a one-line usage error, exit 2, before anything is opened; never a
traceback from the database driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_core.store import migrate
from sync_core.store.db import make_engine

from .test_cli_runs import _run


@pytest.mark.parametrize("args, says", [
    (["runs", "2147483648"], "run id must be an integer from 1 to 2147483647"),
    (["runs", "99999999999999999999999"], "run id"), (["runs", "0"], "run id"),
    (["runs", "--limit", "99999999999999999999"], "limit must be an integer from 1 to 500"),
    (["runs", "--limit", "-5"], "limit"),
    (["events", "99999999999999999999"], "event id"), (["events", "--limit", "0"], "limit"),
    (["replay", "99999999999999999999"], "event id"), (["replay", "x"], "event id"),
    (["approve", "99999999999999999999"], "run id"), (["reject", "9223372036854775808"], "run id"),
    (["cancel", "-1"], "run id"), (["serve", "--port", "99999"], "port"),
    (["reconcile", "--start-row", "-5"], "start-row"),
    (["reconcile", "--end-row", "-2"], "end-row"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_an_unusable_number_is_a_usage_error(db_url: str, tmp_path: Path, args: list[str],
                                             says: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    engine.dispose()
    result = _run(args, {"WECOM_SYNC_DATABASE_URL": db_url}, tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "Traceback" not in result.stderr and says in result.stderr, result.stderr[-800:]
