"""The deployment the apply benchmark drives: three processes on loopback, and how to read them.

- the WeCom simulator (``wecom-sync simulate wecom``): its ``/_admin`` console makes the
  directory changes and pushes the encrypted callbacks;
- ``wecom-sync serve`` (receiver + worker in one process, as deployed), on PostgreSQL or
  SQLite;
- the Authing simulator (``wecom-sync simulate authing``).

Each runs in its own process so that neither simulator's CPU shares the product's
interpreter lock; the numbers are then the product's. Everything started is stopped again,
also on error (``bench.procs.Process``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench.ingest import Database, Keys
from bench.procs import ROOT, Process, free_port

OPS_TOKEN = "bench-ops-token"
CALLBACK_LANES = 8  # callbacks / webhooks each simulator delivers at a time (per entity in order)
USERPOOL, POOL_SECRET, CONTACT_SECRET = "bench-pool", "bench-pool-secret", "bench-contact"


@dataclass(frozen=True)
class Tuning:
    """The service settings the benchmark varies or must lift (see ``bench/README.md``)."""

    worker_concurrency: int = 8
    authing_max_concurrency: int = 8
    wecom_max_concurrency: int = 8
    wecom_rate_per_minute: int = 10000  # the product's ceiling; its default 600 would throttle
    worker_poll_seconds: float = 1.0  # the product's default: callbacks wake the worker anyway
    log_level: str = "INFO"  # the product's default, so per-event log lines are paid for

    def env(self) -> dict[str, str]:
        return {"WECOM_SYNC_WORKER_CONCURRENCY": str(self.worker_concurrency),
                "WECOM_SYNC_AUTHING_MAX_CONCURRENCY": str(self.authing_max_concurrency),
                "WECOM_SYNC_WECOM_MAX_CONCURRENCY": str(self.wecom_max_concurrency),
                "WECOM_SYNC_WECOM_RATE_PER_MINUTE": str(self.wecom_rate_per_minute),
                "WECOM_SYNC_WORKER_POLL_SECONDS": str(self.worker_poll_seconds),
                "WECOM_SYNC_LOG_LEVEL": self.log_level}


# -- reading counters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Calls:
    """Upstream calls per (side, endpoint), split into reads and writes."""

    reads: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)

    def __sub__(self, earlier: Calls) -> Calls:
        return Calls(self.reads - earlier.reads, self.writes - earlier.writes)

    def __add__(self, other: Calls) -> Calls:
        return Calls(self.reads + other.reads, self.writes + other.writes)

    @property
    def total(self) -> int:
        return sum(self.reads.values()) + sum(self.writes.values())

    def side(self, prefix: str) -> Calls:
        return Calls(Counter({k: v for k, v in self.reads.items() if k.startswith(prefix)}),
                     Counter({k: v for k, v in self.writes.items() if k.startswith(prefix)}))


class Simulators:
    """The two simulators' ``/_admin`` consoles, over one keep-alive client."""

    def __init__(self, wecom_url: str, authing_url: str) -> None:
        self.wecom_url, self.authing_url = wecom_url, authing_url
        self.http = httpx.Client(timeout=30)

    def close(self) -> None:
        self.http.close()

    def _wecom(self, method: str, path: str, body: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        response = self.http.request(method, f"{self.wecom_url}/_admin/{path}", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"WeCom admin {method} {path}: {response.status_code} "
                               f"{response.text[:300]}")
        return response.json()  # type: ignore[no-any-return]

    def _authing(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(f"{self.authing_url}/_admin/{path}", json=body or {})
        if response.status_code != 200:
            raise RuntimeError(f"Authing admin {path}: {response.status_code} "
                               f"{response.text[:300]}")
        return response.json()["data"]

    # WeCom admin console: each change is called back to the receiver.
    def create_department(self, dept_id: int, name: str, parent: int = 1) -> None:
        self._wecom("POST", "departments", {"id": dept_id, "name": name, "parentid": parent})

    def create_user(self, userid: str, name: str, department: int, mobile: str) -> None:
        self._wecom("POST", "users", {"userid": userid, "name": name,
                                      "department": [department], "mobile": mobile,
                                      "email": f"{userid}@bench.example.com"})

    def update_user(self, userid: str, name: str) -> None:
        self._wecom("PATCH", f"users/{userid}", {"name": name})

    def set_latency(self, ms: float) -> None:
        self._wecom("PUT", "settings", {"latency_ms": ms})
        self._authing("latency", {"ms": ms})

    def calls(self) -> Calls:
        """Both simulators' call counters, keyed ``wecom:<endpoint>`` / ``authing:<path>``."""
        wecom = self._wecom("GET", "stats")
        authing = self._authing("stats")
        return Calls(_keyed(wecom["reads"], "wecom:") + _keyed(authing["reads"], "authing:"),
                     _keyed(wecom["writes"], "wecom:") + _keyed(authing["writes"], "authing:"))

    def callback_replies(self, after_seq: int) -> tuple[int, list[float]]:
        """(last delivery seq, seconds the service took to answer each callback delivered
        after ``after_seq``): its acknowledgement time under load (WeCom allows 5 s)."""
        deliveries = self._wecom("GET", "deliveries")["deliveries"]
        last, replies = after_seq, []
        for delivery in deliveries:
            last = max(last, int(delivery["seq"]))
            if delivery["seq"] > after_seq and delivery["attempts"]:
                replies.append(float(delivery["attempts"][-1]["elapsed"]))
        return last, replies

    def peak_concurrency(self) -> dict[str, int]:
        return {"wecom": int(self._wecom("GET", "stats")["peak_concurrency"]),
                "authing": int(self._authing("stats")["peakConcurrency"])}


def _keyed(counts: dict[str, int], prefix: str) -> Counter[str]:
    return Counter({prefix + name: int(n) for name, n in counts.items()})


class Receiver:
    """``wecom-sync serve``'s HTTP side: readiness, ops sync, Prometheus counters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30,
                                 headers={"Authorization": f"Bearer {OPS_TOKEN}"})

    def close(self) -> None:
        self.http.close()

    def sync_user(self, userid: str) -> None:
        response = self.http.post(f"{self.url}/ops/sync/users/{userid}")
        if response.status_code != 202:
            raise RuntimeError(f"ops sync {userid}: {response.status_code} {response.text}")

    def scrape(self) -> Scrape:
        """The service's own view of its upstream calls, from ``/metrics``."""
        text = self.http.get(f"{self.url}/metrics").text
        scrape = Scrape()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "wecom_sync_upstream_calls_total":
                    key = f"{labels['upstream']}:{labels['endpoint']}"
                    if labels.get("outcome") not in (None, "ok"):
                        key += f" [{labels['outcome']}]"
                    scrape.calls[key] += int(sample.value)
                elif sample.name == "wecom_sync_upstream_call_seconds_sum":
                    upstream = labels["upstream"]
                    scrape.seconds[upstream] = scrape.seconds.get(upstream, 0.0) + sample.value
                elif sample.name == "wecom_sync_upstream_call_seconds_count":
                    scrape.count[labels["upstream"]] += int(sample.value)
        return scrape


@dataclass(frozen=True)
class Scrape:
    """``wecom_sync_upstream_calls_total`` by ``upstream:endpoint[ [outcome]]`` (the
    product's own count, which also sees retries and failures), and the call-time
    histogram's sum and count per upstream (what a call really took, queueing included)."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    count: Counter[str] = field(default_factory=Counter)

    def __sub__(self, earlier: Scrape) -> Scrape:
        seconds = {k: v - earlier.seconds.get(k, 0.0) for k, v in self.seconds.items()}
        return Scrape(self.calls - earlier.calls, seconds, self.count - earlier.count)

    def mean_ms(self, upstream: str) -> float:
        count = self.count.get(upstream, 0)
        return 1000.0 * self.seconds.get(upstream, 0.0) / count if count else float("nan")


# -- the inbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    source: str
    entity_key: str
    status: str
    received_at: datetime
    processed_at: datetime | None


class Inbox:
    """Read-only SQL on the service's ``inbox_events`` table: the timestamps are its own."""

    _COLUMNS = "id, source, entity_key, status, received_at, processed_at"

    def __init__(self, db: Database) -> None:
        self.db = db
        # One connection for the run: the driver polls every 50 ms, and a new PostgreSQL
        # connection is a new server process, whose cost was charged to the phase.
        self._pg: psycopg.Connection[Any] | None = None

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.db.kind == "sqlite":
            with sqlite3.connect(self.db.url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(self.db.pg_dsn, autocommit=True)
            self._pg.execute(f'SET search_path TO "{self.db.schema}"')
        return self._pg.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()

    def max_id(self) -> int:
        rows = self._query("SELECT coalesce(max(id), 0) FROM inbox_events", ())
        return int(rows[0][0])

    def progress(self, after_id: int) -> tuple[int, int]:
        """(rows after ``after_id``, of which settled: done or dead)."""
        rows = self._query("SELECT count(*), coalesce(sum(CASE WHEN status IN ('done', 'dead')"
                           " THEN 1 ELSE 0 END), 0) FROM inbox_events WHERE id > %s",
                           (after_id,))
        return int(rows[0][0]), int(rows[0][1])

    def rows(self, after_id: int) -> list[Row]:
        found = self._query(f"SELECT {self._COLUMNS} FROM inbox_events WHERE id > %s "
                            "ORDER BY id", (after_id,))
        return [Row(int(r[0]), r[1], r[2], r[3], _when(r[4]), _when(r[5]) if r[5] else None)
                for r in found]


def _when(value: Any) -> datetime:
    """PostgreSQL gives datetimes, SQLite ISO strings; both are UTC."""
    if isinstance(value, datetime):
        return value
    from datetime import UTC

    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- processes ----------------------------------------------------------------------------


@dataclass
class Stack:
    sims: Simulators
    receiver: Receiver
    inbox: Inbox
    processes: dict[str, Process]

    def cpu_seconds(self) -> dict[str, float]:
        return {name: proc.cpu_seconds() for name, proc in self.processes.items()}

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if not proc.alive():
                raise RuntimeError(f"{name} exited; log:\n{proc.log_tail()}")


def wecom_sync_exe() -> str:
    script = Path(sys.executable).with_name("wecom-sync")
    exe = str(script) if script.exists() else shutil.which("wecom-sync")
    if not exe:
        raise SystemExit("wecom-sync console script not found; pip install -e . first")
    return exe


@contextmanager
def running_stack(*, keys: Keys, db: Database, tuning: Tuning, latency_ms: float,
                  workdir: Path, service_env: Mapping[str, str] | None = None
                  ) -> Iterator[Stack]:
    """Start the simulators and the service, wait until the worker has bootstrapped.
    ``service_env``: more settings for the service (the downstream run's direction)."""
    exe = wecom_sync_exe()
    ports = {name: free_port() for name in ("wecom", "authing", "receiver")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = {
        "wecom": [exe, "simulate", "wecom", "--port", str(ports["wecom"]),
                  "--corp-id", keys.corp_id, "--contact-secret", CONTACT_SECRET,
                  "--callback-url", f"{urls['receiver']}/wecom/callback",
                  "--callback-token", keys.token, "--encoding-aes-key", keys.aes_key,
                  "--latency-ms", str(latency_ms), "--callback-lanes", str(CALLBACK_LANES)],
        "authing": [exe, "simulate", "authing", "--port", str(ports["authing"]),
                    "--userpool-id", USERPOOL, "--secret", POOL_SECRET,
                    "--latency-ms", str(latency_ms), "--log-level", "warning",
                    "--webhook-lanes", str(CALLBACK_LANES)],
        "receiver": [exe, "serve"],
    }
    service_env = {**env, **keys.env(), **tuning.env(),
                   "WECOM_SYNC_HOST": "127.0.0.1", "WECOM_SYNC_PORT": str(ports["receiver"]),
                   "WECOM_SYNC_DATABASE_URL": db.url, "WECOM_SYNC_OPS_TOKEN": OPS_TOKEN,
                   "WECOM_SYNC_WECOM_API_BASE": urls["wecom"],
                   "WECOM_SYNC_WECOM_CONTACT_SECRET": CONTACT_SECRET,
                   "WECOM_SYNC_AUTHING_API_BASE": urls["authing"],
                   "WECOM_SYNC_AUTHING_ACCESS_KEY_ID": USERPOOL,
                   "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET": POOL_SECRET,
                   "WECOM_SYNC_UPSTREAM_RECONCILE_CRON": "",
                   "WECOM_SYNC_DOWNSTREAM_RECONCILE_CRON": "", **(service_env or {})}
    with ExitStack() as stack:
        processes: dict[str, Process] = {}
        for name in ("wecom", "authing", "receiver"):
            proc = Process(argv[name], env=service_env if name == "receiver" else env,
                           cwd=workdir, log=workdir / f"{name}.log")
            stack.callback(proc.stop)
            processes[name] = proc.start()
        sims = Simulators(urls["wecom"], urls["authing"])
        stack.callback(sims.close)
        receiver = Receiver(urls["receiver"])
        stack.callback(receiver.close)
        _wait_ready(processes, {"wecom": f"{urls['wecom']}/_admin/state",
                                "authing": f"{urls['authing']}/_admin/health",
                                "receiver": f"{urls['receiver']}/readyz"})
        inbox = Inbox(db)
        stack.callback(inbox.close)
        result = Stack(sims, receiver, inbox, processes)
        _wait_bootstrapped(result)
        yield result


def _wait_ready(processes: dict[str, Process], probes: dict[str, str],
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for name, url in probes.items():
        while True:
            if not processes[name].alive():
                raise RuntimeError(f"{name} exited during startup; log:\n"
                                   f"{processes[name].log_tail()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {timeout:g} s; log:\n"
                                   f"{processes[name].log_tail()}")
            time.sleep(0.1)


def _wait_bootstrapped(stack: Stack, timeout: float = 30.0) -> None:
    """The worker's bootstrap (organization, custom fields) has written to Authing."""
    deadline = time.monotonic() + timeout
    while not stack.sims.calls().writes.get("authing:set-custom-fields"):
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not bootstrap Authing in time; log:\n"
                               + stack.processes["receiver"].log_tail())
        time.sleep(0.2)
