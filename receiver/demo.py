"""``wecom-sync demo``: the whole service on one machine, nothing to configure.

Starts the bundled WeCom and Authing simulators and the receiver with its worker (SQLite in
a temporary folder), builds a small company through WeCom's admin side, so every change
arrives as a real encrypted callback, then renames, moves and removes, and shows what
reached Authing.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the service against the bundled simulators")
    parser.add_argument("--users", type=int, default=30, help="users to create (default 30)")
    parser.add_argument("--departments", type=int, default=8,
                        help="departments, WeCom's root department included (default 8)")
    parser.add_argument("--trimmed", action="store_true",
                        help="post-2022 callbacks that carry IDs only")
    parser.add_argument("--keep", action="store_true",
                        help="keep serving after the scenario until Ctrl-C")
    parser.add_argument("--keep-db", action="store_true",
                        help="leave the demo's SQLite database behind (removed otherwise)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sync_core import logs

    if args.users < 3 or args.departments < 2:
        print("wecom-sync: demo needs at least 3 users and 2 departments", file=sys.stderr)
        return 2
    logs.configure("WARNING")
    folder = Path(tempfile.mkdtemp(prefix="wecom-sync-demo-"))
    try:
        return _scenario(args, folder)
    finally:
        if args.keep_db:
            _say(f"\nThe demo's database is kept: {folder / 'wecom-sync.db'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _scenario(args: argparse.Namespace, folder: Path) -> int:
    import httpx
    from pydantic import SecretStr

    from simulators.authing.app import AuthingSimulator
    from simulators.generate import generate_directory
    from simulators.server import BackgroundServer
    from simulators.wecom.app import WeComSimulator
    from sync_core.settings import Settings
    from sync_core.wecom.crypto import generate_aes_key

    from .app import create_app

    corp_id, token = "wwdemo" + secrets.token_hex(6), secrets.token_hex(16)
    aes_key, ops = generate_aes_key(), secrets.token_hex(16)
    contact_secret, pool_secret = secrets.token_hex(16), secrets.token_hex(16)
    wecom = WeComSimulator(corp_id=corp_id, contact_secret=contact_secret, trimmed=args.trimmed)
    authing = AuthingSimulator(userpool_id="demo-pool", secret=pool_secret)
    with wecom, authing:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=f"sqlite:///{folder / 'wecom-sync.db'}",
            wecom_corp_id=corp_id, wecom_callback_token=SecretStr(token),
            wecom_encoding_aes_key=SecretStr(aes_key),
            wecom_contact_secret=SecretStr(contact_secret), wecom_api_base=wecom.url,
            authing_api_base=authing.url, authing_access_key_id="demo-pool",
            authing_access_key_secret=SecretStr(pool_secret), ops_token=SecretStr(ops),
            worker_poll_seconds=0.2)
        with BackgroundServer(create_app(settings, with_worker=True)) as receiver:
            wecom.set_callback(f"{receiver.url}/wecom/callback", token=token,
                               encoding_aes_key=aes_key, trimmed=args.trimmed)
            client = httpx.Client(base_url=receiver.url,
                                  headers={"Authorization": f"Bearer {ops}"})
            _say(f"receiver   {receiver.url}/wecom/callback   "
                 f"(SQLite: {folder / 'wecom-sync.db'})")
            _say(f"simulators WeCom {wecom.url}   Authing {authing.url}")
            directory = generate_directory(users=args.users, departments=args.departments,
                                           seed=7, max_depth=4)
            started = time.monotonic()
            _build(wecom, directory)
            _settle(wecom, client)
            _say(f"\n1. WeCom built a company: {len(directory.departments)} departments "
                 f"(the root included), "
                 f"{len(directory.users)} users → applied in "
                 f"{time.monotonic() - started:.1f} s")
            _show(authing, limit=5)

            first, second, third = (u["userid"] for u in directory.users[:3])
            movable = directory.departments[-1]
            wecom.admin.update_user(first, name="改名后的同事")
            wecom.admin.update_user(second, new_userid=f"{second}.new")
            wecom.admin.update_department(movable["id"], parentid=1)
            wecom.admin.delete_user(third)
            _settle(wecom, client)
            _say(f"\n2. Rename {first}, change userid {second} → {second}.new, move "
                 f"department {movable['id']} to the top, remove {third}:")
            for userid in (first, f"{second}.new", third):
                user = authing.admin.get_user(userid, "external_id") or {}
                _say(f"   {userid:<22} name={user.get('name') or '—':<10} "
                     f"status={user.get('status') or '—'}")
            _say(f"   department {movable['id']} in Authing: {_place(authing, movable['id'])}")

            events = client.get("/ops/events", params={"limit": "1000"}).json()["events"]
            by_status: dict[str, int] = {}
            for event in events:
                by_status[event["status"]] = by_status.get(event["status"], 0) + 1
            _say(f"\n3. Inbox: {len(events)} events {by_status}; Authing calls: "
                 f"{authing.stats.total_reads} reads, {authing.stats.total_writes} writes")
            before = authing.stats.total_writes
            client.post(f"/ops/sync/users/{first}")
            _settle(wecom, client)
            _say(f"   Syncing an unchanged user again wrote "
                 f"{authing.stats.total_writes - before} times to Authing.")
            if args.keep:
                _say(f"\nServing until Ctrl-C. Try: curl -H 'Authorization: Bearer {ops}' "
                     f"{receiver.url}/ops/events")
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            failed = by_status.get("dead", 0) + by_status.get("failed", 0)
    return 1 if failed else 0


def _build(wecom: Any, directory: Any) -> None:
    for dept in directory.departments[1:]:
        wecom.admin.create_department(dept["name"], dept["parentid"], id=dept["id"])
    for user in directory.users:
        body = {k: v for k, v in user.items()
                if k not in ("userid", "name", "department", "status")}
        wecom.admin.create_user(user["userid"], user["name"], department=user["department"],
                                **body)


def _settle(wecom: Any, client: Any, timeout: float = 60.0) -> None:
    wecom.pusher.flush(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        open_events = [e for status in ("pending", "failed") for e in client.get(
            "/ops/events", params={"status": status}).json()["events"]]
        if not open_events:
            return
        time.sleep(0.1)
    raise RuntimeError("the demo's events did not settle in time")


def _show(authing: Any, limit: int) -> None:
    with authing.state.lock:
        users = [u for u in authing.state.users.values() if u.profile.get("externalId")]
        depts = [d for d in authing.state.departments.values() if d.open_department_id]
    _say(f"   Authing now has {len(depts)} departments (the root included) and {len(users)} "
         "users, e.g.:")
    for user in users[:limit]:
        profile = user.profile
        _say(f"   {profile.get('externalId'):<22} {profile.get('name') or '—':<8} "
             f"{profile.get('email') or '—':<28} {len(user.departments)} department(s)")


def _place(authing: Any, wecom_id: int) -> str:
    """Where the Authing department mirroring WeCom department ``wecom_id`` now hangs."""
    with authing.state.lock:
        depts = authing.state.departments
        mine = next((d for d in depts.values()
                     if d.open_department_id == str(wecom_id)), None)
        if mine is None:
            return "missing"
        parent = depts.get(mine.parent_id) if mine.parent_id else None
    if parent is None:
        return f"{mine.name!r} (no parent)"
    where = ("the root" if parent.parent_id is None
             else f"department {parent.open_department_id or parent.name}")
    return f"{mine.name!r} now under {where} ({parent.name!r})"


def _say(text: str) -> None:
    print(text, flush=True)
