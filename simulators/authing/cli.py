"""``wecom-sync simulate authing``: the simulator in the foreground on --host/--port."""

from __future__ import annotations

import argparse

import uvicorn

from .app import AuthingSimulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Point the service at it with WECOM_SYNC_AUTHING_API_BASE=http://HOST:PORT, "
        "WECOM_SYNC_AUTHING_ACCESS_KEY_ID=<--userpool-id> and "
        "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET=<--secret>. Create a user as a console "
        "operator would: POST /_admin/users with {\"username\": \"xinren\", \"name\": "
        "\"新人\", \"email\": \"xinren@example.com\", \"departmentIds\": [\"1\"], "
        "\"options\": {\"departmentIdType\": \"open_department_id\"}}.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=8082, help="listen port")
    parser.add_argument("--userpool-id", default="sim-userpool",
                        help="accessKeyId, and the pool id in tokens and headers")
    parser.add_argument("--secret", default="sim-secret", help="accessKeySecret")
    parser.add_argument("--organization-code", default="wecom",
                        help="pre-create this organization ('' for none)")
    parser.add_argument("--organization-name", default=None)
    parser.add_argument("--root-open-department-id", default="1",
                        help="openDepartmentId of the organization's root (WeCom dept 1)")
    parser.add_argument("--webhook-url", action="append", default=[],
                        help="deliver every event here (repeatable)")
    parser.add_argument("--webhook-secret", default="",
                        help="sent as x-authing-webhook-secret and x-authing-token")
    parser.add_argument("--webhook-content-type", default="application/json",
                        choices=["application/json", "application/x-www-form-urlencoded"])
    parser.add_argument("--webhook-lanes", type=int, default=1,
                        help="deliveries per webhook at a time; one user's or node's stay in "
                             "order (default 1: all in order)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every call")
    parser.add_argument("--token-ttl", type=int, default=7200, help="token lifetime, seconds")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None,
                        help="answer HTTP 429 beyond this many calls a minute")
    parser.add_argument("--log-level", default="warning")


def run(args: argparse.Namespace) -> int:
    sim = AuthingSimulator(
        userpool_id=args.userpool_id, secret=args.secret,
        organization_code=args.organization_code or None,
        organization_name=args.organization_name,
        root_open_department_id=args.root_open_department_id or None,
        token_ttl=args.token_ttl, latency_ms=args.latency_ms,
        rate_limit_per_minute=args.rate_limit_per_minute, webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret, webhook_content_type=args.webhook_content_type,
        webhook_lanes=args.webhook_lanes)
    print(f"authing simulator on http://{args.host}:{args.port} "
          f"(userpool {args.userpool_id}, organization {args.organization_code or '-'})",
          flush=True)
    try:
        uvicorn.run(sim.app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        sim.webhooks.close()
    return 0


def main() -> int:
    """``python -m simulators.authing.cli``, for use without the product's CLI."""
    parser = argparse.ArgumentParser(prog="authing-simulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
