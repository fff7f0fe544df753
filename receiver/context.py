"""What the routes share: built once in the app factory, kept on ``app.state.ctx``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine
from starlette.requests import Request

from sync_core.logs import LogThrottle
from sync_core.metrics import Metrics
from sync_core.settings import Settings
from sync_core.store.writer import InboxWriter
from sync_core.wecom.crypto import WeComCrypto


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    writer: InboxWriter
    metrics: Metrics
    crypto: WeComCrypto | None
    # Set when a new event is stored, so an in-process worker picks it up at once.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # One line a minute per recurring failure (an outage, a wrong callback Token).
    throttle: LogThrottle = field(
        default_factory=lambda: LogThrottle(logging.getLogger("wecom_sync.receiver")))


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
