"""``WeComSimulator``: one simulated corp, its HTTP app, and the knobs tests turn.

    with WeComSimulator(corp_id="wwtest", contact_secret="s3cret") as sim:
        sim.set_callback(receiver_url, token=..., encoding_aes_key=...)
        sim.admin.create_user("zhangsan", "张三", [1], mobile="13800000000")
        sim.pusher.flush()
        httpx.get(sim.url + "/cgi-bin/gettoken", params={...})

Everything is built in the constructor and nothing at import time; ``start()`` serves the
app on a free loopback port in a background thread (``simulators.server``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette

from simulators.faults import Fault, FaultPlan
from simulators.server import BackgroundServer

from .admin import Admin
from .admin_routes import admin_routes
from .api import ApiSwitches, ContactsApi
from .guard import CgiGuard, Limits
from .pusher import CallbackConfig, CallbackPusher
from .state import Directory
from .tokens import DEFAULT_TTL, TokenStore

_UNSET: Any = object()


class WeComSimulator:
    """One corp. ``state`` is the directory, ``admin`` the console (its changes are called
    back), ``pusher`` the callback queue, ``faults``/``limits``/``tokens`` the knobs.

    Defaults match WeCom: 7200 s tokens, 5 s callback timeout, 3 attempts, full payloads,
    no restrictions, no limits. ``seed_users``/``seed_departments`` load a generated
    directory (``simulators.generate``) at construction, without callbacks.
    """

    def __init__(
        self,
        *,
        corp_id: str = "wwsimulator0001",
        contact_secret: str = "contact-sync-secret",
        app_secrets: Iterable[str] = (),
        corp_name: str = "示例科技",
        token_ttl: float = DEFAULT_TTL,
        callback_url: str | None = None,
        callback_token: str | None = None,
        encoding_aes_key: str | None = None,
        trimmed: bool = False,
        callback_timeout: float = 5.0,
        callback_attempts: int = 3,
        callback_retry_delay: float = 0.0,
        callback_lanes: int = 1,
        restricted_reads: bool = False,
        withhold_sensitive: bool = False,
        latency_ms: float = 0.0,
        rate_limit_per_minute: int | None = None,
        concurrency_cap: int | None = None,
        seed_users: int = 0,
        seed_departments: int = 0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.corp_id = corp_id
        self.state = Directory(corp_name)
        self.tokens = TokenStore(corp_id, contact_secret, app_secrets, ttl=token_ttl)
        self.switches = ApiSwitches(restricted_reads, withhold_sensitive)
        self.faults = FaultPlan()
        self.faults.latency = latency_ms / 1000
        self.limits = Limits(rate_limit_per_minute, concurrency_cap)
        self.pusher = CallbackPusher(
            corp_id, CallbackConfig(callback_url, callback_token, encoding_aes_key, trimmed),
            timeout=callback_timeout, attempts=callback_attempts,
            retry_delay=callback_retry_delay, lanes=callback_lanes)
        self.admin = Admin(self.state, self.pusher)
        if seed_users or seed_departments:
            self.admin.seed(users=seed_users, departments=max(seed_departments, 1), seed=seed)
        api = ContactsApi(self.state, self.tokens, self.switches, self.pusher.publish)
        self.app = CgiGuard(Starlette(routes=[*api.routes(), *admin_routes(self)]),
                            self.faults, self.limits)
        self._host, self._port = host, port
        self._server: BackgroundServer | None = None

    def __repr__(self) -> str:
        return f"WeComSimulator(corp_id={self.corp_id!r}, url={self.url if self._server else None})"

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.url

    def start(self) -> WeComSimulator:
        if self._server is None:
            self._server = BackgroundServer(self.app, host=self._host, port=self._port).start()
        return self

    def stop(self) -> None:
        """Stop serving and stop the pusher (callbacks still queued are delivered first)."""
        self.pusher.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> WeComSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs --------------------------------------------------------------------------

    def set_callback(self, url: str | None = None, *, token: str | None = None,
                     encoding_aes_key: str | None = None, trimmed: bool | None = None) -> None:
        """Where admin changes are called back, with which keys, full or trimmed."""
        self.pusher.configure(url=url, token=token, encoding_aes_key=encoding_aes_key,
                              trimmed=trimmed)

    def configure(self, *, restricted_reads: bool = _UNSET, withhold_sensitive: bool = _UNSET,
                  latency_ms: float = _UNSET, rate_limit_per_minute: int | None = _UNSET,
                  concurrency_cap: int | None = _UNSET, token_ttl: float = _UNSET) -> None:
        """Change switches at run time; what is not given stays as it is."""
        if restricted_reads is not _UNSET:
            self.switches.restricted_reads = restricted_reads
        if withhold_sensitive is not _UNSET:
            self.switches.withhold_sensitive = withhold_sensitive
        if latency_ms is not _UNSET:
            self.faults.latency = latency_ms / 1000
        if rate_limit_per_minute is not _UNSET:
            self.limits.set_per_minute(rate_limit_per_minute)
        if concurrency_cap is not _UNSET:
            self.limits.concurrency_cap = concurrency_cap
        if token_ttl is not _UNSET:
            self.tokens.ttl = token_ttl

    def settings(self) -> dict[str, Any]:
        return {
            "restricted_reads": self.switches.restricted_reads,
            "withhold_sensitive": self.switches.withhold_sensitive,
            "latency_ms": self.faults.latency * 1000,
            "rate_limit_per_minute": self.limits.per_minute,
            "concurrency_cap": self.limits.concurrency_cap,
            "token_ttl": self.tokens.ttl,
            "trimmed": self.pusher.config.trimmed,
            "callback_url": self.pusher.config.url,
        }

    def fail_next(self, endpoint: str | None, errcode: int, *, times: int = 1,
                  errmsg: str | None = None, http_status: int = 200) -> None:
        """The next ``times`` calls to ``endpoint`` (``"user/get"``; None: any) answer
        ``errcode`` (e.g. -1 system busy, 45009) or, with ``http_status``, a gateway error."""
        payload: dict[str, Any] = {"errcode": errcode}
        if errmsg is not None:
            payload["errmsg"] = errmsg
        self.faults.arm(Fault("error", times, http_status=http_status, payload=payload,
                              endpoint=endpoint))

    def fail_for(self, seconds: float, endpoint: str | None = None, errcode: int = -1, *,
                 http_status: int = 200) -> None:
        """An outage: for ``seconds``, every call to ``endpoint`` (None: any) answers
        ``errcode`` (-1 system busy by default) or, with ``http_status``, a gateway error."""
        self.faults.outage(Fault("error", 0, http_status=http_status,
                                 payload={"errcode": errcode}, endpoint=endpoint), seconds)

    def hang_next(self, endpoint: str | None, seconds: float, *, times: int = 1) -> None:
        """The next calls wait ``seconds`` before answering (past a client's timeout)."""
        self.faults.arm(Fault("timeout", times, delay=seconds, endpoint=endpoint))

    def drop_next(self, endpoint: str | None, *, times: int = 1) -> None:
        """The next calls get their connection closed without an answer."""
        self.faults.arm(Fault("drop", times, endpoint=endpoint))

    def set_rate_limit(self, per_minute: int | None, endpoint: str | None = None) -> None:
        """45009 past ``per_minute`` calls per endpoint per minute (None: unlimited)."""
        self.limits.set_per_minute(per_minute, endpoint)
