"""Logging setup. Secrets never reach a log line: every handler redacts (``errors.redact``)
and httpx's per-request INFO lines, which carry ``access_token=``, are silenced.

Lines about one event, run or entity carry its ids: code that works on one binds them
(``with bind(run_id=7): ...``) in a context variable, which asyncio tasks and
``asyncio.to_thread`` inherit, and ``ContextFilter`` puts them on every record (JSON:
``event_id``, ``run_id``, ``entity`` keys; text: a ``[run_id=7]`` suffix).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from sync_core.errors import RedactingFilter

CONTEXT_KEYS = ("event_id", "run_id", "entity")
_context: contextvars.ContextVar[tuple[tuple[str, object], ...]] = contextvars.ContextVar(
    "wecom_sync_log_context", default=())


@contextlib.contextmanager
def bind(**values: object) -> Iterator[None]:
    """Add ``event_id``, ``run_id`` or ``entity`` (``"user:zhangsan"``) to every line
    logged inside the block, in this task and those it starts."""
    merged = {**dict(_context.get()), **{k: v for k, v in values.items() if v is not None}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto the record (an ``extra=`` given to the call wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = dict(_context.get())
        for key in CONTEXT_KEYS:
            if key in bound and not hasattr(record, key):
                setattr(record, key, bound[key])
        record.context = "".join(f" [{k}={getattr(record, k)}]" for k in CONTEXT_KEYS
                                 if getattr(record, k, None) is not None)
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging at ``level`` (a validated name), as text lines or one JSON object a
    line (``fmt="json"``: time, level, logger, message, exception, and the bound ids)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Alembic's "Context impl …" lines on every command: shown only at DEBUG.
    logging.getLogger("alembic").setLevel(
        logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)


class JsonFormatter(_JsonFormatter):
    """One JSON object a line (python-json-logger): ``time``, ``level``, ``logger``,
    ``message``, ``exception`` when there is one, and ``event_id`` / ``run_id`` /
    ``entity`` when bound. Chinese stays readable (no ASCII escapes)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger", "exc_info": "exception"},
                         json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, object], record: logging.LogRecord,
                   message_dict: dict[str, object]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("context", None)  # the text format's suffix


class LogThrottle:
    """At most one line per key every ``interval`` seconds while a condition lasts (a
    database outage, a wrong callback Token): the next line says how many were folded in.

    ``throttle.log(logging.ERROR, "database", "database unavailable: %s", reason)`` → True
    when the line was written, False when it was folded into the next one.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()  # the store is reached from worker threads too
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, message: str, *args: object,
            exc_info: BaseException | None = None) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self._interval:
                self._last[key] = (last[0], last[1] + 1)
                return False
            self._last[key] = (now, 0)
        folded = last[1] if last is not None else 0
        if folded:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, folded, now - last[0])  # type: ignore[index]
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True
