"""Secrets and access tokens (reference §3.1).

The corp has one contact-sync secret (通讯录同步: read and write, the only one list_id
accepts) and any number of app secrets (read-only here). Tokens are cached per
(corpid, secret): asking again while one is valid returns the same token with a renewed
lifetime; an expired token answers 42001 and an unknown or revoked one 40014.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from . import errors
from .errors import ApiError

DEFAULT_TTL = 7200.0


class Role(StrEnum):
    CONTACT = "contact"  # 通讯录同步 secret
    APP = "app"  # a self-built app's secret


@dataclass(slots=True)
class Grant:
    token: str
    role: Role
    secret: str
    expires_at: float


class TokenStore:
    def __init__(self, corp_id: str, contact_secret: str, app_secrets: Iterable[str] = (),
                 *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.corp_id = corp_id
        self.ttl = ttl
        self._clock = clock
        self._roles = {secret: Role.APP for secret in app_secrets}
        self._roles[contact_secret] = Role.CONTACT
        self._lock = threading.Lock()
        self._by_secret: dict[str, Grant] = {}
        self._by_token: dict[str, Grant] = {}
        self.issued = 0

    def __repr__(self) -> str:  # never show secrets or tokens
        return f"TokenStore(corp_id={self.corp_id!r}, ttl={self.ttl})"

    def add_app_secret(self, secret: str) -> None:
        with self._lock:
            self._roles.setdefault(secret, Role.APP)

    def issue(self, corp_id: str | None, secret: str | None) -> Grant:
        """gettoken: check the corpid first, then the secret."""
        if not corp_id:
            raise ApiError(errors.MISSING_CORPID)
        if corp_id != self.corp_id:
            raise ApiError(errors.INVALID_CORPID)
        if not secret:
            raise ApiError(errors.MISSING_SECRET)
        role = self._roles.get(secret)
        if role is None:
            raise ApiError(errors.INVALID_SECRET)
        with self._lock:
            now = self._clock()
            grant = self._by_secret.get(secret)
            if grant is None or grant.expires_at <= now:
                # The old token stays known, so it keeps answering 42001 (expired).
                grant = Grant(_new_token(), role, secret, now + self.ttl)
                self._by_secret[secret] = grant
                self._by_token[grant.token] = grant
                self.issued += 1
            else:
                grant.expires_at = now + self.ttl
            return grant

    def check(self, token: str | None) -> Grant:
        if not token:
            raise ApiError(errors.MISSING_TOKEN)
        with self._lock:
            grant = self._by_token.get(token)
            if grant is None:
                raise ApiError(errors.INVALID_TOKEN)
            if grant.expires_at <= self._clock():
                raise ApiError(errors.TOKEN_EXPIRED)
            return grant

    def expire_all(self) -> None:
        """Let every token run out now: the next call answers 42001."""
        with self._lock:
            now = self._clock()
            for grant in self._by_token.values():
                grant.expires_at = now

    def revoke_all(self) -> None:
        """WeCom "may invalidate a token early": the next call answers 40014."""
        with self._lock:
            self._by_secret.clear()
            self._by_token.clear()


def _new_token() -> str:
    # Real tokens are opaque and up to 512 bytes; ~100 characters keeps logs readable.
    return secrets.token_urlsafe(75)
