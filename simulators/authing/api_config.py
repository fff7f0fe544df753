"""/api/v3 custom-field, custom-data and webhook endpoints (reference §2.6, §4.1)."""

from __future__ import annotations

from typing import Any

from .endpoint import Deps, Endpoint
from .errors import bad_param, not_found
from .fields import TARGET_TYPES
from .params import Params, page_slice
from .webhooks import EVENTS

_DATA_TARGETS = ("USER", "DEPARTMENT")


def set_custom_fields(d: Deps, p: Params) -> Any:
    p.only({"list", "tenantId"})
    fields = d.state.fields.set_fields(p.array("list", required=True, max_len=None) or [])
    d.state.changed()
    return [d.state.fields.dto(f) for f in fields]


def get_custom_fields(d: Deps, p: Params) -> Any:
    target = p.req("targetType", choices=TARGET_TYPES)
    return [d.state.fields.dto(f) for f in d.state.fields.of(target)]


def set_custom_data(d: Deps, p: Params) -> Any:
    p.only({"targetType", "targetIdentifier", "list", "tenantId", "namespace"})
    target = p.req("targetType", choices=TARGET_TYPES)
    identifier = p.req("targetIdentifier")
    data: dict[str, Any] = {}
    for item in p.array("list", required=True, max_len=None) or []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise bad_param("list")
        data[item["key"]] = item.get("value")
    if target == "USER":
        d.state.update_users([(d.state.user(identifier), {"customData": data})],
                             announce=False)
    elif target == "DEPARTMENT":
        d.state.set_department_custom_data(d.state.dept(identifier), data)
    else:
        raise not_found(f"{target.lower()} not found: {identifier}")
    return {"success": True}


def get_custom_data(d: Deps, p: Params) -> Any:
    target = p.req("targetType", choices=TARGET_TYPES)
    identifier = p.req("targetIdentifier")
    if target == "USER":
        return dict(d.state.user(identifier).custom_data)
    if target == "DEPARTMENT":
        return dict(d.state.dept(identifier).custom_data)
    raise not_found(f"{target.lower()} not found: {identifier}")


def create_webhook(d: Deps, p: Params) -> Any:
    return d.webhooks.dto(d.webhooks.create(p.data))


def update_webhook(d: Deps, p: Params) -> Any:
    return d.webhooks.dto(d.webhooks.update(p.data))


def delete_webhook(d: Deps, p: Params) -> Any:
    p.only({"webhookIds"})
    d.webhooks.delete(p.texts("webhookIds", required=True) or [])
    return {"success": True}


def list_webhooks(d: Deps, p: Params) -> Any:
    page, limit = p.page()
    hooks = list(d.webhooks.hooks.values())
    return {"totalCount": len(hooks),
            "list": [d.webhooks.dto(h) for h in page_slice(hooks, page, limit)]}


def get_webhook(d: Deps, p: Params) -> Any:
    return d.webhooks.dto(d.webhooks.get(p.req("webhookId")))


def get_webhook_logs(d: Deps, p: Params) -> Any:
    p.only({"webhookId", "page", "limit"})
    hook = d.webhooks.get(p.req("webhookId"))
    page, limit = p.page()
    logs = [x for x in d.webhooks.received(success=False) if x.webhook_id == hook.webhook_id]
    logs.reverse()  # newest first
    return {"totalCount": len(logs), "list": [
        {"webhookId": x.webhook_id, "eventName": x.event_name, "requestBody": x.request_body,
         "requestHeaders": x.request_headers, "responseStatusCode": x.response_status,
         "responseBody": x.response_body, "success": x.success,
         "errorMessage": x.error_message, "timestamp": x.at}
        for x in page_slice(logs, page, limit)]}


def get_webhook_event_list(d: Deps, p: Params) -> Any:
    return [{"name": event, "value": event} for event in EVENTS]


ENDPOINTS = [
    Endpoint("set-custom-fields", "POST", set_custom_fields, write=True),
    Endpoint("get-custom-fields", "GET", get_custom_fields),
    Endpoint("set-custom-data", "POST", set_custom_data, write=True),
    Endpoint("get-custom-data", "GET", get_custom_data),
    Endpoint("create-webhook", "POST", create_webhook, write=True),
    Endpoint("update-webhook", "POST", update_webhook, write=True),
    Endpoint("delete-webhook", "POST", delete_webhook, write=True),
    Endpoint("list-webhooks", "GET", list_webhooks),
    Endpoint("get-webhook", "GET", get_webhook),
    Endpoint("get-webhook-logs", "POST", get_webhook_logs),
    Endpoint("get-webhook-event-list", "GET", get_webhook_event_list),
]
