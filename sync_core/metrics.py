"""Prometheus metrics. One registry per app instance, so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, version: str = "") -> None:
        self.registry = CollectorRegistry()
        self.build_info = Gauge(
            "wecom_sync_build_info", "Always 1; the running version as a label.",
            ["version"], registry=self.registry)
        self.build_info.labels(version or "unknown").set(1)
        self.next_reconcile = Gauge(
            "wecom_sync_next_reconcile_timestamp_seconds",
            "When the next scheduled reconcile of a direction fires (Unix time).",
            ["direction"], registry=self.registry)
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

        self.worker_events = Counter(
            "wecom_sync_worker_events_total", "Inbox events settled by the worker.",
            ["source", "entity_kind", "outcome"], registry=self.registry)
        self.apply_seconds = Histogram(
            "wecom_sync_event_to_applied_seconds", "From receipt to settled, per entity.",
            ["entity_kind"], registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900))
        self.event_field_fallbacks = Counter(
            "wecom_sync_event_field_fallbacks_total",
            "Entities applied from event fields because WeCom refused the re-read.",
            ["entity_kind"], registry=self.registry)
        self.ignored = Counter(
            "wecom_sync_ignored_events_total", "Events stored and deliberately not applied.",
            ["event_type"], registry=self.registry)
        self.upstream_calls = Counter(
            "wecom_sync_upstream_calls_total", "Calls to WeCom and Authing by outcome.",
            ["upstream", "endpoint", "outcome"], registry=self.registry)
        self.upstream_seconds = Histogram(
            "wecom_sync_upstream_call_seconds", "Latency of calls to WeCom and Authing.",
            ["upstream"], registry=self.registry)

    def observe_call(self, remote: str, endpoint: str, outcome: str, seconds: float) -> None:
        """The clients' CallObserver hook."""
        self.upstream_calls.labels(remote, endpoint, outcome).inc()
        self.upstream_seconds.labels(remote).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
