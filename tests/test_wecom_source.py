"""WeComSource answers only what WeCom can be asked: a department known by a synthetic key
(built from an address book's paths) or a WeCom without credentials raises a SyncError,
which the engine reads as "cannot say" (a worker waits; a file run's approval keeps the
file's word), and WeCom is never called for it."""

from __future__ import annotations

from typing import Any

import pytest

from sync_core.directory.vocabulary import Kind
from sync_core.errors import SyncError
from sync_core.wecom.source import ReadCooldown, WeComSource


class _Untouchable:
    """A client that fails the test if called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"WeCom was called: {name}")


async def test_a_synthetic_department_key_is_never_asked_of_wecom() -> None:
    source = WeComSource(_Untouchable(), cooldown=ReadCooldown(60))  # type: ignore[arg-type]
    with pytest.raises(SyncError, match="excel-00000000002a"):
        await source.present(Kind.DEPARTMENT, "excel-00000000002a")


async def test_a_wecom_without_credentials_is_never_called() -> None:
    source = WeComSource(_Untouchable(), cooldown=ReadCooldown(60),  # type: ignore[arg-type]
                         readable=False)
    for kind, key in ((Kind.USER, "zhangsan"), (Kind.DEPARTMENT, "2")):
        with pytest.raises(SyncError, match="not readable"):
            await source.present(kind, key)
    with pytest.raises(SyncError, match="not readable"):
        await source.snapshot()
