"""The layout's boundary: ``directory/`` and ``engine/`` import no platform package and name
no platform, endpoint or field; only ``runtime`` wires the platforms in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEUTRAL = [ROOT / "sync_core" / "directory", ROOT / "sync_core" / "engine"]
PLATFORMS = ("sync_core.wecom", "sync_core.authing", "sync_core.excel")


def _modules() -> list[str]:
    return [".".join(p.relative_to(ROOT).with_suffix("").parts)
            for package in NEUTRAL for p in sorted(package.glob("*.py"))
            if p.name != "__init__.py"]


def test_the_neutral_packages_load_no_platform_module() -> None:
    code = ("import importlib, sys\n"
            f"for name in {_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m.startswith({PLATFORMS!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_neutral_packages_name_no_platform_endpoint_or_field() -> None:
    words = re.compile(r"authing|wecom|externalId|openDepartmentId|departmentId|userid|"
                       r"create-user|set-user-departments|user/get|department/get",
                       re.IGNORECASE)
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for package in NEUTRAL for p in sorted(package.glob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if words.search(line)]
    assert found == []
