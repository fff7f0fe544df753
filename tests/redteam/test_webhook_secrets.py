"""Red team: reference/authing-api.md §4.3b — "The sample payloads contain a password hash,
its salt, ``encryptedPassword``, a JWT and linked accounts' access tokens: never log or
store a raw webhook body beyond what is needed". The receiver scrubs ``password`` and
``salt`` but stores ``encryptedPassword`` and serves it on ``GET /ops/events/{id}``."""

from __future__ import annotations

import json

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import HOOK_SECRET, OPS, running_stack


def test_encrypted_password_is_not_stored_nor_served(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        body = {"eventName": "user:created",
                "data": {"id": "u1", "username": "x", "password": "PW-HASH", "salt": "SALT",
                         "encryptedPassword": "ENCRYPTED-PASSWORD-VALUE"}}
        reply = httpx.post(f"{s.url}/authing/webhook",
                           headers={"x-authing-webhook-secret": HOOK_SECRET}, json=body)
        assert reply.status_code == 200, reply.text
        (event,) = [e for e in s.events() if e["entity_key"] == "u1"][:1]
        shown = httpx.get(f"{s.url}/ops/events/{event['id']}", headers=OPS)
        assert shown.status_code == 200
        text = json.dumps(shown.json(), ensure_ascii=False)
        assert "PW-HASH" not in text and "SALT" not in text  # scrubbed today
        assert "ENCRYPTED-PASSWORD-VALUE" not in text, text[:500]
