"""The remotes' transport (httpcore's pool on plain asyncio streams) against real sockets:
requests and keep-alive, the timeouts and connection errors httpx callers rely on, a peer
that closes an idle connection, and TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from sync_core.errors import TransientError
from sync_core.http.retry import Remote, RetryPolicy
from sync_core.http.transport import AsyncioStream, AsyncioTransport

LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers


async def _one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()  # without ``connection: close``: the client finds out when idle


async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None,
                 ) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as http:
        yield http


async def test_requests_and_keep_alive(client: httpx.AsyncClient) -> None:
    server, base = await _serve(_echo)
    async with server:
        first = await client.get(f"{base}/a", params={"q": "张三"})
        second = await client.post(f"{base}/b", json={"x": 1})
    assert first.status_code == 200 and first.text.startswith("GET /a?q=%E5%BC%A0%E4%B8%89 ")
    assert second.text.startswith('POST /b {"x":1} ')
    # One connection served both, on the asyncio backend.
    assert first.text.rsplit(" ", 1)[1] == second.text.rsplit(" ", 1)[1]
    stream = first.extensions["network_stream"]
    assert isinstance(getattr(stream, "_stream", stream), AsyncioStream)


async def test_concurrent_requests_share_the_pool(client: httpx.AsyncClient) -> None:
    server, base = await _serve(_echo)
    async with server:
        replies = await asyncio.gather(*(client.get(f"{base}/{i}") for i in range(20)))
    assert [r.text.split(" ")[1] for r in replies] == [f"/{i}" for i in range(20)]
    assert len({r.text.rsplit(" ", 1)[1] for r in replies}) <= LIMITS.max_connections


async def test_read_timeout_is_httpx_read_timeout_and_a_transient_error(
        client: httpx.AsyncClient) -> None:
    server, base = await _serve(_silent)
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/slow", timeout=0.2)
        remote = Remote("authing", client, timeout=0.2, max_concurrency=2, rate_per_minute=None,
                        retry=RetryPolicy(attempts=1))
        with pytest.raises(TransientError) as info:
            await remote.send("POST", f"{base}/create", json={}, endpoint="create")
    assert info.value.maybe_applied  # sent, unanswered: a create must re-read first


async def test_refused_connection_is_httpx_connect_error(client: httpx.AsyncClient) -> None:
    server, base = await _serve(_echo)
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
    server, base = await _serve(_one_then_close)
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
    server, base = await _serve(_echo, server_side)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with server:
        async with httpx.AsyncClient(
                transport=AsyncioTransport(limits=LIMITS, verify=trusting)) as http:
            reply = await http.get(f"{base}/secure")
            assert reply.text.startswith("GET /secure ")
            assert reply.extensions["network_stream"].get_extra_info("ssl_object") is not None
        async with httpx.AsyncClient(transport=AsyncioTransport(limits=LIMITS)) as default:
            with pytest.raises(httpx.ConnectError):  # a self-signed certificate is refused
                await default.get(f"{base}/secure")
