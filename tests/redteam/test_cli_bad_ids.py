"""Red team: an id the store cannot hold is a CLI error (exit 1 or 2, one line), never a
traceback (COMMON/DESIGN "Bad input → clear 4xx / CLI error, never a 500 or traceback";
the ops API already refuses ids outside 1..2147483647 with a 400)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_core.store import migrate
from sync_core.store.db import make_engine

from ..test_cli_runs import _run

SETTINGS = {"WECOM_SYNC_WECOM_CORP_ID": "wwcli", "WECOM_SYNC_WECOM_CONTACT_SECRET": "c",
            "WECOM_SYNC_AUTHING_ACCESS_KEY_ID": "p", "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET": "s",
            "WECOM_SYNC_WECOM_API_BASE": "http://127.0.0.1:9",
            "WECOM_SYNC_AUTHING_API_BASE": "http://127.0.0.1:9"}


@pytest.mark.parametrize("args", [
    ["runs", "2147483648"], ["runs", "99999999999999999999999"],
    ["events", "99999999999999999999"], ["replay", "99999999999999999999"],
    ["approve", "99999999999999999999"], ["reject", "9223372036854775808"],
    ["cancel", "9223372036854775808"],
], ids=lambda a: " ".join(a))
def test_an_out_of_range_id_is_a_cli_error_not_a_traceback(
        db_url: str, tmp_path: Path, args: list[str]) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    engine.dispose()
    result = _run(args, {"WECOM_SYNC_DATABASE_URL": db_url, **SETTINGS}, tmp_path)
    assert result.returncode in (1, 2), (result.returncode, result.stderr[-500:])
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
