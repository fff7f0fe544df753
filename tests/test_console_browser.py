"""The console in a real browser: headless Chromium (Debian's) driven by Playwright.

The operator's day, end to end over real HTTP against the simulators: sign in, start a dry
run and read its plan, approve a blocked run, replay a dead event, open one object's history
and sync it now. A screenshot of each page goes to ``tests/artifacts/console/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import UNDER_CI, CallbackKeys
from .e2e_stack import OPS, Stack, running_stack
from .test_reconcile_e2e import finished, lose_deletes, seed, start

ARTIFACTS = Path(__file__).parent / "artifacts" / "console"
TOKEN = "ops-test-token"
OPERATOR = "值班-李雷"
WAIT = 60_000  # ms: a run against the simulators takes a second or two


def _chromium() -> str:
    path = os.environ.get("WECOM_SYNC_TEST_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path, reason = None, "playwright is not installed (pip install '.[test]')"
    else:
        reason = "no chromium on PATH (Debian: apt-get install chromium)"
    if path is None:
        if UNDER_CI:
            pytest.fail(f"{reason} (CI=true: the browser tests must run)")
        pytest.skip(reason)
    return path


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(WAIT)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, s: Stack) -> None:
    page.goto(f"{s.url}/ops/console/runs")
    assert "/ops/console/login" in page.url  # nothing readable before signing in
    shot(page, "01-sign-in")
    page.get_by_label("Ops token").fill(TOKEN)
    page.get_by_label("Your name").fill(OPERATOR)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ops/console/runs")


def wait_status(page: Any, status: str) -> None:
    """The run page reloads itself while the run is active (meta refresh, no script)."""
    page.wait_for_selector(f"h1 .status.{status}", timeout=WAIT)


@pytest.mark.browser
def test_operator_day_in_the_console(sqlite_url: str, keys: CallbackKeys,
                                     browser_page: Any) -> None:
    page = browser_page
    with running_stack(sqlite_url, keys, delete_threshold_count=2) as s:
        directory = seed(s, users=12, departments=4)
        sign_in(page, s)

        # A dry run, started from the form, reads as a plan.
        page.get_by_role("link", name="Start a run").click()
        shot(page, "02-start-a-run")
        page.get_by_label("Mode").select_option("full")
        assert page.get_by_label("Dry run").is_checked()
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/ops/console/runs/*")
        wait_status(page, "succeeded")
        body = page.inner_text("main")
        assert "dry run: nothing applied" in body and "would create" in body
        assert directory.users[0]["name"] in body  # Chinese names, as they are
        shot(page, "03-dry-run-plan")
        assert s.user(directory.users[0]["userid"]) is None

        # The real run, then deletes beyond the threshold: blocked until approved.
        assert finished(s, start(s))["status"] == "succeeded"
        gone = [u["userid"] for u in directory.users[:3]]
        lose_deletes(s, gone)
        blocked = finished(s, start(s, {"mode": "full"}))
        assert blocked["status"] == "blocked"
        page.goto(f"{s.url}/ops/console/runs/{blocked['id']}?item_status=staged")
        assert "staged delete(s)" in page.inner_text("main")
        shot(page, "04-blocked-run")
        page.get_by_role("button", name="Approve").click()
        wait_status(page, "succeeded")
        assert f"Approved by console:{OPERATOR}" in page.inner_text("main")
        assert all(s.user(u)["status"] == "Resigned" for u in gone)

        page.get_by_role("link", name="Runs", exact=True).click()
        assert page.locator("tbody tr").count() == 3
        shot(page, "05-runs")

        # A dead letter: an unmanaged Authing account has the same email.
        manual = s.authing.admin.create_user(email="sunba@example.com", name="孙八(手工)")
        s.wecom.admin.create_user("sunba", "孙八", department=(1,), email="sunba@example.com")
        s.settle()
        page.get_by_role("link", name="Inbox").click()
        dead = page.get_by_role("heading", name="Dead letters (1)")
        assert dead.is_visible() and "conflict: unmanaged Authing user" in page.inner_text(
            "main")
        shot(page, "06-inbox")
        s.authing.admin.delete_user(manual["userId"])  # the operator removes the clash
        (event,) = s.events(status="dead")
        page.get_by_role("button", name=f"Replay event {event['id']}").click()
        page.wait_for_url(f"**/ops/console/events/{event['id']}")
        page.wait_for_selector("h1 .status.done", timeout=WAIT)
        history = page.inner_text("main")
        assert f"replayed by console:{OPERATOR}" in history and "dead" in history
        shot(page, "07-event")

        # One object's history, and "sync now" shows its result.
        page.goto(f"{s.url}/ops/console/objects/user/sunba")
        text = page.inner_text("main")
        assert "Events received" in text and f"#{event['id']}" in text and "upstream" in text
        shot(page, "08-object")
        page.get_by_role("button", name="Sync now from WeCom").click()
        page.wait_for_url("**/ops/console/events/*")
        page.wait_for_selector("h1 .status.done", timeout=WAIT)
        assert "Result:" in page.inner_text("main")

        # The status strip: inbox, runs per direction, reads, credentials, version.
        strip = page.inner_text("section.strip")
        for part in ("Inbox open", "upstream", "next", "WeCom reads", "available",
                     "authing credentials", "accepted", "version"):
            assert part in strip, part
        assert httpx.get(f"{s.url}/ops/status", headers=OPS).json()["wecom_reads"] == \
            "available"
