"""Prometheus metrics of one app: requests, render time, bytes out, renders in flight, publish failures.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so tests that build many apps in
one process never clash over metric names. Under gunicorn with several workers every worker counts its
own requests; ``pixline serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers import
prometheus-client, and ``/metrics`` then sums the workers' files (prometheus-client multiprocess mode).
"""
from __future__ import annotations

import os
from typing import Any

import falcon
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, values)

#: Labelled metric children a middleware keeps (routes × methods × statuses: a few dozen in practice).
CHILDREN_KEPT = 1000
RENDER_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def multiprocess_mode() -> bool:
    """True when prometheus-client was imported with ``PROMETHEUS_MULTIPROC_DIR`` set.

    The value class is fixed when prometheus-client is first imported, so the environment variable
    alone is not enough: it must have been set before that import.
    """
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) and values.ValueClass.__name__ != "MutexValue"


class Metrics:
    """The metrics of one app, registered in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("pixline_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.response_bytes = Counter("pixline_http_response_bytes", "Response body bytes sent, by route",
                                      ["route"], registry=r)
        self.render_seconds = Histogram("pixline_render_seconds",
                                        "Time to render and store one derivative, by recipe ('adhoc' for URLs)",
                                        ["recipe"], buckets=RENDER_BUCKETS, registry=r)
        self.renders_in_flight = Gauge("pixline_renders_in_flight", "Renders running now",
                                       multiprocess_mode="livesum", registry=r)
        self.renders_waiting = Gauge("pixline_renders_waiting",
                                     "Requests waiting for a render slot or for the same render",
                                     multiprocess_mode="livesum", registry=r)
        self.renders_shed = Counter("pixline_renders_shed",
                                    "Render requests refused with 503: every render slot stayed busy, too many "
                                    "requests waited (for a slot or for the same render), or the render waited "
                                    "for ran out", registry=r)
        self.auto_quality_fallbacks = Counter("pixline_auto_quality_fallbacks",
                                              "quality: auto renders whose search would have overrun the "
                                              "render's time limit: served at the recipe's default quality "
                                              "(or the best passing one tried), not stored", registry=r)
        self.publish_failures = Counter("pixline_publish_failures",
                                        "Jobs for eager recipes that could not be handed to the queue",
                                        registry=r)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        if multiprocess_mode():
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        # The in-process queue's job metrics live in prometheus-client's default registry.
        return generate_latest(self.registry) + generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every response by route template (not by raw path: ids would explode the label set)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Labelled children by their labels: prometheus-client's labels() validates and locks on
        # every call, a tenth of the app's time on a stored image.
        self._children: dict[tuple, Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < CHILDREN_KEPT:
                self._children[key] = child
        return child

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        self._child(self.metrics.requests, route, req.method, str(resp.status_code)).inc()
        if req.method == "HEAD":
            return
        if resp.data:
            self._child(self.metrics.response_bytes, route).inc(len(resp.data))
        elif resp.stream is not None:
            length = resp.get_header("Content-Length")
            if length:
                self._child(self.metrics.response_bytes, route).inc(int(length))


_refusals: Counter | None = None


def count_refusal(status: int, title: str) -> None:
    """Count a request answered by the front or the connection (``front.py``, ``connection.py``)
    before the app saw it: ``pixline_http_refused{status, problem}``, ``problem`` the error's title.

    Those answers never pass the app's middleware, so ``pixline_http_requests`` cannot count them.
    One counter per process in prometheus-client's default registry (summed over workers in
    multiprocess mode), made on first use: in a gunicorn worker that is after
    :func:`use_multiprocess_values`.
    """
    global _refusals
    if _refusals is None:
        _refusals = Counter("pixline_http_refused",
                            "Requests refused by the front or the connection before the app saw them, "
                            "by status and problem", ["status", "problem"])
    _refusals.labels(str(status), title).inc()


def use_multiprocess_values() -> None:
    """In a gunicorn worker: store metric values in ``PROMETHEUS_MULTIPROC_DIR`` files when it is set.

    prometheus-client picks its value class when first imported; if the master imported it before the
    variable was set, re-pick it here, before this process creates any metric.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass.__name__ == "MutexValue":
        values.ValueClass = values.get_value_class()
