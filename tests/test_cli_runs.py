"""``wecom-sync reconcile`` and ``wecom-sync runs`` against the simulators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
