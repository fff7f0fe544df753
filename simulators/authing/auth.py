"""Management tokens: ``get-management-token`` issues an HS256 JWT carrying
``scoped_userpool_id``; every other call must present it with a matching
``x-authing-userpool-id`` header (reference §1.3). Standard library only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import USERPOOL_NOT_FOUND, unauthorized


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and checks tokens for one pool. ``ttl`` seconds (7200 as Authing; short in tests)."""

    def __init__(self, userpool_id: str, secret: str, *, ttl: int = 7200,
                 signing_key: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.userpool_id = userpool_id
        self._secret = secret
        self.ttl = ttl
        self._key = signing_key or secrets.token_bytes(32)
        self._clock = clock
        self.issued = 0

    def issue(self, access_key_id: Any, access_key_secret: Any) -> dict[str, Any]:
        if access_key_id != self.userpool_id:
            raise unauthorized(f"用户池不存在 (unknown accessKeyId: {access_key_id})",
                               USERPOOL_NOT_FOUND)
        if not isinstance(access_key_secret, str) or not hmac.compare_digest(
                access_key_secret.encode(), self._secret.encode()):
            raise unauthorized("accessKeySecret 错误 (invalid accessKeySecret)")
        now = int(self._clock())
        payload = {"scoped_userpool_id": self.userpool_id, "iat": now, "exp": now + self.ttl,
                   "jti": secrets.token_hex(8), "type": "management"}
        self.issued += 1
        return {"access_token": self.sign(payload), "expires_in": self.ttl}

    def sign(self, payload: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise a 401 ApiError unless the request carries a valid token for this pool."""
        auth = headers.get("authorization", "")
        if not auth:
            raise unauthorized("authorization header is missing")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("authorization header must be 'Bearer <access_token>'")
        payload = self._verify(token.strip())
        if payload.get("exp", 0) <= self._clock():
            raise unauthorized("access_token expired; call get-management-token again")
        pool = headers.get("x-authing-userpool-id")
        if not pool:
            raise unauthorized("x-authing-userpool-id header is missing")
        if pool != payload.get("scoped_userpool_id") or pool != self.userpool_id:
            raise unauthorized("x-authing-userpool-id does not match the access_token's pool")

    def _verify(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise unauthorized("invalid access_token")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(),
                            hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, _unb64(parts[2]))
            payload = json.loads(_unb64(parts[1])) if valid else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise unauthorized("invalid access_token")
        return payload
