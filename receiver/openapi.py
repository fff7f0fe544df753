"""The ops API described as OpenAPI 3.1, served at ``GET /ops/openapi.json``.

Written out by hand, once per route, and checked against the app's routes by a test
(tests/test_openapi.py): a route added without its description, or described and gone,
fails it.
"""

from __future__ import annotations

from typing import Any

from sync_core.version import version

_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
_ERR = {"description": "bad parameter or body", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_ACTOR = {"name": "X-Ops-Actor", "in": "header", "required": False,
          "schema": {"type": "string", "maxLength": 48 * 9},
          "description": "the operator's name, recorded with the decision or replay as "
                         "api:NAME; percent-encoded UTF-8, at most 48 characters of letters, "
                         "digits, spaces and _ . @ + -"}
_404 = {"description": "nothing by that id"}
_409 = {"description": "the run is not in a state that takes this"}


def _q(name: str, schema: dict[str, Any], about: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": about}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_RUN_STATUS = _enum("queued", "running", "succeeded", "partial", "failed", "blocked")
_EVENT_STATUS = _enum("pending", "done", "failed", "dead")
_DIRECTION = _enum("upstream", "downstream")
_MODE = _enum("create_update", "delete_only", "full")


def _op(summary: str, *, params: list[dict[str, Any]] | None = None,
        ok: str = "200", body: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "parameters": params or [],
                           "responses": {ok: {"description": "OK"}, "400": _ERR,
                                         "401": {"description": "missing or wrong token"},
                                         **(extra or {})}}
    if body:
        out["requestBody"] = body
    return out


def _decision(what: str) -> dict[str, Any]:
    return {"post": _op(what, params=[_ID, _ACTOR], ok="202" if "Apply" in what else "200",
                        extra={"404": _404, "409": _409})}


PATHS: dict[str, dict[str, Any]] = {
    "/ops/openapi.json": {"get": _op("This description")},
    "/ops/status": {"get": _op("Inbox depth, oldest open event, last successful and next "
                               "scheduled run per direction, WeCom read availability, "
                               "credentials as last seen, version")},
    "/ops/events": {"get": _op("The inbox, newest first", params=[
        _q("status", _EVENT_STATUS), _q("source", _enum("wecom", "authing", "ops")),
        _q("entity_kind", _enum("user", "department", "tag", "job", "suite", "other")),
        _q("entity_key", {"type": "string", "maxLength": 255}),
        _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        _q("before", {"type": "integer"}, "page backwards: ids below this")])},
    "/ops/events/{id}": {"get": _op("One event with its payload and every attempt, replays "
                                    "included (a replay adds to the history)",
                                    params=[_ID], extra={"404": _404})},
    "/ops/events/{id}/replay": {"post": _op("Re-queue one event", params=[_ID, _ACTOR],
                                            ok="202",
                                            extra={"404": _404})},
    "/ops/objects/{kind}/{key}": {"get": _op(
        "One user or department across both directions: events with their attempts, the "
        "runs that touched it, the link table rows", params=[
            {"name": "kind", "in": "path", "required": True,
             "schema": _enum("user", "department")},
            {"name": "key", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 255},
             "description": "WeCom userid or department id, or the Authing id"}])},
    "/ops/sync/users/{userid}": {"post": _op(
        "Sync one user, named by its WeCom userid, now in the configured direction(s) "
        "(both: upstream, then downstream); answers the event id", ok="202", params=[
        {"name": "userid", "in": "path", "required": True, "schema": {"type": "string"}}])},
    "/ops/sync/departments/{id}": {"post": _op("Sync one department, named by its WeCom id, "
                                               "now in the configured direction(s); answers "
                                               "the event id", ok="202", params=[
        {**_ID, "schema": {"type": "integer", "minimum": 1, "maximum": 2**32 - 1}}])},
    "/ops/reconcile": {"post": _op(
        "Start a run", ok="202", extra={"409": {"description": "a run of that direction "
                                                              "is active"}},
        body={"content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": False,
                                            "properties": {
                "direction": _DIRECTION, "mode": _MODE, "dry_run": {"type": "boolean"},
                "source": _enum("api", "excel")}}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "additionalProperties": False,
                                               "properties": {
                "file": {"type": "string", "format": "binary"}, "direction": _DIRECTION,
                "mode": _MODE, "dry_run": {"type": "boolean"}, "sheet": {"type": "string"},
                "start_row": {"type": "integer"}, "end_row": {"type": "integer"},
                "keep_top_department": {"type": "boolean"},
                "departments": {"type": "string", "format": "binary",
                                "description": "the department CSV"}}}}}})},
    "/ops/runs": {"get": _op("Runs newest first, and the next fire time per direction",
                             params=[
        _q("status", _RUN_STATUS), _q("direction", _DIRECTION), _q("mode", _MODE),
        _q("source", _enum("api", "excel")), _q("trigger", {"type": "string"}),
        _q("dry_run", _enum("true", "false")),
        _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
        _q("before", {"type": "integer"})])},
    "/ops/runs/{id}": {"get": _op("One run with its items", params=[
        _ID, _q("item_status", _enum("applied", "planned", "unchanged", "skipped", "failed",
                                     "staged")),
        _q("kind", _enum("user", "department")), _q("action", {"type": "string"}),
        _q("key", {"type": "string"}), _q("limit", {"type": "integer", "minimum": 1}),
        _q("offset", {"type": "integer", "minimum": 0})], extra={"404": _404})},
    "/ops/runs/{id}/approve": _decision("Apply the deletes a blocked run staged"),
    "/ops/runs/{id}/reject": _decision("Drop the deletes a blocked run staged"),
    "/ops/runs/{id}/cancel": _decision("Stop a queued or running run"),
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "wecom-sync ops API", "version": version()},
        "components": {
            "securitySchemes": {"ops": {"type": "http", "scheme": "bearer",
                                        "description": "WECOM_SYNC_OPS_TOKEN"}},
            "schemas": {"Error": {"type": "object", "properties": {
                "error": {"type": "string"}}, "required": ["error"]}}},
        "security": [{"ops": []}],
        "paths": PATHS,
    }
