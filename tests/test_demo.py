"""The README's first command: ``wecom-sync demo`` runs the whole service and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_scenario_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    result = subprocess.run([sys.executable, "-m", "receiver.cli", "demo", "--users", "8",
                             "--departments", "3"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WeCom built a company" in out and "status=Resigned" in out
    assert "'done'" in out and "dead" not in out
    assert "wrote 0 times to Authing" in out
    assert "Traceback" not in result.stderr
