"""Bare asyncio servers for the transport tests: each speaks just enough HTTP, or breaks it
on purpose, to show what the remotes' transport makes of a peer."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None,
                ) -> tuple[asyncio.Server, str]:
    """A server on a free loopback port, and its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, never answers."""
    await reader.read()


def answering(raw: bytes) -> Handler:
    """A server that reads one request's head, sends ``raw`` as it is (a valid answer or
    a broken one) and closes the connection, without announcing it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handler
