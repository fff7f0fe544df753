"""A database outage over real HTTP: every route answers a short 503, the keep-alive
connection stays usable, and the log gets one short line per minute, not a traceback each."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from simulators.server import BackgroundServer
from sync_core.wecom.crypto import WeComCrypto

from .conftest import CallbackKeys, make_settings
from .helpers import change_contact, signed_post
from .tcp_proxy import postgres_behind_proxy

OPS = {"Authorization": "Bearer ops-test-token"}


class Collect(logging.Handler):
    """Every record from the app and from uvicorn (whose loggers do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        out = []
        for r in self.records:
            text = r.getMessage()
            if r.exc_info:
                text += "\n" + logging.Formatter().formatException(r.exc_info)
            out.append(text)
        return out


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"),
               logging.getLogger("uvicorn.error")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    yield handler
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def _exchange(conn: http.client.HTTPConnection, method: str, path: str,
              body: bytes | None = None, headers: dict[str, str] | None = None
              ) -> tuple[int, bytes, bool]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, data, response.will_close


@pytest.mark.postgres
def test_a_database_outage_is_an_answer_not_a_traceback(pg_url: str, keys: CallbackKeys,
                                                        collected: Collect) -> None:
    from receiver.app import create_app

    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    with postgres_behind_proxy(pg_url) as (url, proxy):
        settings = make_settings(url, keys, authing_webhook_secret="hook-secret")
        with BackgroundServer(create_app(settings)) as srv:
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)

            def callback(uid: str) -> tuple[int, bytes, bool]:
                params, body = signed_post(crypto, change_contact(
                    keys.corp_id, f"<ChangeType>update_user</ChangeType><UserID>{uid}</UserID>"),
                    keys.corp_id)
                return _exchange(conn, "POST", f"/wecom/callback?{urlencode(params)}", body)

            assert callback("before")[:2] == (200, b"success")
            conn.sock.settimeout(30)  # type: ignore[union-attr]
            the_socket = conn.sock
            proxy.cut()  # PostgreSQL now refuses connections

            answers = [callback(f"u{i}") for i in range(12)]
            answers += [_exchange(conn, "POST", "/authing/webhook",
                                  b'{"eventName":"user:updated","data":{"userId":"a1"}}',
                                  {"x-authing-webhook-secret": "hook-secret",
                                   "content-type": "application/json"}) for _ in range(3)]
            answers += [_exchange(conn, "GET", path, headers=OPS) for path in
                        ("/ops/events", "/ops/runs", "/ops/runs/1")]
            answers.append(_exchange(conn, "POST", "/ops/events/1/replay", headers=OPS))
            answers.append(_exchange(conn, "POST", "/ops/sync/users/zhangsan", headers=OPS))
            ready = _exchange(conn, "GET", "/readyz")
            # Every answer came back on the one connection WeCom opened: none was closed.
            assert conn.sock is the_socket
            conn.close()

    assert all(status == 503 for status, _, _ in answers), answers
    assert all(not will_close for _, _, will_close in answers), answers
    assert all(len(body) < 200 and b"database" in body for _, body, _ in answers), answers
    assert ready[0] == 503 and not ready[2]
    lines = collected.lines()
    text = "\n".join(lines)
    assert "Exception in ASGI application" not in text
    assert "Traceback" not in text and "[SQL:" not in text
    # One line a minute while it lasts, however many requests failed (20 here), whether the
    # callback route, the inbox writer or readiness noticed it.
    unavailable = [line for line in lines if "database unavailable" in line]
    assert len(unavailable) == 1, lines
    assert all("\n" not in line and len(line) < 400 for line in lines), lines


def test_an_upstream_failure_or_a_bug_is_an_answer_too(collected: Collect) -> None:
    """Whatever a route lets escape (a remote down, refusing our credentials, a bug) is a
    short 502/503 on a connection that stays open, and a log line at most once a minute."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.routing import Route

    from receiver.failures import AnswerFailures
    from sync_core.errors import AuthError, TransientError
    from sync_core.logs import LogThrottle

    failures = {
        "down": TransientError("503 Service Unavailable", remote="authing",
                               endpoint="/api/v3/get-user"),
        "refused": AuthError("management token refused", code=401, remote="authing"),
        "bug": KeyError("oops"),
    }

    async def fail(request: Request) -> None:
        raise failures[request.path_params["what"]]

    app = Starlette(routes=[Route("/ops/{what}", fail, methods=["GET"]),
                            Route("/cb/{what}", fail, methods=["POST"])],
                    middleware=[Middleware(AnswerFailures, throttle=LogThrottle(
                        logging.getLogger("tests.failures")))])
    with BackgroundServer(app) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        answers = {}
        for what in failures:
            for _ in range(5):
                answers[what] = _exchange(conn, "GET", f"/ops/{what}")
                plain = _exchange(conn, "POST", f"/cb/{what}", b"x")
        the_socket = conn.sock
        _exchange(conn, "GET", "/ops/down")
        assert conn.sock is the_socket
        conn.close()

    assert answers["down"][:2] == (503, b'{"error":"authing unavailable, retry later"}')
    assert answers["refused"][:2] == (
        502, b'{"error":"authing refused the configured credentials"}')
    assert answers["bug"][:2] == (503, b'{"error":"internal error, retry later"}')
    assert plain[:2] == (503, b"internal error, retry later")
    assert not any(will_close for *_, will_close in (*answers.values(), plain))
    text = "\n".join(collected.lines())
    assert "Exception in ASGI application" not in text
    # 31 failures, three kinds: three lines; only the bug carries its traceback.
    assert len(collected.records) == 3, text
    assert text.count("Traceback") == 1 and "KeyError" in text
