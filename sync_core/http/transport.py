"""The httpx transport of both remotes: httpx's requests and responses over aiohttp's
connection pool and C HTTP parser.

httpx's own transport (httpcore and h11, pure Python) spent about 0.8 ms of CPU on each
call, and the worker makes four calls a change: the largest single part of the service's
CPU in the downstream benchmark. Over aiohttp the same call costs about 0.4 ms, httpx's
request building, redirects, auth and decoding kept (``bench/transport.py``). Callers keep
httpx's API and exceptions: aiohttp's errors are mapped to the httpx ones ``http.retry``
sorts into never sent (``ConnectError``, ``ConnectTimeout``: safe to repeat) and maybe
applied (``ReadTimeout``, ``RemoteProtocolError``, ``ReadError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
from aiohttp.connector import Connection
from httpcore._utils import is_socket_readable
from yarl import URL

from sync_core.errors import redact

# Most specific first: aiohttp's timeouts are connection errors as well.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # connecting, or a pool slot
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),  # sent, no answer in time
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),  # closed before answering
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not a valid HTTP response
    (aiohttp.ClientPayloadError, httpx.ReadError),  # the body broke off
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),  # a reset or another failure once connected
    (TimeoutError, httpx.ReadTimeout),
)
_NO_TIMEOUTS: dict[str, float | None] = {}
# A status or header line may be as long as httpcore's whole head (aiohttp: 8190 bytes).
_HEAD_BYTES = 100 * 1024


_CAUGHT = tuple(kind for kind, _ in _ERRORS)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, which also passes over a pooled connection whose peer has closed it
    (or sent something unasked), as httpcore's pool did: aiohttp learns of a close only
    once the event loop has read it, and a request sent on it in between fails as maybe
    applied (a create back to back with a close: every second one)."""

    # ``_get`` is aiohttp's own (3.11-3.14: key, traces): the arguments pass through as
    # they come, so that a changed signature costs this check, not every call.
    async def _get(self, *args: Any, **kwargs: Any) -> Connection | None:
        while (conn := await super()._get(*args, **kwargs)) is not None:
            transport = conn.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None or not is_socket_readable(sock):
                return conn
            conn.close()
        return None


def _describe(exc: BaseException, request: httpx.Request) -> str:
    """aiohttp's type and message without the request's query: aiohttp writes the full URL
    into several messages (``ConnectionTimeoutError``, ``ClientResponseError``, a body
    write's ``ClientOSError``), and WeCom's ``access_token`` is in the query."""
    url = request.url
    text = str(exc).replace(str(url), str(url.copy_with(query=None, fragment=None)))
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError:
        raise
    except _CAUGHT as exc:
        mapped = next(to for kind, to in _ERRORS if isinstance(exc, kind))
        # Not chained: a traceback would print aiohttp's own message, URL and token.
        raise mapped(_describe(exc, request), request=request) from None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for one ``httpx.AsyncClient``. ``limits.max_connections`` caps the pool,
    ``limits.keepalive_expiry`` (s) closes idle connections; ``verify``: as httpx's (True:
    the system's and certifi's CAs; a CA bundle path; or an ``ssl.SSLContext``). The
    request's ``timeout`` extension applies: ``connect`` to connecting, ``pool`` to waiting
    for a free connection as well (aiohttp times both together), ``read`` to each wait for
    response bytes; ``write`` bounds sending a body, as a deadline of ``pool + write +
    read`` for the answer's head (aiohttp starts its read timeout only once the body is
    out, and has no write timeout: a peer that stops reading held the call for ever).
    Cookies are left to httpx; the body is read whole. A session belongs to one event
    loop: under another (a second ``asyncio.run``) a new one is made."""

    def __init__(self, *, limits: httpx.Limits,
                 verify: bool | str | ssl.SSLContext = True) -> None:
        self._ssl = (verify if isinstance(verify, ssl.SSLContext)
                     else httpx.create_ssl_context(verify=verify))
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        # Made on first use: aiohttp binds a session to the running event loop.
        connector = _Connector(
            limit=self._limits.max_connections or 0, ssl=self._ssl,
            keepalive_timeout=self._limits.keepalive_expiry)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False, max_line_size=_HEAD_BYTES, max_field_size=_HEAD_BYTES,
            # httpx's headers go as built: no agent, encoding or octet-stream type of aiohttp's
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop:
            stale, stale_loop = session, self._loop
            session = self._open(loop)
            if stale is not None and stale_loop is not None and stale_loop.is_closed():
                # The loop it was made in has ended, its connections with it: marked
                # closed only (no "Unclosed client session" from it later).
                await stale.close()
        timeout = request.extensions.get("timeout", _NO_TIMEOUTS)
        body = await request.aread()
        pool, write, read = timeout.get("pool"), timeout.get("write"), timeout.get("read")
        headers = request.headers.multi_items()
        if "transfer-encoding" in request.headers:  # a streamed body, now read whole
            headers = [(k, v) for k, v in headers if k != "transfer-encoding"]
        with _mapped(request):
            sending = session.request(
                request.method, URL(str(request.url), encoded=True),
                headers=headers, data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=pool, sock_connect=timeout.get("connect"),
                    sock_read=read))
            if not body or pool is None or write is None or read is None:
                answer = await sending
            else:
                deadline = asyncio.timeout(pool + write + read)
                try:
                    async with deadline:
                        answer = await sending
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    raise httpx.WriteTimeout("the request body could not be sent in time",
                                             request=request) from None
            async with answer:
                content = await answer.read()
        # As a stream, not ``content``: httpx would add a Content-Length to the headers.
        return httpx.Response(
            answer.status, headers=answer.raw_headers, stream=httpx.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (answer.reason or "").encode("utf-8", "replace")})

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


__all__ = ["AiohttpTransport"]
