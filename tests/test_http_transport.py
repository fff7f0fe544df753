"""The remotes' transport (httpx over aiohttp's pool) against real sockets: requests and
keep-alive, the headers httpx builds sent as built, a compressed body decoded, the timeouts
and connection errors httpx callers rely on (never sent, or maybe applied), a peer that
closes an idle connection or breaks off an answer, and TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sync_core.errors import TransientError
from sync_core.http.retry import Remote, RetryPolicy
from sync_core.http.transport import AiohttpTransport
from tests.raw_http import Handler, answering, serve, silent

LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its method, path and body, keeping the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                           if k.lower() == "content-length"), 0)
            body = await reader.readexactly(length) if length else b""
            method, target, _ = lines[0].split(" ")
            reply = f"{method} {target} ".encode() + body + f" {id(writer)}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(reply) + reply)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


# No ``connection: close``: the client finds out when the connection is idle.
_one_then_close = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=LIMITS)) as http:
        yield http


async def test_requests_and_keep_alive(client: httpx.AsyncClient) -> None:
    server, base = await serve(_echo)
    async with server:
        first = await client.get(f"{base}/a", params={"q": "张三"})
        second = await client.post(f"{base}/b", json={"x": 1})
    assert first.status_code == 200 and first.text.startswith("GET /a?q=%E5%BC%A0%E4%B8%89 ")
    assert second.text.startswith('POST /b {"x":1} ')
    # One connection served both.
    assert first.text.rsplit(" ", 1)[1] == second.text.rsplit(" ", 1)[1]
    assert first.http_version == "HTTP/1.1" and first.reason_phrase == "OK"


async def test_concurrent_requests_share_the_pool(client: httpx.AsyncClient) -> None:
    server, base = await serve(_echo)
    async with server:
        replies = await asyncio.gather(*(client.get(f"{base}/{i}") for i in range(20)))
    assert [r.text.split(" ")[1] for r in replies] == [f"/{i}" for i in range(20)]
    assert len({r.text.rsplit(" ", 1)[1] for r in replies}) <= LIMITS.max_connections


async def test_read_timeout_is_httpx_read_timeout_and_a_transient_error(
        client: httpx.AsyncClient) -> None:
    server, base = await serve(silent)
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/slow", timeout=0.2)
        remote = Remote("authing", client, timeout=0.2, max_concurrency=2, rate_per_minute=None,
                        retry=RetryPolicy(attempts=1))
        with pytest.raises(TransientError) as info:
            await remote.send("POST", f"{base}/create", json={}, endpoint="create")
    assert info.value.maybe_applied  # sent, unanswered: a create must re-read first


async def test_refused_connection_is_httpx_connect_error(client: httpx.AsyncClient) -> None:
    server, base = await serve(_echo)
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{base}/gone")
    remote = Remote("wecom", client, timeout=1.0, max_concurrency=2, rate_per_minute=None,
                    retry=RetryPolicy(attempts=1))
    with pytest.raises(TransientError) as info:
        await remote.send("GET", f"{base}/gone", endpoint="gone")
    assert not info.value.maybe_applied  # never sent: safe to repeat


async def test_a_connection_the_peer_closed_is_not_reused(client: httpx.AsyncClient) -> None:
    server, base = await serve(_one_then_close)
    async with server:
        assert (await client.get(f"{base}/1")).text == "ok"
        await asyncio.sleep(0.05)  # the close reaches the idle connection
        assert (await client.get(f"{base}/2")).text == "ok"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_verified_against_the_given_authority(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    server, base = await serve(_echo, server_side)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with server:
        async with httpx.AsyncClient(
                transport=AiohttpTransport(limits=LIMITS, verify=trusting)) as http:
            reply = await http.get(f"{base}/secure")
            assert reply.text.startswith("GET /secure ")
        async with httpx.AsyncClient(transport=AiohttpTransport(limits=LIMITS)) as default:
            with pytest.raises(httpx.ConnectError):  # a self-signed certificate is refused
                await default.get(f"{base}/secure")


async def _headers_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with the request's head as sent, gzip-compressed, and a cookie."""
    import gzip

    head = await reader.readuntil(b"\r\n\r\n")
    body = gzip.compress(head)
    writer.write(b"HTTP/1.1 201 Created\r\ncontent-encoding: gzip\r\nset-cookie: s=1\r\n"
                 b"x-multi: a\r\nx-multi: b\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()


async def test_the_request_goes_as_httpx_built_it_and_the_answer_is_decoded(
        client: httpx.AsyncClient) -> None:
    server, base = await serve(_headers_echo)
    async with server:
        reply = await client.post(f"{base}/x?a=%2F&b=%E5%BC%A0", json={"k": "v"},
                                  headers={"authorization": "Bearer t", "x-multi": "1"})
        again = await client.get(f"{base}/y")
    lines = reply.text.split("\r\n")
    sent = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":")
                                                          for line in lines[1:] if line)}
    assert lines[0] == "POST /x?a=%2F&b=%E5%BC%A0 HTTP/1.1"  # not re-quoted
    assert sent["authorization"] == "Bearer t" and sent["content-type"] == "application/json"
    assert sent["content-length"] == "9" and sent["user-agent"].startswith("python-httpx")
    assert reply.status_code == 201 and reply.reason_phrase == "Created"
    assert reply.headers.get_list("x-multi") == ["a", "b"]
    assert again.text.lower().count("\r\ncookie:") == 1  # httpx's jar alone, not aiohttp's too


async def test_waiting_for_a_pool_slot_times_out_as_never_sent() -> None:
    server, base = await serve(silent)
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with server, httpx.AsyncClient(transport=AiohttpTransport(limits=one)) as http:
        held = asyncio.create_task(http.get(f"{base}/held", timeout=5))
        await asyncio.sleep(0.1)
        remote = Remote("wecom", http, timeout=httpx.Timeout(5, pool=0.2), max_concurrency=2,
                        rate_per_minute=None, retry=RetryPolicy(attempts=1))
        with pytest.raises(TransientError) as info:
            await remote.send("POST", f"{base}/create", json={}, endpoint="create")
        held.cancel()
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout)
    assert not info.value.maybe_applied  # it never left: a create may be repeated


_close_mid_answer = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")


async def _close_unanswered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


@pytest.mark.parametrize("handler", [_close_mid_answer, _close_unanswered])
async def test_a_request_the_peer_dropped_may_have_been_applied(
        client: httpx.AsyncClient, handler: Handler) -> None:
    server, base = await serve(handler)
    async with server:
        with pytest.raises(httpx.TransportError) as raw:
            await client.post(f"{base}/create", json={})
        remote = Remote("authing", client, timeout=2.0, max_concurrency=2,
                        rate_per_minute=None, retry=RetryPolicy(attempts=1))
        with pytest.raises(TransientError) as info:
            await remote.send("POST", f"{base}/create", json={}, endpoint="create")
    assert not isinstance(raw.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert info.value.maybe_applied  # sent: a create must re-read before it is repeated
