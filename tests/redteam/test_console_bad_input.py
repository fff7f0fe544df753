"""Red team: the console's sign-in form is reachable without a session (it is on the same
listener as the public callback URL). A 20 MB form is read whole and answered 401; the
webhook route refuses the same with 413 (``callback_max_body_bytes``, 1 MiB). Bad input
→ clear 4xx before the work (COMMON/DESIGN "Errors"); too many fields is a 400 too."""

from __future__ import annotations

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import running_stack

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_huge_sign_in_form_is_refused_unread(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        body = b"token=" + b"a" * (20 * 1024 * 1024)
        reply = httpx.post(f"{s.url}/ops/console/login", content=body, headers=FORM,
                           timeout=60)
        assert reply.status_code == 413, reply.status_code


def test_a_sign_in_form_with_too_many_fields_is_a_400(sqlite_url: str,
                                                      keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        body = "&".join(f"f{i}=1" for i in range(50)).encode()
        reply = httpx.post(f"{s.url}/ops/console/login", content=body, headers=FORM)
        assert reply.status_code == 400, reply.status_code
