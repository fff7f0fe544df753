"""Test doubles shared by the API-client tests: a fake clock whose sleep advances it, and
a recording MockTransport front that dispatches on the request path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class FakeTime:
    """``clock``/``sleep`` pair: sleeping advances the clock instantly and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Recorder:
    """Routes requests to ``routes[path suffix]`` and remembers every request.

    A route returns an ``httpx.Response``, a JSON-able value (sent with HTTP 200), or
    raises (e.g. ``httpx.ReadTimeout``) like a broken network would.
    """

    def __init__(self, routes: dict[str, Callable[[httpx.Request], Any]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def paths(self, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(suffix)]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let concurrent callers interleave
            for suffix, route in self.routes.items():
                if request.url.path.endswith(suffix):
                    result = route(request)
                    if isinstance(result, Awaitable):
                        result = await result
                    if isinstance(result, httpx.Response):
                        return result
                    return httpx.Response(200, json=result)
            return httpx.Response(404, text="<html>no such route</html>",
                                  headers={"content-type": "text/html"})
        finally:
            self.in_flight -= 1

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def sequence(*results: Any) -> Callable[[httpx.Request], Any]:
    """A route answering ``results`` in turn, repeating the last one; an exception
    instance is raised instead of returned."""
    remaining = list(results)

    def route(request: httpx.Request) -> Any:
        result = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(result, BaseException):
            raise result
        return result

    return route
