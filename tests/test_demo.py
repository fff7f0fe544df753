"""The README's first command: ``wecom-sync demo`` runs the whole service and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _demo(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    result = subprocess.run([sys.executable, "-m", "receiver.cli", "demo", "--users", "8",
                             "--departments", "3", *extra], cwd=tmp_path,
                            env={**env, "TMPDIR": str(temp)},
                            capture_output=True, text=True, timeout=180)
    return result, temp


def test_demo_runs_the_scenario_end_to_end(tmp_path: Path) -> None:
    result, temp = _demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WeCom built a company" in out and "status=Resigned" in out
    assert "'done'" in out and "dead" not in out
    assert "wrote 0 times to Authing" in out
    assert "Traceback" not in result.stderr
    # One count for both sides, the root included either way; no Python None shown.
    assert "3 departments (the root included), 8 users" in out
    assert "Authing now has 3 departments (the root included)" in out
    assert "None" not in out
    # The move is shown with its result.
    moved = re.search(r"move department (\d+) to the top", out)
    assert moved, out
    assert re.search(rf"department {moved.group(1)} in Authing: .* now under the root", out)
    # Nothing left behind.
    assert list(temp.iterdir()) == []


def test_demo_keeps_its_database_when_asked(tmp_path: Path) -> None:
    result, temp = _demo(tmp_path, "--keep-db")
    assert result.returncode == 0, result.stdout + result.stderr
    kept = list(temp.glob("wecom-sync-demo-*/wecom-sync.db"))
    assert len(kept) == 1 and str(kept[0]) in result.stdout
