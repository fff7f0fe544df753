"""The processes that run an event loop next to threads of their own (the worker's
database steps, a simulator's deliveries) take the GIL back quickly
(``receiver.cli.SWITCH_INTERVAL_SECONDS``): serve, the commands built on ``with_runtime``
(worker, reconcile, sync), and the simulators."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from receiver import cli


@pytest.fixture
def interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_serve_runs_with_the_short_switch_interval(interval: float, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, *a, **k: seen.append(sys.getswitchinterval()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WECOM_SYNC_DATABASE_URL", f"sqlite:///{tmp_path}/serve.db")
    assert cli.main(["serve", "--no-worker"]) == 0
    assert seen == [cli.SWITCH_INTERVAL_SECONDS] and interval > cli.SWITCH_INTERVAL_SECONDS


def test_a_runtime_command_runs_with_the_short_switch_interval(
        interval: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    async def job(runtime: Any) -> None:
        seen.append(sys.getswitchinterval())

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WECOM_SYNC_DATABASE_URL", f"sqlite:///{tmp_path}/runtime.db")
    monkeypatch.setenv("WECOM_SYNC_WECOM_CORP_ID", "wwtest")
    monkeypatch.setenv("WECOM_SYNC_WECOM_CONTACT_SECRET", "contact")
    monkeypatch.setenv("WECOM_SYNC_AUTHING_ACCESS_KEY_ID", "pool")
    monkeypatch.setenv("WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET", "secret")
    cli.with_runtime(job)
    assert seen == [cli.SWITCH_INTERVAL_SECONDS]


def test_a_simulator_runs_with_the_short_switch_interval(
        interval: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its webhook threads share the GIL with the event loop that answers the API."""
    from simulators.authing import cli as authing_cli

    seen: list[float] = []
    monkeypatch.setattr(authing_cli, "run", lambda args: seen.append(sys.getswitchinterval())
                        or 0)
    assert cli.main(["simulate", "authing", "--port", "0"]) == 0
    assert seen == [cli.SWITCH_INTERVAL_SECONDS]
