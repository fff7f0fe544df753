"""Console sign-in, cookie and CSRF over real HTTP (no browser needed)."""

from __future__ import annotations

import contextlib
import re

import httpx

from .conftest import make_settings
from .helpers import running_receiver

TOKEN = "ops-test-token"
BASE = "/ops/console"


def _signed_in(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url)
    reply = client.post(f"{BASE}/login", data={"token": TOKEN, "next": f"{BASE}/events"})
    assert reply.status_code == 303 and reply.headers["location"] == f"{BASE}/events"
    page = client.get(f"{BASE}/runs")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    return client, csrf.group(1)


def test_nothing_is_readable_without_signing_in(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        for path in ("/runs", "/runs/1", "/events", "/events/1", "/objects/user/zhangsan",
                     "/start", "/objects"):
            reply = httpx.get(f"{srv.url}{BASE}{path}")
            assert reply.status_code == 303, path
            assert reply.headers["location"].startswith(f"{BASE}/login?next=")
        # A bearer token is for the JSON API, not for pages; a forged cookie is nobody.
        headers = {"Authorization": f"Bearer {TOKEN}",
                   "Cookie": "wecom_sync_console=eyJjc3JmIjoieCJ9.forged.sig"}
        assert httpx.get(f"{srv.url}{BASE}/runs", headers=headers).status_code == 303
        for path in ("/events/1/replay", "/runs/1/approve", "/start", "/logout"):
            assert httpx.post(f"{srv.url}{BASE}{path}").status_code == 403, path


def test_sign_in_sets_a_signed_strict_http_only_cookie_without_the_token(
        sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        wrong = httpx.post(f"{srv.url}{BASE}/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert "not the ops token" in wrong.text
        # An open redirect is refused: next must stay inside the console.
        reply = httpx.post(f"{srv.url}{BASE}/login",
                           data={"token": TOKEN, "next": "https://evil.example/"})
        assert reply.headers["location"] == f"{BASE}/runs"
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert f"Path={BASE}" in cookie and TOKEN not in cookie

        client, csrf = _signed_in(srv.url)
        with contextlib.closing(client):
            # Every POST needs the form's CSRF token, the cookie alone is not enough.
            assert client.post(f"{BASE}/events/1/replay").status_code == 403
            assert client.post(f"{BASE}/events/1/replay",
                               data={"csrf": "x" + csrf}).status_code == 403
            assert client.post(f"{BASE}/events/1/replay",
                               data={"csrf": csrf}).status_code == 404
            assert client.get(f"{BASE}/runs/abc").status_code == 400
            assert client.get(f"{BASE}/runs?status=nope").status_code == 400
            assert client.post(f"{BASE}/logout", data={"csrf": csrf}).status_code == 303
            assert client.get(f"{BASE}/runs").status_code == 303  # signed out

    # A new ops token ends every session signed with the old one.
    with running_receiver(make_settings(sqlite_url, ops_token="another-token")) as srv:
        old = reply.cookies["wecom_sync_console"]
        again = httpx.get(f"{srv.url}{BASE}/runs", cookies={"wecom_sync_console": old})
        assert again.status_code == 303


def test_console_is_off_without_an_ops_token(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url, ops_token=None)) as srv:
        assert httpx.get(f"{srv.url}{BASE}/login").status_code == 403
        assert httpx.post(f"{srv.url}{BASE}/login", data={"token": ""}).status_code == 403


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_form_larger_than_any_console_form_is_refused_unread(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        huge = b"token=" + b"a" * (20 * 1024 * 1024)
        reply = httpx.post(f"{srv.url}{BASE}/login", content=huge, headers=FORM, timeout=60)
        assert reply.status_code == 413 and "set-cookie" not in reply.headers

        def chunks():  # no Content-Length: refused while streaming
            yield b"token="
            for _ in range(200):
                yield b"a" * 65536

        streamed = httpx.post(f"{srv.url}{BASE}/login", content=chunks(), headers=FORM,
                              timeout=60)
        assert streamed.status_code == 413

        many = "&".join(f"f{i}=1" for i in range(50)).encode()
        assert httpx.post(f"{srv.url}{BASE}/login", content=many,
                          headers=FORM).status_code == 400
        latin = httpx.post(f"{srv.url}{BASE}/login", content=b"token=%ff%fe", headers=FORM)
        assert latin.status_code == 400 and "UTF-8" in latin.text
        multipart = httpx.post(f"{srv.url}{BASE}/login", files={"token": ("t", b"x")})
        assert multipart.status_code == 415

        client, csrf = _signed_in(srv.url)
        with contextlib.closing(client):
            # Signed in, the same bounds hold for every form; the session stays usable.
            assert client.post(f"{BASE}/events/1/replay", content=huge,
                               headers=FORM, timeout=60).status_code == 413
            too_many = f"csrf={csrf}&" + "&".join(f"f{i}=1" for i in range(30))
            assert client.post(f"{BASE}/events/1/replay", content=too_many.encode(),
                               headers=FORM).status_code == 400
            def upload():  # an upload without a Content-Length cannot be bounded up front
                yield b"--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n"
                yield csrf.encode() + b"\r\n--b--\r\n"

            chunked = client.post(f"{BASE}/start", content=upload(), headers={
                "content-type": "multipart/form-data; boundary=b"})
            assert chunked.status_code == 411
            assert client.get(f"{BASE}/runs").status_code == 200
        # Nobody's POST is refused before its body is read.
        assert httpx.post(f"{srv.url}{BASE}/start", content=huge, headers=FORM,
                          timeout=60).status_code == 403
