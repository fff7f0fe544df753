"""A small synchronous client for tests and scripts that talk to the simulator over HTTP.

It does what a correct product client must: fetch a management token, send it with the
``x-authing-userpool-id`` header, and hand back the body envelope (never trusting the HTTP
status alone). It is not the product's client and must not be used as one.
"""

from __future__ import annotations

from typing import Any

import httpx


class ApiClient:
    def __init__(self, base_url: str, userpool_id: str, secret: str, *,
                 timeout: float = 5.0) -> None:
        self.userpool_id, self._secret = userpool_id, secret
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            body = self.http.post("/api/v3/get-management-token", json={
                "accessKeyId": self.userpool_id, "accessKeySecret": self._secret}).json()
            if body["statusCode"] != 200:
                raise RuntimeError(f"token refused: {body}")
            self._token = str(body["data"]["access_token"])
        return self._token

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token()}",
                "x-authing-userpool-id": self.userpool_id}

    def post(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/v3/<name>; answers the envelope."""
        response = self.http.post(f"/api/v3/{name}", json=body or {}, headers=self.headers())
        result: dict[str, Any] = response.json()
        return result

    def get(self, name: str, params: Any = None) -> dict[str, Any]:
        """GET /api/v3/<name>; ``params`` may be a dict or a list of pairs (repeated keys)."""
        response = self.http.get(f"/api/v3/{name}", params=params, headers=self.headers())
        result: dict[str, Any] = response.json()
        return result

    def data(self, method: str, name: str, body: Any = None) -> Any:
        """The ``data`` of a call that must succeed (raises with the envelope otherwise)."""
        envelope = self.post(name, body) if method == "POST" else self.get(name, body)
        if envelope["statusCode"] != 200:
            raise AssertionError(f"{name} failed: {envelope}")
        return envelope["data"]

    def close(self) -> None:
        self.http.close()
