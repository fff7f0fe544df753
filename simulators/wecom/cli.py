"""``wecom-sync simulate wecom [options]``: serve a simulated WeCom corp in the foreground.

Point the service's ``WECOM_SYNC_WECOM_API_BASE`` at it, and its callback settings at the
service's ``/wecom/callback``; then change the directory through ``/_admin/...``.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from .app import WeComSimulator
from .tokens import DEFAULT_TTL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Point the service at it with WECOM_SYNC_WECOM_API_BASE=http://HOST:PORT, "
        "WECOM_SYNC_WECOM_CORP_ID=<--corp-id> and WECOM_SYNC_WECOM_CONTACT_SECRET="
        "<--contact-secret>; see the members with GET /_admin/users.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=8090, help="listen port")
    parser.add_argument("--corp-id", default="wwsimulator0001",
                        help="corpid; also the callback receive id")
    parser.add_argument("--corp-name", default="示例科技", help="name of the root department")
    parser.add_argument("--contact-secret", default="contact-sync-secret",
                        help="the 通讯录同步 secret (read and write, list_id)")
    parser.add_argument("--app-secret", action="append", default=[], dest="app_secrets",
                        metavar="SECRET", help="a read-only app secret (repeatable)")
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_TTL,
                        help="access_token lifetime in seconds")
    parser.add_argument("--callback-url", help="where admin changes are called back")
    parser.add_argument("--callback-token", help="callback Token")
    parser.add_argument("--encoding-aes-key", help="43-character EncodingAESKey")
    parser.add_argument("--callback-lanes", type=int, default=1,
                        help="deliver callbacks on this many threads; one entity's stay in "
                             "order (default 1: all in order)")
    parser.add_argument("--trimmed", action="store_true",
                        help="post-2022 callbacks: IDs only, no update_party on rename")
    parser.add_argument("--restricted-reads", action="store_true",
                        help="user/get, user/list, department/list answer 48009 (new-IP rule)")
    parser.add_argument("--withhold-sensitive", action="store_true",
                        help="no mobile, email, avatar, gender, address... in user views")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None,
                        help="45009 past this many calls per endpoint per minute")
    parser.add_argument("--concurrency-cap", type=int, default=None,
                        help="45033 past this many calls in flight")
    parser.add_argument("--seed-users", type=int, default=0, help="generate this many users")
    parser.add_argument("--seed-departments", type=int, default=0,
                        help="generate this many departments (root included)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")


def run(args: argparse.Namespace) -> int:
    try:
        sim = WeComSimulator(
            corp_id=args.corp_id, corp_name=args.corp_name, contact_secret=args.contact_secret,
            app_secrets=args.app_secrets, token_ttl=args.token_ttl,
            callback_url=args.callback_url, callback_token=args.callback_token,
            encoding_aes_key=args.encoding_aes_key, trimmed=args.trimmed,
            callback_lanes=args.callback_lanes, restricted_reads=args.restricted_reads,
            withhold_sensitive=args.withhold_sensitive,
            latency_ms=args.latency_ms, rate_limit_per_minute=args.rate_limit_per_minute,
            concurrency_cap=args.concurrency_cap, seed_users=args.seed_users,
            seed_departments=args.seed_departments, seed=args.seed,
        )
    except ValueError as exc:  # e.g. a malformed EncodingAESKey, a bad generator size
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"WeCom simulator for corp {args.corp_id}: http://{args.host}:{args.port} "
          f"({len(sim.state.users)} users, {len(sim.state.departments)} departments; "
          f"callbacks {'to ' + args.callback_url if args.callback_url else 'off'})",
          file=sys.stderr)
    try:
        sock = _listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    server = uvicorn.Server(uvicorn.Config(sim.app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        sim.pusher.close()
        sock.close()
    return 0


def _listening_socket(host: str, port: int) -> socket.socket:
    """Our own socket, so TCP_NODELAY is set (accepted sockets inherit it): without it every
    response waits ~40 ms for a delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock
