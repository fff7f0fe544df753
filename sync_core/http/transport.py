"""The httpx transport of both remotes: httpcore's connection pool on plain asyncio streams.

httpx reaches asyncio through anyio, whose per-operation bookkeeping (a cancel scope per
read and write, socket attributes rebuilt as a dict on every pool check) was about a
quarter of each call's CPU (1.2 → 0.9 ms per request on the benchmark machine), and the
worker makes several calls per event. This backend gives httpcore the same operations on
asyncio streams, with the same exceptions (``httpcore.ReadTimeout``, ``ConnectError``, …,
which httpx maps to its own, and ``http.retry`` to transient errors), timeouts and TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

_SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                 | tuple[int, int, None, int])  # httpcore's SOCKET_OPTION
_READ_ERRORS: dict[type[Exception], type[Exception]] = {
    TimeoutError: httpcore.ReadTimeout, OSError: httpcore.ReadError}
_WRITE_ERRORS: dict[type[Exception], type[Exception]] = {
    TimeoutError: httpcore.WriteTimeout, OSError: httpcore.WriteError}
_CONNECT_ERRORS: dict[type[Exception], type[Exception]] = {
    TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}  # ssl.SSLError too

_CLOSE_WAIT_SECONDS = 1.0


@contextlib.contextmanager
def _mapped(errors: dict[type[Exception], type[Exception]]) -> Iterator[None]:
    try:
        yield
    except tuple(errors) as exc:
        for kind, mapped in errors.items():
            if isinstance(exc, kind):
                raise mapped(str(exc) or type(exc).__name__) from exc
        raise  # pragma: no cover - the loop above always matches


async def _within(timeout: float | None, awaitable: Any) -> Any:
    if timeout is None:
        return await awaitable
    async with asyncio.timeout(timeout):
        return await awaitable


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection as an asyncio (reader, writer) pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(_READ_ERRORS):
            data: bytes = await _within(timeout, self._reader.read(max_bytes))
            return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(_WRITE_ERRORS):
            if self._writer.is_closing():
                raise BrokenPipeError("connection closed")
            self._writer.write(buffer)
            await _within(timeout, self._writer.drain())

    async def aclose(self) -> None:
        self._writer.close()
        try:
            # A TLS close waits for the peer's close_notify (asyncio: up to 30 s); httpcore's
            # anyio streams never wait for it, and neither does this one for long.
            async with asyncio.timeout(_CLOSE_WAIT_SECONDS):
                await self._writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            self._writer.transport.abort()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            with _mapped(_CONNECT_ERRORS):
                await _within(timeout, self._writer.start_tls(
                    ssl_context, server_hostname=server_hostname))
        except Exception:
            await self.aclose()
            raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # the pool's check that an idle connection is still open
            sock = self._writer.get_extra_info("socket")
            return sock is None or is_socket_readable(sock)
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._writer.get_extra_info(info)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[_SocketOption] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        with _mapped(_CONNECT_ERRORS):
            reader, writer = await _within(timeout, asyncio.open_connection(
                host, port, local_addr=(local_address, 0) if local_address else None))
        sock = writer.get_extra_info("socket")
        if sock is not None:  # asyncio sets TCP_NODELAY already
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[_SocketOption] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        with _mapped(_CONNECT_ERRORS):
            reader, writer = await _within(timeout, asyncio.open_unix_connection(path))
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` (HTTP/1.1; its request and exception mapping kept) whose
    connection pool runs on ``AsyncioBackend``. ``verify``: as httpx's (True: the system's
    and certifi's CAs; a path or an ``ssl.SSLContext``)."""

    def __init__(self, *, limits: httpx.Limits,
                 verify: bool | str | ssl.SSLContext = True) -> None:
        context = (verify if isinstance(verify, ssl.SSLContext)
                   else httpx.create_ssl_context(verify=verify))
        super().__init__(limits=limits, verify=context)
        # httpx builds its pool on anyio and takes no backend: the one pool it uses is
        # replaced by the same pool on ours (httpx only ever calls ``self._pool``).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=AsyncioBackend())


__all__ = ["AsyncioBackend", "AsyncioStream", "AsyncioTransport"]
