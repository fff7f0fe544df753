"""Build the WeCom and Authing clients (the remotes) from settings: one httpx.AsyncClient
per remote."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from sync_core.authing.client import AuthingClient
from sync_core.http.retry import CallObserver
from sync_core.http.transport import AiohttpTransport
from sync_core.settings import Settings
from sync_core.wecom.client import WeComClient


@dataclass
class Remotes:
    wecom: WeComClient
    authing: AuthingClient
    _clients: tuple[httpx.AsyncClient, ...]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def build_remotes(settings: Settings, *, observer: CallObserver | None = None,
                  dry_run: bool = False, need_wecom: bool = True) -> Remotes:
    """Requires the contact secret and the Authing key pair (SettingsError names the
    first one missing). ``need_wecom=False`` (a run from an exported address book alone)
    requires only Authing's: WeCom is then not called (``Settings.wecom_readable``)."""
    needed = ("wecom_corp_id", "wecom_contact_secret") if need_wecom else ()
    settings.require(*needed, "authing_access_key_id", "authing_access_key_secret")
    assert settings.authing_access_key_secret
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    wecom_http = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    authing_http = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    common = {"timeout": settings.http_timeout_seconds,
              "retry_attempts": settings.retry_attempts,
              "retry_total_seconds": settings.retry_total_seconds,
              "observer": observer, "dry_run": dry_run}
    secret = settings.wecom_contact_secret or SecretStr("")
    wecom = WeComClient(wecom_http, settings.wecom_corp_id or "", secret,
                        base_url=settings.wecom_api_base,
                        max_concurrency=settings.wecom_max_concurrency,
                        rate_per_minute=settings.wecom_rate_per_minute, **common)  # type: ignore[arg-type]
    authing = AuthingClient(authing_http, settings.authing_access_key_id or "",
                            settings.authing_access_key_secret,
                            organization_code=settings.authing_organization_code,
                            base_url=settings.authing_api_base,
                            max_concurrency=settings.authing_max_concurrency,
                            rate_per_minute=settings.authing_rate_per_minute, **common)  # type: ignore[arg-type]
    return Remotes(wecom, authing, (wecom_http, authing_http))
