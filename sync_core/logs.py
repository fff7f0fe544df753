"""Logging setup. Secrets never reach a log line: every handler redacts (``errors.redact``)
and httpx's per-request INFO lines, which carry ``access_token=``, are silenced."""

from __future__ import annotations

import logging

from sync_core.errors import RedactingFilter


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
