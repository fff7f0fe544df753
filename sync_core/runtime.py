"""Wiring for the sync side of a process: clients, planner policy, upstream sync, worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import Engine

from .mapping import MappingPolicy, UsernameSource
from .metrics import Metrics
from .planner import Policy
from .settings import Settings
from .upstream_sync import ReadCooldown, UpstreamSync
from .upstreams import Upstreams, build_upstreams
from .worker import Worker


def policy_from(settings: Settings) -> Policy:
    return Policy.from_settings(
        settings, adopt_existing=settings.adopt_existing,
        mapping=MappingPolicy(username_source=UsernameSource(settings.username_source)))


@dataclass
class SyncRuntime:
    upstreams: Upstreams
    sync: UpstreamSync
    worker: Worker

    async def aclose(self) -> None:
        await self.upstreams.aclose()


def build_runtime(settings: Settings, engine: Engine, metrics: Metrics, *,
                  wake: asyncio.Event | None = None, dry_run: bool = False) -> SyncRuntime:
    """Raises SettingsError naming the first missing credential."""
    upstreams = build_upstreams(settings, observer=metrics.observe_call, dry_run=dry_run)
    sync = UpstreamSync(
        upstreams.wecom, upstreams.authing, policy_from(settings),
        cooldown=ReadCooldown(settings.restricted_cooldown_seconds),
        on_event_fields=lambda kind: metrics.event_field_fallbacks.labels(kind).inc())
    worker = Worker(settings, engine, sync, metrics, wake=wake)
    return SyncRuntime(upstreams, sync, worker)
