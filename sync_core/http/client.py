"""What the WeCom and Authing clients share: a cached access token that is refreshed once
when the remote rejects it, the call machinery of ``http_retry``, and the dry-run choke
point. Each client supplies how to fetch a token, attach it, spot a rejected token and
read its envelope.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

import httpx
from pydantic import SecretStr

from sync_core.errors import AuthError, DryRunRejected, PermanentError, RestrictedError
from sync_core.http.retry import CallObserver, Clock, Remote, RetryPolicy, Sleep
from sync_core.http.token import TokenCache, secret_digest


class ClientOptions(TypedDict, total=False):
    """Keyword options both clients accept (see ``TokenAuthClient.__init__``)."""

    base_url: str
    timeout: float | httpx.Timeout
    max_concurrency: int
    rate_per_minute: float | None
    retry_attempts: int
    retry_total_seconds: float
    clock: Clock
    sleep: Sleep
    token_cache: TokenCache | None
    observer: CallObserver | None
    dry_run: bool


class CredentialState:
    """What the upstream last said about our credentials, for readiness without a call.

    ``refused`` holds the reason (already redacted) after a token fetch or a call failed
    with ``AuthError`` (WeCom 40001/40013/41001, a token still rejected after a refresh;
    Authing 401/403 or a refused management token: errors.py); any later call the upstream
    answered with a valid token clears it. ``RestrictedError`` (an IP or permission limit)
    is not a credential fault and leaves it alone. ``checked`` is False until the first
    answer.
    """

    __slots__ = ("checked", "refused")

    def __init__(self) -> None:
        self.checked = False
        self.refused: str | None = None

    def observe(self, error: BaseException | None) -> None:
        if isinstance(error, RestrictedError):
            return
        if isinstance(error, AuthError):
            self.checked, self.refused = True, str(error)
        elif error is None or isinstance(error, PermanentError):
            self.checked, self.refused = True, None


class TokenAuthClient(ABC):
    """Base of an API client whose calls carry a cached access token.

    ``timeout`` applies to every HTTP exchange; ``max_concurrency`` caps exchanges in
    flight; ``rate_per_minute`` (None: unlimited) paces them; ``retry_attempts`` and
    ``retry_total_seconds`` bound retries of transient errors; ``clock`` and ``sleep`` are
    injectable so tests never wait; ``token_cache`` may be shared by clients with the same
    credentials; ``observer`` is told each attempt's outcome; ``dry_run`` refuses writes.
    """

    remote_name: ClassVar[str]
    path_prefix: ClassVar[str]

    def __init__(self, http: httpx.AsyncClient, identity: str, secret: str | SecretStr, *,
                 base_url: str, timeout: float | httpx.Timeout = 10.0,
                 max_concurrency: int = 8, rate_per_minute: float | None = None,
                 retry_attempts: int = 4, retry_total_seconds: float = 120.0,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
                 token_cache: TokenCache | None = None, observer: CallObserver | None = None,
                 dry_run: bool = False) -> None:
        self.dry_run = dry_run
        self.credentials = CredentialState()
        self._secret = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self._base = base_url.rstrip("/") + self.path_prefix
        self._tokens = token_cache if token_cache is not None else TokenCache(clock=clock)
        self._token_key = (self.remote_name, self._base, identity,
                           secret_digest(self._secret))
        self._remote = Remote(
            self.remote_name, http, timeout=timeout, max_concurrency=max_concurrency,
            rate_per_minute=rate_per_minute,
            retry=RetryPolicy(attempts=retry_attempts, total_seconds=retry_total_seconds),
            observer=observer, clock=clock, sleep=sleep)

    @abstractmethod
    async def _fetch_token(self) -> tuple[str, float]:
        """A fresh token and its lifetime in seconds (one observed attempt, not retried)."""

    @abstractmethod
    async def _exchange(self, method: str, endpoint: str, token: str,
                        params: Mapping[str, Any] | None, body: Any) -> httpx.Response:
        """Send one request with ``token`` attached."""

    @abstractmethod
    def _token_rejected(self, endpoint: str, response: httpx.Response) -> bool:
        """Whether the remote refused the token (expired or revoked early)."""

    @abstractmethod
    def _decode(self, endpoint: str, response: httpx.Response) -> Any:
        """The useful part of a successful envelope; raise the mapped error otherwise."""

    async def _token(self) -> str:
        try:
            return await self._tokens.get(self._token_key, self._fetch_token)
        except AuthError as exc:  # incl. a refusal the cache remembers
            self.credentials.observe(exc)
            raise

    async def _request(self, method: str, endpoint: str, *,
                       params: Mapping[str, Any] | None = None, body: Any = None,
                       idempotent: bool = True) -> Any:
        """One API call, retried when transient (see ``Remote.call`` for ``idempotent``).
        A rejected token is replaced once and the request sent again; a second rejection
        is decoded into the remote's auth error."""

        async def attempt() -> Any:
            token = await self._token()
            response = await self._exchange(method, endpoint, token, params, body)
            if self._token_rejected(endpoint, response):
                self._tokens.invalidate(self._token_key, token)
                response = await self._exchange(method, endpoint, await self._token(),
                                                params, body)
            return self._decode(endpoint, response)

        try:
            result = await self._remote.call(endpoint, attempt, idempotent=idempotent)
        except (AuthError, PermanentError) as exc:  # a permanent error was answered
            self.credentials.observe(exc)
            raise
        self.credentials.observe(None)
        return result

    def _refuse_in_dry_run(self, method: str, endpoint: str) -> None:
        """The second guard of a dry run: every write passes here before any I/O."""
        if self.dry_run:
            raise DryRunRejected(f"dry run: refused {method} {endpoint}",
                                 remote=self.remote_name, endpoint=endpoint)
