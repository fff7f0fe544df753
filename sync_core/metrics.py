"""Prometheus metrics. One registry per app instance, so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.callbacks = Counter(
            "wecom_sync_callbacks_total", "Inbound callbacks by route and outcome.",
            ["route", "outcome"], registry=self.registry)
        self.inbox_stored = Counter(
            "wecom_sync_inbox_stored_total", "Events committed to the inbox.",
            ["source", "entity_kind"], registry=self.registry)
        self.inbox_duplicates = Counter(
            "wecom_sync_inbox_duplicates_total", "Redeliveries recognised and not stored again.",
            ["source"], registry=self.registry)
        self.callback_seconds = Histogram(
            "wecom_sync_callback_seconds", "Time from request to reply on callback routes.",
            ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.inbox_depth = Gauge(
            "wecom_sync_inbox_events", "Inbox rows by status (sampled on scrape).",
            ["status"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
