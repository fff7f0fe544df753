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

import contextlib
import ssl
from collections.abc import Iterator

import aiohttp
import httpx
from yarl import URL

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


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError:
        raise
    except tuple(kind for kind, _ in _ERRORS) as exc:
        mapped = next(to for kind, to in _ERRORS if isinstance(exc, kind))
        raise mapped(str(exc) or type(exc).__name__, request=request) from exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for one ``httpx.AsyncClient``. ``limits.max_connections`` caps the pool,
    ``limits.keepalive_expiry`` (s) closes idle connections; ``verify``: as httpx's (True:
    the system's and certifi's CAs; a CA bundle path; or an ``ssl.SSLContext``). The
    request's ``timeout`` extension applies: ``connect`` to connecting, ``pool`` to waiting
    for a free connection as well (aiohttp times both together), ``read`` to each wait for
    response bytes. Cookies are left to httpx; the body is read whole."""

    def __init__(self, *, limits: httpx.Limits,
                 verify: bool | str | ssl.SSLContext = True) -> None:
        self._ssl = (verify if isinstance(verify, ssl.SSLContext)
                     else httpx.create_ssl_context(verify=verify))
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: aiohttp binds a session to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0, ssl=self._ssl,
            keepalive_timeout=self._limits.keepalive_expiry)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", _NO_TIMEOUTS)
        body = await request.aread()
        with _mapped(request):
            async with session.request(
                    request.method, URL(str(request.url), encoded=True),
                    headers=request.headers.multi_items(), data=body or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=None, connect=timeout.get("pool"),
                        sock_connect=timeout.get("connect"),
                        sock_read=timeout.get("read"))) as answer:
                content = await answer.read()
        return httpx.Response(
            answer.status, headers=answer.raw_headers, content=content,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (answer.reason or "").encode("latin-1")})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["AiohttpTransport"]
