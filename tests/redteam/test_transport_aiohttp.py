"""Red team of the aiohttp transport (sync_core/http/transport.py), over real sockets:
secrets in its errors, a request body the peer stops reading, and a second event loop."""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sync_core.errors import TransientError
from sync_core.http.retry import Remote, RetryPolicy
from sync_core.http.transport import AiohttpTransport
from tests.raw_http import answering, serve, silent

TOKEN = "tok3n-S3CRET-value"


_bad_status = answering(b"HTTX/1.1 2000 NO\r\n\r\n")


async def _never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def _everything_said(exc: BaseException) -> str:
    """What a log line with ``exc_info`` would show, and the message of each exception a
    traceback shows."""
    said = "".join(traceback.format_exception(exc))
    seen: BaseException | None = exc
    while seen is not None:
        said += f"\n{seen!s} {seen!r}"
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return said


@pytest.mark.parametrize("case", ["pool_timeout", "malformed_answer"])
async def test_no_error_carries_the_access_token(case: str) -> None:
    """WeCom puts ``access_token`` in the query string. aiohttp writes the full URL into
    ``ConnectionTimeoutError`` and ``ClientResponseError``; the old transport's errors
    never held it (nor may a traceback of the TransientError)."""
    server, base = await serve(silent if case == "pool_timeout" else _bad_status)
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    url = f"{base}/cgi-bin/user/create?access_token={TOKEN}"
    async with server, httpx.AsyncClient(transport=AiohttpTransport(limits=one)) as http:
        held = None
        if case == "pool_timeout":
            held = asyncio.create_task(http.get(f"{base}/held", timeout=5))
            await asyncio.sleep(0.1)
        remote = Remote("wecom", http, timeout=httpx.Timeout(5, pool=0.2), max_concurrency=2,
                        rate_per_minute=None, retry=RetryPolicy(attempts=1))
        try:
            with pytest.raises(TransientError) as info:
                await remote.send("POST", url, json={}, endpoint="user/create")
        finally:
            if held is not None:
                held.cancel()
                await asyncio.gather(held, return_exceptions=True)
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert TOKEN not in _everything_said(info.value)


async def test_a_body_the_peer_never_reads_times_out_as_a_write_timeout() -> None:
    """httpx's ``write`` timeout: the old transport raised WriteTimeout; aiohttp starts its
    read timeout only once the body is out, so a stalled upload waited for ever."""
    server, base = await serve(_never_reads)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        remote = Remote("authing", http, timeout=httpx.Timeout(0.5), max_concurrency=2,
                        rate_per_minute=None, retry=RetryPolicy(attempts=1))
        with pytest.raises(TransientError) as info:
            await asyncio.wait_for(remote.send(
                "POST", f"{base}/api/v3/create-users-batch",
                json={"list": ["x" * 1000] * 20_000}, endpoint="create-users-batch"), 10)
    assert isinstance(info.value.__cause__, httpx.WriteTimeout)
    assert info.value.maybe_applied  # part of it went: a create must re-read first


@pytest.fixture
def threaded_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(answer, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def stop() -> None:
        server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_a_client_used_again_under_a_new_event_loop(threaded_server: str) -> None:
    """aiohttp binds a session to the loop it was made in: once that loop ended (one
    ``asyncio.run`` after another: tests, a CLI), every later call failed with "Event
    loop is closed", for ever (the old pool failed the stale connection once)."""
    http = httpx.AsyncClient(transport=AiohttpTransport(limits=httpx.Limits(max_connections=2)))

    async def get() -> int:
        return (await http.get(f"{threaded_server}/x", timeout=5)).status_code

    assert asyncio.run(get()) == 200
    assert asyncio.run(get()) == 200
    assert asyncio.run(get()) == 200

    async def close() -> None:
        await http.aclose()

    asyncio.run(close())


async def _head_echo_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with the request's head, chunked (no content-length)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"%x\r\n" % len(head) + head + b"\r\n0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def test_headers_are_the_ones_httpx_built_both_ways() -> None:
    """aiohttp adds ``Content-Type: application/octet-stream`` to a POST without one
    (httpx sends none), and httpx, given the body as ``content``, added a
    ``Content-Length`` to a chunked answer's headers."""
    server, base = await serve(_head_echo_chunked)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        empty = await http.post(f"{base}/empty")
        raw = await http.post(f"{base}/raw", content=b"abc")
    for reply in (empty, raw):
        assert "content-type:" not in reply.text.lower()
        assert "content-length" not in reply.headers
        assert reply.headers["transfer-encoding"] == "chunked"


_chinese_reason = answering("HTTP/1.1 200 成功\r\ncontent-length: 2\r\n\r\nok".encode())


async def test_a_reason_phrase_beyond_latin_1_is_no_crash() -> None:
    """A gateway's ``200 成功``: aiohttp decodes the reason as UTF-8, and encoding it back
    as Latin-1 raised UnicodeEncodeError from a successful call (no httpx error either,
    so not even a TransientError). The old transport answered it."""
    server, base = await serve(_chinese_reason)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        reply = await http.get(f"{base}/x")
    assert reply.status_code == 200 and reply.text == "ok"


async def _echo_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with the request as received (head and whatever body came within 0.3 s)."""
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        rest = await asyncio.wait_for(reader.read(1000), 0.3)
    except TimeoutError:
        rest = b""
    sent = head + rest
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(sent) + sent)
    await writer.drain()
    writer.close()


async def test_a_streamed_body_goes_with_one_framing() -> None:
    """httpx frames a streamed body ``Transfer-Encoding: chunked``; read whole, it went
    with that header, a Content-Length of aiohttp's as well, and unchunked bytes: a
    request a server must read as chunked and cannot (RFC 9112 6.3)."""

    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    server, base = await serve(_echo_raw)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        reply = await http.post(f"{base}/x", content=parts())
    head, _, body = reply.text.partition("\r\n\r\n")
    lines = [line.lower() for line in head.split("\r\n")[1:]]
    framing = [line for line in lines if line.startswith(("transfer-encoding", "content-length"))]
    assert framing in (["content-length: 4"], ["transfer-encoding: chunked"])
    chunked = "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    assert body == ("abcd" if framing == ["content-length: 4"] else chunked)


_long_header = answering(b"HTTP/1.1 200 OK\r\nset-cookie: s=" + b"a" * 20_000
                         + b"\r\ncontent-length: 2\r\n\r\nok")


async def test_an_answer_with_a_long_header_is_read() -> None:
    """aiohttp refuses a header line over 8190 bytes (RemoteProtocolError: a create then
    counts as maybe applied); httpcore read heads up to 100 KiB, as this does again."""
    server, base = await serve(_long_header)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        reply = await http.get(f"{base}/x")
    assert reply.text == "ok" and len(reply.headers["set-cookie"]) == 20_002


async def _answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One answer, then a close without ``connection: close`` (as a peer closing an idle
    connection at the moment it is reused)."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()


async def test_a_connection_the_peer_just_closed_is_not_reused_for_a_create() -> None:
    """aiohttp learns of a close only when the event loop has read it; the old pool looked
    at the socket before reusing it. Creates sent back to back went out on the closed
    connection every second time and failed as maybe applied (a re-read each)."""
    server, base = await serve(_answer_then_close)
    async with server, httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=2))) as http:
        remote = Remote("wecom", http, timeout=2.0, max_concurrency=1, rate_per_minute=None,
                        retry=RetryPolicy(attempts=1))
        for _ in range(20):
            reply = await remote.send("POST", f"{base}/cgi-bin/user/create", json={},
                                      endpoint="user/create")
            assert reply.text == "ok"
