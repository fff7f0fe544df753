"""Service settings: one object, built by the caller and passed down.

Read from ``WECOM_SYNC_*`` environment variables and a ``.env`` file in the working
directory. Nothing is read at import time; ``load_settings()`` is called by the CLI or a
test and its errors are turned into one line naming the offending variable.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "WECOM_SYNC_"
_AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")


class DirectionSetting(StrEnum):
    """Which directions a service runs (``WECOM_SYNC_DIRECTION``); one direction is a
    ``directory.vocabulary.Direction``."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


class UserDeletePolicy(StrEnum):
    RESIGN = "resign"
    SUSPEND = "suspend"
    DELETE = "delete"
    IGNORE = "ignore"


class DownstreamUpdatePolicy(StrEnum):
    NONE = "none"
    OVERWRITE = "overwrite"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class SettingsError(Exception):
    """A setting is missing or invalid; ``str()`` is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    database_url: str = "sqlite:///./wecom-sync.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    wecom_corp_id: str | None = None
    wecom_callback_token: SecretStr | None = None
    wecom_encoding_aes_key: SecretStr | None = None
    wecom_contact_secret: SecretStr | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # POSTed callbacks whose timestamp is further than this from our clock are refused
    # (replay guard). URL verification (GET) is exempt: replaying it reveals nothing new.
    wecom_callback_max_age_seconds: int = Field(default=300, ge=1)
    callback_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    authing_api_base: str = "https://api.authing.cn"
    authing_access_key_id: str | None = None
    authing_access_key_secret: SecretStr | None = None
    authing_organization_code: str = "wecom"
    authing_webhook_secret: SecretStr | None = None

    ops_token: SecretStr | None = None

    direction: DirectionSetting = DirectionSetting.UPSTREAM
    user_delete_policy: UserDeletePolicy = UserDeletePolicy.RESIGN
    delete_threshold_percent: float = Field(default=20, ge=0, le=100)
    delete_threshold_count: int = Field(default=100, ge=0)
    upstream_reconcile_cron: str = "0 3 */2 * *"
    downstream_reconcile_cron: str = "0 6 * * *"
    downstream_update_policy: DownstreamUpdatePolicy = DownstreamUpdatePolicy.OVERWRITE
    downstream_ignore_fields: Annotated[tuple[str, ...], NoDecode] = ()

    # Inbox group commit: how many events one transaction may carry, and how long the
    # writer waits for company before committing a lone event.
    inbox_batch_max: int = Field(default=256, ge=1, le=5000)
    inbox_batch_linger_ms: float = Field(default=0.0, ge=0, le=100)

    # Ownership: an Authing user that matches by email/phone/username but has no
    # externalId is only taken over when this is true.
    adopt_existing: bool = False
    # Authing needs one of username/phone/email; trimmed WeCom data often has neither.
    username_source: str = Field(default="userid", pattern="^(userid|alias|none)$")

    # Upstream clients (timeouts, caps, retries). WeCom's documented limit is 10k/min per
    # API per corp; every user event re-reads user/get, so the pace caps incremental sync.
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    wecom_max_concurrency: int = Field(default=8, ge=1, le=256)
    wecom_rate_per_minute: float = Field(default=6000, gt=0, le=10000)
    authing_max_concurrency: int = Field(default=8, ge=1, le=256)
    authing_rate_per_minute: float | None = Field(default=None, gt=0)
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_total_seconds: float = Field(default=120.0, gt=0)

    # Worker: how many entities at once, when to give up, how long a claim lasts.
    worker_concurrency: int = Field(default=16, ge=1, le=256)
    worker_max_attempts: int = Field(default=8, ge=1, le=100)
    worker_lease_seconds: float = Field(default=120.0, ge=5)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_backoff_cap_seconds: float = Field(default=300.0, ge=1)
    # Transient failures (an upstream outage: 5xx, 429, timeouts, refused connections) spend
    # time, not attempts: an entity, or a reconcile run, rides them out for this long from
    # the first one before giving up. WeCom and Authing outages last minutes to hours.
    retry_window_hours: float = Field(default=6.0, gt=0, le=24 * 14)
    # After WeCom refuses a read (48009/60020/48002), events are applied from their own
    # fields for this long before the API is tried again.
    restricted_cooldown_seconds: float = Field(default=600.0, ge=0)

    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a SQLAlchemy database URL") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {url.get_backend_name()!r}; "
                             "use sqlite:///path or postgresql://...")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("wecom_api_base", "authing_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()

    @field_validator("wecom_encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if not _AES_KEY_RE.fullmatch(raw):
            raise ValueError("must be exactly 43 characters from a-z, A-Z, 0-9")
        try:
            decoded = base64.b64decode(raw + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("is not valid base64") from exc
        if len(decoded) != 32:
            raise ValueError("must decode to a 32-byte AES key")
        return value

    @field_validator("downstream_ignore_fields", mode="before")
    @classmethod
    def _split_fields(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("upstream_reconcile_cron", "downstream_reconcile_cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        value = value.strip()
        if value:
            from croniter import croniter

            if not croniter.is_valid(value):
                raise ValueError("is not a valid 5-field cron expression")
        return value

    # -- derived views -------------------------------------------------------------

    @property
    def wecom_readable(self) -> bool:
        """The contacts API can be called at all (corp id and contact secret set)."""
        return not (_unset(self.wecom_corp_id) or _unset(self.wecom_contact_secret))

    @property
    def callback_configured(self) -> bool:
        return bool(self.wecom_corp_id and self.wecom_callback_token
                    and self.wecom_encoding_aes_key)

    def require(self, *names: str) -> None:
        """Raise SettingsError naming every one of ``names`` that is unset, in one line."""
        missing = [f"{ENV_PREFIX}{name.upper()}" for name in names
                   if _unset(getattr(self, name))]
        if len(missing) == 1:
            raise SettingsError(f"{missing[0]} is required but not set")
        if missing:
            raise SettingsError(f"{', '.join(missing)} are required but not set")


def _unset(value: Any) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; every invalid one is named in one
    SettingsError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_error_line(exc)) from None


def _error_line(exc: ValidationError) -> str:
    """``invalid setting WECOM_SYNC_PORT: …; WECOM_SYNC_LOG_LEVEL: …``. The input value is
    never echoed: it may be a secret."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{ENV_PREFIX}{field.upper()}: {message}")
    return f"invalid setting{'s' if len(parts) > 1 else ''} {'; '.join(parts)}"
