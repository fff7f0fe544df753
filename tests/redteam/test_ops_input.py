"""Red team: bad input to ``POST /ops/reconcile`` (mission: bad input → clear 4xx, never
a 500 or traceback, nothing changed; DESIGN.md "Ops API": JSON ``{"direction", "mode",
"dry_run", "source"}``). Real receiver and simulators over HTTP. Expected to fail until
fixed."""

from __future__ import annotations

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, running_stack


def runs(url: str) -> list[object]:
    answer = httpx.get(f"{url}/ops/runs", headers=OPS)
    answer.raise_for_status()
    return list(answer.json()["runs"])


def test_an_excel_field_in_a_json_body_is_a_400_not_a_500(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """A JSON body cannot carry a file: ``{"source": "excel", "excel": "x"}`` must be a
    400 saying the file goes in a multipart upload, with no run created. Today the
    string reaches the file check: an internal error (503) with a traceback logged."""
    with running_stack(sqlite_url, keys) as s:
        answer = httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                            json={"source": "excel", "excel": "x"})
        assert answer.status_code == 400, (answer.status_code, answer.text)
        assert runs(s.url) == []


def test_a_misspelt_dry_run_is_refused_rather_than_run_for_real(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """DESIGN.md lists the fields of the JSON body; an unknown one must be a 400 naming
    it, as the ops routes do for unknown query parameters. An operator who types
    ``{"mode": "full", "dryrun": true}`` asked for a dry run: today the field is ignored
    and a real full run deletes in Authing. Expected: 400, no run, no Authing write."""
    with running_stack(sqlite_url, keys, delete_threshold_percent=100,
                       delete_threshold_count=100) as s:
        s.wecom.admin.create_department("A", 1, id=2)
        s.wecom.admin.create_user("stay", "留下", department=(2,), mobile="13800000031",
                                  email="stay@example.com")
        s.settle()
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.delete_user("stay")
        writes = s.authing.stats.total_writes
        answer = httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                            json={"mode": "full", "dryrun": True})
        assert answer.status_code == 400 and "dryrun" in answer.text, answer.text
        assert runs(s.url) == []
        assert s.authing.stats.total_writes == writes
