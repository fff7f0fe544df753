"""``wecom-sync reconcile`` and ``wecom-sync runs`` against the simulators."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.authing.app import AuthingSimulator
from simulators.generate import generate_directory
from simulators.wecom.app import WeComSimulator


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    return subprocess.run([sys.executable, "-m", "receiver.cli", *args], cwd=cwd,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


def sim_env(wecom: WeComSimulator, authing: AuthingSimulator, tmp_path: Path,
            **extra: str) -> dict[str, str]:
    """The settings of a CLI process working against the two simulators."""
    return {"WECOM_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "WECOM_SYNC_WECOM_CORP_ID": "wwcli",
            "WECOM_SYNC_WECOM_CONTACT_SECRET": "contact-sync-secret",
            "WECOM_SYNC_WECOM_API_BASE": wecom.url,
            "WECOM_SYNC_AUTHING_API_BASE": authing.url,
            "WECOM_SYNC_AUTHING_ACCESS_KEY_ID": "cli-pool",
            "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET": "s3cret", **extra}


def test_reconcile_and_runs_commands(tmp_path: Path) -> None:
    directory = generate_directory(users=10, departments=3, seed=5)
    with WeComSimulator(corp_id="wwcli") as wecom, \
            AuthingSimulator(userpool_id="cli-pool", secret="s3cret") as authing:
        wecom.admin.load(directory.departments, directory.users)
        env = sim_env(wecom, authing, tmp_path)
        dry = _run(["reconcile", "--dry-run", "--json"], env, tmp_path)
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert planned["dry_run"] is True and planned["counters"]["created"] == 12
        assert authing.admin.get_user(directory.users[0]["userid"], "external_id") is None

        applied = _run(["reconcile"], env, tmp_path)
        assert applied.returncode == 0, applied.stderr
        assert "→ succeeded" in applied.stdout and "created 12" in applied.stdout
        assert authing.admin.get_user(directory.users[0]["userid"], "external_id")

        listed = _run(["runs"], env, tmp_path)
        assert listed.returncode == 0 and listed.stdout.count("succeeded") == 2
        one = _run(["runs", "2", "--json"], env, tmp_path)
        assert json.loads(one.stdout)["id"] == 2 and len(json.loads(one.stdout)["items"]) == 12
        assert _run(["runs", "99"], env, tmp_path).returncode == 1

        missing = _run(["reconcile", "--file", str(tmp_path / "nope.xlsx")], env, tmp_path)
        assert missing.returncode == 1 and "cannot read" in missing.stderr
        for output in (dry, applied, listed, missing):
            assert "s3cret" not in output.stdout + output.stderr
            assert "Traceback" not in output.stderr


def test_reconcile_without_credentials_names_the_setting(tmp_path: Path) -> None:
    result = _run(["reconcile"], {}, tmp_path)
    assert result.returncode == 2
    assert "WECOM_SYNC_WECOM_CORP_ID" in result.stderr and "Traceback" not in result.stderr


AUTHING_ID = "053a0fb4d2cb2a167e664572"  # 24 characters, as Authing's ids are


def _columns(line: str) -> list[str]:
    return line.split()


def test_tables_keep_long_keys_and_directions_apart(capsys: pytest.CaptureFixture[str]) -> None:
    from receiver.cli_runs import _print_run, _table

    run = {"id": 12345, "direction": "downstream", "mode": "create_update", "source": "api",
           "dry_run": True, "status": "succeeded", "error": None, "notes": [],
           "decision": None, "started_at": "2026-11-30T06:00:00+00:00",
           "counters": {"created": 1234567, "updated": 0, "deleted": 0, "unchanged": 0,
                        "skipped": 0, "failed": 1},
           "items": [{"kind": "department", "key": AUTHING_ID + "-and-more", "action": "create",
                      "status": "planned", "changes": [["name", None, "研发部"]],
                      "error": None},
                     {"kind": "user", "key": AUTHING_ID, "action": "update",
                      "status": "failed", "changes": [], "error": "60104 mobile taken"}]}
    listed = _table([run]).splitlines()
    assert _columns(listed[0])[:5] == ["id", "direction", "mode", "source", "status"]
    assert _columns(listed[1])[:4] == ["12345", "downstream", "create_update", "api"]
    assert "1234567" in _columns(listed[1])
    _print_run(run)
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if AUTHING_ID in line]
    assert _columns(rows[0])[:4] == ["department", AUTHING_ID + "-and-more", "create",
                                     "planned"]
    assert _columns(rows[1])[:4] == ["user", AUTHING_ID, "update", "failed"]
    # Each column starts at the same place in every row.
    header = next(line for line in out if line.strip().startswith("kind"))
    assert {line.index("update" if "update" in line else "create") for line in rows} == {
        header.index("action")}


def test_events_table_keeps_long_keys_apart(tmp_path: Path) -> None:
    from sync_core.store import migrate
    from sync_core.store.db import make_engine
    from sync_core.store.inbox import NewEvent, insert_new
    from sync_core.store.models import utcnow

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        insert_new(conn, [NewEvent(source="authing", dedupe_key="d1", entity_kind="user",
                                   entity_key=AUTHING_ID, event_type="user:updated",
                                   payload={}, received_at=utcnow())])
    engine.dispose()
    listed = _run(["events"], {"WECOM_SYNC_DATABASE_URL": url}, tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if AUTHING_ID in line)
    assert _columns(row)[:6] == ["1", "pending", "authing", "user", AUTHING_ID, "0"]


@contextlib.contextmanager
def users_left_wecom(tmp_path: Path, *, users: int, lost: int, threshold: int
                     ) -> Iterator[tuple[dict[str, str], list[str], AuthingSimulator]]:
    """Simulators after one applied run, then ``lost`` users deleted in WeCom (no
    callback): a full run's deletes, guarded at ``threshold``. Yields the CLI's settings,
    the lost userids and the Authing simulator."""
    directory = generate_directory(users=users, departments=3, seed=5)
    with WeComSimulator(corp_id="wwcli") as wecom, \
            AuthingSimulator(userpool_id="cli-pool", secret="s3cret") as authing:
        wecom.admin.load(directory.departments, directory.users)
        env = sim_env(wecom, authing, tmp_path,
                      WECOM_SYNC_DELETE_THRESHOLD_COUNT=str(threshold))
        assert _run(["reconcile"], env, tmp_path).returncode == 0
        gone = [u["userid"] for u in directory.users[:lost]]
        wecom.admin.delete_users(gone)
        yield env, gone, authing


def test_a_dry_run_that_would_block_exits_3_and_says_blocked(tmp_path: Path) -> None:
    with users_left_wecom(tmp_path, users=10, lost=4, threshold=2) as (env, _, _):
        dry = _run(["reconcile", "--mode", "full", "--dry-run"], env, tmp_path)
        assert dry.returncode == 3, dry.stdout + dry.stderr
        assert "(dry run) → blocked" in dry.stdout and "would block" in dry.stdout
        as_json = _run(["reconcile", "--mode", "full", "--dry-run", "--json"], env, tmp_path)
        assert as_json.returncode == 3 and json.loads(as_json.stdout)["status"] == "blocked"
        refused = _run(["approve", "2"], env, tmp_path)
        assert refused.returncode == 1 and "dry run" in refused.stderr

        real = _run(["reconcile", "--mode", "full"], env, tmp_path)
        assert real.returncode == 3 and "→ blocked" in real.stdout
        approved = _run(["approve", "4", "--by", "新人"], env, tmp_path)
        assert approved.returncode == 0, approved.stderr
        shown = _run(["runs", "4"], env, tmp_path)
        assert shown.returncode == 0 and "approved by cli:新人" in shown.stdout, shown.stdout
        for output in (dry, as_json, refused, real, approved, shown):
            assert "Traceback" not in output.stderr


def test_commands_print_no_alembic_lines_unless_debug(tmp_path: Path) -> None:
    env = {"WECOM_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    quiet = _run(["runs"], env, tmp_path)
    assert quiet.returncode == 0 and "alembic" not in quiet.stderr, quiet.stderr
    loud = _run(["runs"], {**env, "WECOM_SYNC_LOG_LEVEL": "debug"}, tmp_path)
    assert "alembic" in loud.stderr


def test_simulate_help_at_every_level() -> None:
    top = _run(["simulate", "--help"], {}, Path.cwd())
    assert top.returncode == 0 and "wecom" in top.stdout and "authing" in top.stdout, top.stderr
    wecom = _run(["simulate", "wecom", "--help"], {}, Path.cwd())
    assert wecom.returncode == 0, wecom.stderr
    for default in ("8090", "wwsimulator0001", "contact-sync-secret"):
        assert default in wecom.stdout, default
    authing = _run(["simulate", "authing", "--help"], {}, Path.cwd())
    assert authing.returncode == 0, authing.stderr
    for default in ("8082", "sim-userpool", "sim-secret", "/_admin/users"):
        assert default in authing.stdout, default
    bad = _run(["simulate", "nope"], {}, Path.cwd())
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    stray = _run(["runs", "--bogus"], {}, Path.cwd())
    assert stray.returncode == 2 and "unrecognized arguments: --bogus" in stray.stderr
