"""Logging setup. Secrets never reach a log line: every handler redacts (``errors.redact``)
and httpx's per-request INFO lines, which carry ``access_token=``, are silenced."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from .errors import RedactingFilter


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging at ``level`` (a validated name), as text lines or one JSON object a
    line (``fmt="json"``: time, level, logger, message, exception)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


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
