"""Errors the API clients raise, and the tables that map remote codes onto them.

Foreign failures (httpx exceptions, WeCom ``errcode``, Authing ``statusCode``/``apiCode``)
are translated once, where they enter, into this tree and chained with ``from exc``::

    SyncError                      anything the sync could not do against a remote
    ├── TransientError             the same call may succeed later (retry_after: seconds|None;
    │                              maybe_applied: False only when surely not acted upon)
    │                              network errors, timeouts, HTTP 5xx/429, WeCom -1/45009/45033,
    │                              Authing statusCode 5xx/429/1000
    ├── PermanentError             repeating the same call will fail the same way (WeCom 60011:
    │   │                          outside the app's scope — deliberately not "not found")
    │   ├── NotFoundError          the addressed entity does not exist (WeCom 60111/60003/60123,
    │   │                          Authing 404)
    │   ├── ConflictError          the entity, or a unique attribute, already exists
    │   │                          (WeCom 60102/60104/60106/60008, Authing uniqueness)
    │   └── BadRequestError        the request itself is invalid (all other 4xx-ish codes,
    │       │                      and WeCom's errcode 0 "Warning: wrong json format")
    │       └── UnfitError         a value WeCom allows exceeds what Authing takes; raised
    │                              by no client: the planner says so before any call
    └── StopSync                   no further call can succeed: abort the run
        ├── AuthError              credentials wrong or refused (WeCom 40001/40013/41001,
        │   │                      token still rejected after one refresh; Authing 401/403)
        │   └── RestrictedError    credentials fine, but this IP or app may not make the
        │                          call (WeCom 48002/48009/60020); the worker falls back to
        │                          event fields for a cool-down
        └── DryRunRejected         a write was attempted by a client in dry-run mode

Only ``StopSync`` aborts a run; the executor records the others per object. Every message
passes through ``redact`` so that tokens and secrets never reach a log line or a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

_SECRET_QUERY = re.compile(
    r"(?i)\b(access_token|corpsecret|accesskeysecret|access_key_secret|secret|token)=[^&\s\"'#]*"
)
_SECRET_JSON = re.compile(
    r"(?i)(\"(?:access_token|corpsecret|accessKeySecret|access_key_secret|secret|token)\""
    r"\s*:\s*)\"[^\"]*\""
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact(text: str, *secrets: str) -> str:
    """Mask credentials in ``text``: query parameters, JSON fields, bearer tokens, JWTs,
    and any literal value in ``secrets``.

    ``redact("GET /cgi-bin/gettoken?corpid=w1&corpsecret=abc")``
    → ``"GET /cgi-bin/gettoken?corpid=w1&corpsecret=***"``
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)
    text = _SECRET_JSON.sub(lambda m: f'{m.group(1)}"***"', text)
    text = _BEARER.sub("Bearer ***", text)
    return _JWT.sub("***", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's rendered message through ``redact`` (httpx logs full URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rendered = record.getMessage()
        cleaned = redact(rendered)
        if cleaned != rendered:
            record.msg, record.args = cleaned, ()
        return True


_LOG_FILTER = RedactingFilter()


def install_log_redaction(*logger_names: str) -> None:
    """Attach the redacting filter to loggers that print request URLs; idempotent.

    Called by the clients when they are built, because httpx logs every request URL at
    INFO, and WeCom puts ``access_token``/``corpsecret`` in the query string.
    """
    for name in logger_names or ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


class SyncError(Exception):
    """Base of every error the remote clients raise.

    ``code`` is WeCom's errcode, or Authing's apiCode when present and its statusCode
    otherwise; ``status`` is Authing's body statusCode; ``request_id`` is Authing's.
    """

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, code: int | str | None = None,
                 status: int | None = None, request_id: str | None = None,
                 remote: str | None = None, endpoint: str | None = None) -> None:
        self.message = redact(message)
        self.code = code
        self.status = status
        self.request_id = request_id
        self.remote = remote
        self.endpoint = endpoint
        super().__init__(self.message)

    def __str__(self) -> str:
        where = " ".join(part for part in (self.remote, self.endpoint) if part)
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request {self.request_id}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{where}: {self.message}{suffix}" if where else f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
                f"remote={self.remote!r}, endpoint={self.endpoint!r}, "
                f"request_id={self.request_id!r})")


class TransientError(SyncError):
    """The call may succeed if repeated later; ``retry_after`` is the remote's hint.

    ``maybe_applied`` is False only when the remote surely did not act on the request
    (connection refused, throttled): only then may a non-idempotent create be resent
    blindly. Otherwise the caller re-reads the target and plans again.
    """

    kind = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None,
                 maybe_applied: bool = True, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


class ChangedMeanwhile(TransientError):
    """A write refused before it was sent: the opposite direction wrote the entity after
    it was read, or holds a change of it (``engine.echo``). What was read may be that
    write half done: read again, never resend."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message, retry_after=1.0, maybe_applied=False, **context)


class PermanentError(SyncError):
    """Repeating the same call will fail the same way; fix the data or the plan."""

    kind = "permanent"


class NotFoundError(PermanentError):
    """The addressed user or department does not exist (or is out of the app's scope)."""

    kind = "not_found"


class MissingDepartment(NotFoundError):
    """An operation needs WeCom departments that have no Authing id (``departments``)."""

    kind = "missing_department"

    def __init__(self, message: str, *, departments: tuple[str, ...] = (),
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.departments = departments


class WaitingForDependency(TransientError):
    """What an entity depends on is not in the target yet, but not known to be gone either
    (its create is still retrying, or its callback was lost): retried with backoff for as
    long as it takes, never given up after a number of attempts."""

    kind = "waiting"


class ConflictError(PermanentError):
    """A create collided with an existing entity or unique attribute: switch to update."""

    kind = "conflict"


class BadRequestError(PermanentError):
    """The remote refused the request as invalid, or may have silently ignored it."""

    kind = "bad_request"


class UnfitError(BadRequestError):
    """A value WeCom allows does not fit any Authing call (too long, too many): it is left
    out, the rest of the entity is written, and the item fails with this reason."""

    kind = "unfit"


class StopSync(SyncError):
    """Nothing further can succeed with this configuration: the run aborts."""

    kind = "stop"


class AuthError(StopSync):
    """Credentials are wrong or refused, even after one token refresh."""

    kind = "auth"


class RestrictedError(AuthError):
    """The credentials are valid but this IP or app may not make the call (new egress IPs
    after 2022-08-15, untrusted IP, missing permission). Reads fall back to event fields."""

    kind = "restricted"


class DryRunRejected(StopSync):
    """A write reached a client built with ``dry_run=True``: the plan should not apply."""

    kind = "dry_run"


# -- WeCom errcode table (reference/wecom-platform.md §3.4, §3.5) --------------------------

WECOM_TOKEN_EXPIRED = frozenset({40014, 42001})
"""Token invalid or expired: refresh once and repeat the call, then treat as AuthError."""

# 45009: "按分钟拦截则被屏蔽60秒" — the ban lasts the window, so wait at least that.
WECOM_RATE_LIMIT_BAN_SECONDS = 60.0
# errcode: (retry_after, maybe_applied). Throttled calls were refused before any work;
# "系统繁忙" says nothing about whether the write happened.
_WECOM_TRANSIENT: dict[int, tuple[float | None, bool]] = {
    -1: (None, True), 45009: (WECOM_RATE_LIMIT_BAN_SECONDS, False), 45033: (1.0, False)}
_WECOM_CLASSES: dict[int, type[SyncError]] = {
    60111: NotFoundError, 60003: NotFoundError,
    # "invalid party id": what department/get answers for a department that is gone.
    60123: NotFoundError,
    60102: ConflictError, 60104: ConflictError, 60106: ConflictError, 60008: ConflictError,
    40001: AuthError, 40013: AuthError, 41001: AuthError, 40014: AuthError, 42001: AuthError,
    48002: RestrictedError, 48009: RestrictedError, 60020: RestrictedError,
    # "指定的成员/部门/标签参数无权限": outside the app's scope. Not NotFoundError, which
    # would read as "deleted" and could turn a scope change into mass deletes.
    60011: PermanentError,
}


def from_wecom(errcode: int, errmsg: str, *, endpoint: str | None = None) -> SyncError:
    """The error for a WeCom envelope with ``errcode != 0``; unknown codes are bad requests.

    ``from_wecom(60111, "userid not found")`` → ``NotFoundError`` with ``code=60111``.
    """
    context: dict[str, Any] = {"code": errcode, "remote": "wecom", "endpoint": endpoint}
    if errcode in _WECOM_TRANSIENT:
        retry_after, maybe_applied = _WECOM_TRANSIENT[errcode]
        return TransientError(errmsg, retry_after=retry_after, maybe_applied=maybe_applied,
                              **context)
    return _WECOM_CLASSES.get(errcode, BadRequestError)(errmsg, **context)


# -- Authing statusCode/apiCode table (reference/authing-api.md §1.5, §3) ------------------

# v2 apiCodes that the v3 server is known to reuse (reference §3); the message patterns
# catch uniqueness errors whose apiCode is undocumented.
_AUTHING_CONFLICT_API_CODES = frozenset({2026, 2034, 2035, 2200})
_AUTHING_NOT_FOUND_API_CODES = frozenset({2004})
_AUTHING_BUSY_API_CODE = 1000
_AUTHING_CONFLICT_TEXT = re.compile(
    r"(?i)already exists?|duplicate|unique|已存在|已被(?:绑定|占用|使用)|重复")


def from_authing(status: int, message: str, *, api_code: int | str | None = None,
                 request_id: str | None = None, endpoint: str | None = None,
                 retry_after: float | None = None) -> SyncError:
    """The error for an Authing envelope whose body ``statusCode`` is not 200.

    ``from_authing(400, "用户已存在", api_code=2026)`` → ``ConflictError``.
    """
    context: dict[str, Any] = {
        "code": api_code if api_code is not None else status, "status": status,
        "request_id": request_id, "remote": "authing", "endpoint": endpoint}
    if status == 429 or status >= 500 or status == _AUTHING_BUSY_API_CODE \
            or api_code == _AUTHING_BUSY_API_CODE:
        return TransientError(message, retry_after=retry_after,
                              maybe_applied=status != 429, **context)
    if status in (401, 403):
        return AuthError(message, **context)
    if status == 404 or api_code in _AUTHING_NOT_FOUND_API_CODES:
        return NotFoundError(message, **context)
    if status == 409 or api_code in _AUTHING_CONFLICT_API_CODES \
            or _AUTHING_CONFLICT_TEXT.search(message or ""):
        return ConflictError(message, **context)
    return BadRequestError(message, **context)
