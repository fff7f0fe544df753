"""The served OpenAPI description matches the app's ops routes, both ways."""

from __future__ import annotations

import re

import httpx
from starlette.routing import Route

from receiver.app import create_app

from .conftest import make_settings
from .helpers import running_receiver


def _ops_routes(sqlite_url: str) -> set[tuple[str, str]]:
    app = create_app(make_settings(sqlite_url))
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/ops/"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found |= {(m.lower(), path) for m in (route.methods or ()) if m != "HEAD"}
    return found


def test_openapi_describes_every_ops_route_and_nothing_else(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        reply = httpx.get(f"{srv.url}/ops/openapi.json",
                          headers={"Authorization": "Bearer ops-test-token"})
    assert reply.status_code == 200
    doc = reply.json()
    assert doc["openapi"].startswith("3.")
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert described == _ops_routes(sqlite_url)
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in ops.items():
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == names, (method, path)
            assert op["summary"] and op["responses"]
