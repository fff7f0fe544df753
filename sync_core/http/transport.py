"""The httpx transport of the remotes: httpx's own, with a cheap idle-connection check.

Before it places a request, httpcore asks every idle pooled connection whether its socket
has become readable (the server closed it). Through anyio that question builds a dict of
socket attributes and makes a ``getpeername()`` system call each time: a sixth of the CPU
of a 10^5-user WeCom read (5,000 ``user/list`` calls, each checking the other idle
connections). Here each connection looks its socket up once and polls it directly: the
same check (httpcore's ``is_socket_readable``), without the rest.
"""

from __future__ import annotations

import select
import socket
import ssl
import typing

import httpcore
import httpx


def transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An ``AsyncHTTPTransport`` with ``limits`` whose pool uses the cheap check. Proxies
    from the environment still apply: the client mounts its own transports for them."""
    made = httpx.AsyncHTTPTransport(limits=limits)
    if hasattr(select, "poll"):  # else (not Linux) httpx's own check stays
        # httpx takes no network backend, so its pool is rebuilt with the same settings
        # (httpx < 1.0 pinned in pyproject).
        made._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_Backend())
    return made


class _Backend(httpcore.AnyIOBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        return _Stream(await super().connect_tcp(host, port, timeout, local_address,
                                                 socket_options))


class _Stream(httpcore.AsyncNetworkStream):
    """The anyio stream, answering ``is_readable`` from its socket looked up once."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """As httpcore's check: a closed socket counts as readable (its next read is EOF)."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
