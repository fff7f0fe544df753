"""Load generator process: posts pre-built, validly signed WeCom callbacks over loopback.

Run by ``bench.ingest`` as ``python -m bench.loadgen ...``; not meant to be run by hand.
Protocol on stdio, so several generators can start at the same instant:

1. build every request (encryption and signing happen here, before any timing), then print
   ``ready``;
2. wait for a stdin line ``go <unix time>``, sleep until that time, run the phase;
3. write raw latencies and counts as JSON to ``--out`` (the parent merges processes), then
   print ``done``. A file, not stdout: the event loop leaves stdout non-blocking and a
   large write to a full pipe was silently cut at 64 KiB.

Keys come from the same ``WECOM_SYNC_WECOM_*`` variables the server reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import ssl
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from sync_core.wecom.crypto import WeComCrypto
from sync_core.wecom.envelope import build_envelope

CALLBACK_PATH = "/wecom/callback"
HEADERS = {"content-type": "text/xml; charset=utf-8"}

# httpcore asks ``import sniffio`` on every request; without sniffio installed (anyio 4.16
# no longer pulls it in) each failed import rescans sys.path, costing ~0.3 ms of client
# CPU per request. A None entry makes the import fail at once, with the same outcome
# ("asyncio").
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Path with signed query string, and the XML envelope: all the client does is send."""

    path: str
    body: bytes
    wire: bytes  # the whole HTTP/1.1 request, for the raw client


@dataclass
class Tally:
    """What one process observed; latencies in seconds, for every completed request."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    first_start: float = 0.0
    last_end: float = 0.0

    def record(self, outcome: str, started: float, ended: float) -> None:
        self.latencies.append(ended - started)
        self.statuses[outcome] += 1
        if outcome == "200 success":
            self.accepted += 1
        self.last_end = max(self.last_end, ended)


def user_change(corp_id: str, user_id: str, create_time: int) -> bytes:
    """A realistic ``update_user`` change_contact message (fields as in reference §2)."""
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{create_time}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
        f"<ChangeType><![CDATA[update_user]]></ChangeType>"
        f"<UserID><![CDATA[{user_id}]]></UserID><Name><![CDATA[Bench {user_id}]]></Name>"
        f"<Department><![CDATA[1,2]]></Department><MainDepartment>1</MainDepartment>"
        f"<Position><![CDATA[engineer]]></Position><Mobile>13800000000</Mobile>"
        f"<Gender>1</Gender><Email><![CDATA[{user_id}@example.com]]></Email>"
        f"<Status>1</Status></xml>"
    ).encode()


def build_requests(crypto: WeComCrypto, corp_id: str, tag: str, count: int,
                   host: str = "127.0.0.1") -> list[PreparedRequest]:
    """``count`` distinct events (distinct UserID, so none is deduplicated)."""
    now = int(time.time())
    out: list[PreparedRequest] = []
    for i in range(count):
        message = user_change(corp_id, f"{tag}-{i}", now + i)
        timestamp, nonce = str(now), secrets.token_hex(5)
        encrypted, signature = crypto.encrypt_message(message, timestamp, nonce)
        query = urlencode({"msg_signature": signature, "timestamp": timestamp, "nonce": nonce})
        path, body = f"{CALLBACK_PATH}?{query}", build_envelope(encrypted, corp_id)
        out.append(PreparedRequest(path, body, _wire(host, path, body)))
    return out


def _wire(host: str, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
            + f"content-length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


class HttpxConnection:
    """One keep-alive connection as its own single-connection httpx client.

    httpcore's shared pool rescans every connection on each request (quadratic in the
    pool size): with 32 connections in one client the generator itself topped out near
    150 requests/s. One client per connection keeps that scan at length one.
    """

    def __init__(self, base_url: str, tls: ssl.SSLContext) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, verify=tls,
                                         timeout=None)

    async def exchange(self, request: PreparedRequest) -> str:
        response = await self._client.post(request.path, content=request.body,
                                           headers=HEADERS)
        return f"{response.status_code} {response.text[:20]}"

    async def reset(self) -> None:
        """httpx drops a broken connection itself."""

    async def aclose(self) -> None:
        await self._client.aclose()


class RawConnection:
    """HTTP/1.1 keep-alive over a plain asyncio stream: the request goes out as one
    pre-serialised buffer, the reply is read as status line, headers, Content-Length body.
    An order of magnitude less client CPU than httpx, which matters when client and
    server share two cores."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: PreparedRequest) -> str:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(request.wire)
        head = await self._reader.readuntil(b"\r\n\r\n")
        body = await self._reader.readexactly(_content_length(head))
        return f"{int(head[9:12])} {body[:20].decode('utf-8', 'replace')}"

    async def reset(self) -> None:
        """After a failure the stream's state is unknown: reconnect on next use."""
        await self.aclose()
        self._reader = self._writer = None

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


Connection = HttpxConnection | RawConnection
FAILURES = (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError,
            httpx.HTTPError)


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line[15:])
    raise ValueError("reply without Content-Length")


class Connections:
    """A bounded set of keep-alive connections; a request waits for a free one."""

    def __init__(self, connections: list[Connection], timeout: float) -> None:
        self._all, self._timeout = connections, timeout
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in connections:
            self._idle.put_nowait(conn)

    async def send(self, request: PreparedRequest, started: float, tally: Tally) -> None:
        """One POST; any failure is an outcome, never an exception that ends the phase."""
        conn = await self._idle.get()
        try:
            async with asyncio.timeout(self._timeout):
                outcome = await conn.exchange(request)
        except FAILURES as exc:
            outcome = type(exc).__name__
            await conn.reset()
        finally:
            self._idle.put_nowait(conn)
        tally.record(outcome, started, time.perf_counter())

    async def aclose(self) -> None:
        await asyncio.gather(*(conn.aclose() for conn in self._all))


def open_connections(args: argparse.Namespace) -> Connections:
    if args.client == "httpx":
        tls = ssl.create_default_context()  # unused on http://, but costly to build per client
        conns: list[Connection] = [HttpxConnection(args.url, tls)
                                   for _ in range(args.concurrency)]
    else:
        url = httpx.URL(args.url)
        conns = [RawConnection(url.host, url.port or 80) for _ in range(args.concurrency)]
    return Connections(conns, args.timeout)


async def closed_loop(conns: Connections, requests: list[PreparedRequest],
                      concurrency: int, duration: float) -> Tally:
    """Max throughput: ``concurrency`` workers, each sends its next request on a reply."""
    tally = Tally(first_start=time.perf_counter())
    deadline = tally.first_start + duration
    pending = iter(requests)

    async def worker() -> None:
        for request in pending:
            started = time.perf_counter()
            if started >= deadline:
                return
            await conns.send(request, started, tally)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


async def open_loop(conns: Connections, requests: list[PreparedRequest],
                    rate: float) -> Tally:
    """Fixed offered rate. Latency counts from the *scheduled* send time, so a stalled
    server is charged for the requests it delayed (no coordinated omission)."""
    tally = Tally(first_start=time.perf_counter())
    tasks: list[asyncio.Task[None]] = []
    for i, request in enumerate(requests):
        scheduled = tally.first_start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(conns.send(request, scheduled, tally)))
    await asyncio.gather(*tasks)
    return tally


async def run_phase(args: argparse.Namespace, requests: list[PreparedRequest]) -> Tally:
    conns = open_connections(args)
    try:
        if args.rate:
            return await open_loop(conns, requests, args.rate)
        return await closed_loop(conns, requests, args.concurrency, args.duration)
    finally:
        await conns.aclose()


def wait_for_go() -> None:
    """Block until the parent says ``go <unix time>``, then sleep until that instant."""
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "go":
        raise SystemExit(f"loadgen: expected 'go <time>', got {line!r}")
    time.sleep(max(0.0, float(line[1]) - time.time()))


def _run(coro: Coroutine[Any, Any, Tally]) -> Tally:
    """On uvloop when installed, as the server (uvicorn's default) is."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    corp_id = os.environ["WECOM_SYNC_WECOM_CORP_ID"]
    crypto = WeComCrypto(os.environ["WECOM_SYNC_WECOM_CALLBACK_TOKEN"],
                         os.environ["WECOM_SYNC_WECOM_ENCODING_AES_KEY"], corp_id)
    requests = build_requests(crypto, corp_id, args.tag, args.count,
                              httpx.URL(args.url).netloc.decode("ascii"))
    print("ready", flush=True)
    wait_for_go()
    cpu_before = cpu_seconds()
    tally = _run(run_phase(args, requests))
    result = {
        "sent": len(tally.latencies),
        "accepted": tally.accepted,
        "statuses": dict(tally.statuses),
        "elapsed": tally.last_end - tally.first_start,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "latencies": tally.latencies,
    }
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    print("done", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="server base URL")
    parser.add_argument("--out", required=True, help="file for the JSON result")
    parser.add_argument("--tag", required=True, help="UserID prefix, unique per process+phase")
    parser.add_argument("--count", type=int, required=True, help="requests to pre-build")
    parser.add_argument("--concurrency", type=int, default=64, help="max open connections")
    parser.add_argument("--duration", type=float, default=10.0, help="closed loop: time cap")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: requests/s (0 = closed loop)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="HTTP client: raw asyncio streams or httpx.AsyncClient")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
