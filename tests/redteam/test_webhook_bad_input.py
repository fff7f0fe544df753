"""Red team: bad input to ``POST /authing/webhook`` gets a short 4xx, never a 5xx or a
traceback (DESIGN.md "Errors"; README "Bad input gets a short 4xx"; issue 10 §1 "A
malformed body gets 400"). Real receiver over HTTP, both simulators running."""

from __future__ import annotations

import logging

import httpx
import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import HOOK_SECRET, running_stack

HEADERS = {"x-authing-webhook-secret": HOOK_SECRET, "content-type": "application/json"}


def _nested(depth: int) -> bytes:
    return (b'{"eventName": "user:created", "data": {"id": "u1", "extra": '
            + b"[" * depth + b"]" * depth + b"}}")


@pytest.mark.parametrize("depth", [600, 900])
def test_a_deeply_nested_json_body_is_a_400_not_a_traceback(
        sqlite_url: str, keys: CallbackKeys, depth: int,
        caplog: pytest.LogCaptureFixture) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        with caplog.at_level(logging.ERROR):
            reply = httpx.post(f"{s.url}/authing/webhook", headers=HEADERS,
                               content=_nested(depth))
        assert reply.status_code == 400, (reply.status_code, reply.text)
        assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_standard_json_number_is_refused_or_stored_on_both_backends(
        db_url: str, keys: CallbackKeys, literal: bytes,
        caplog: pytest.LogCaptureFixture) -> None:
    """Python's json accepts NaN/Infinity; PostgreSQL's json type does not. The receiver
    must answer 400 (or store the event): never a 503 with a DataError traceback."""
    body = b'{"eventName": "user:created", "data": {"id": "u2", "score": ' + literal + b"}}"
    with running_stack(db_url, keys, direction="downstream") as s:
        with caplog.at_level(logging.ERROR):
            reply = httpx.post(f"{s.url}/authing/webhook", headers=HEADERS, content=body)
        assert reply.status_code in (200, 400), (reply.status_code, reply.text)
        assert "Traceback" not in caplog.text, caplog.text[-2000:]


def test_a_webhook_that_names_no_entity_is_refused_not_stored_as_unknown(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """MalformedWebhook's own contract: "not {eventName, data} with the fields its event
    needs". A user:created without any id is stored as user ``unknown`` and settled."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        reply = httpx.post(f"{s.url}/authing/webhook", headers=HEADERS,
                           content=b'{"eventName": "user:created", "data": {}}')
        assert reply.status_code == 400, (reply.status_code, reply.text)
        assert not [e for e in s.events() if e["entity_key"] == "unknown"]
