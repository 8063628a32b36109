"""Prometheus metrics of the capture, served on 127.0.0.1:9095 ``/metrics``.

The ``trade_ws_*`` names follow M17's websocket health gauges:

==========================================  ===========================================================
``trade_ws_events_total{feed,event}``       events received and decoded (counter)
``trade_ws_subscribed_contracts``           option contracts currently subscribed (gauge)
``trade_ws_seconds_since_contract_refresh`` seconds since the contract list last loaded; -1 before the first
``trade_ws_connected{feed}``                1 while the feed is connected and authenticated
``trade_ws_reconnects_total{feed}``         connections lost and retried (counter)
``trade_ws_gaps_total{feed}``               gaps recorded (counter)
``trade_ws_batches_written_total{table}``   micro-batches acknowledged in the manifest (counter)
``trade_ws_batch_rows_total{table}``        rows in them (counter)
``trade_ws_batch_latency_seconds``          first event of a batch received -> batch acknowledged (histogram, s)
``trade_ws_malformed_total{feed,kind}``     frames / events rejected (counter)
``trade_ws_contract_refresh_failures_total`` failed contract-list loads (counter)
==========================================  ===========================================================

Each :class:`CaptureMetrics` has its own registry, so several captures (or tests) in
one process do not collide.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class CaptureMetrics:
    """The capture's counters and gauges (see the module doc for names and units)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no ``*_created`` timestamp series beside each counter
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("trade_ws_events", "events received and decoded", ["feed", "event"], registry=r)
        self.subscribed_contracts = Gauge("trade_ws_subscribed_contracts", "option contracts currently subscribed", registry=r)
        self.since_refresh = Gauge(
            "trade_ws_seconds_since_contract_refresh",
            "seconds since the contract list was last loaded; -1 before the first load", registry=r,
        )
        self._refreshed_at: float | None = None
        self.since_refresh.set_function(lambda: -1.0 if self._refreshed_at is None else time.time() - self._refreshed_at)
        self.connected = Gauge("trade_ws_connected", "1 while the feed is connected and authenticated", ["feed"], registry=r)
        self.reconnects = Counter("trade_ws_reconnects", "connections lost and retried", ["feed"], registry=r)
        self.gaps = Counter("trade_ws_gaps", "feed gaps recorded", ["feed"], registry=r)
        self.batches = Counter("trade_ws_batches_written", "micro-batches acknowledged in the manifest", ["table"], registry=r)
        self.batch_rows = Counter("trade_ws_batch_rows", "rows in acknowledged micro-batches", ["table"], registry=r)
        self.batch_latency = Histogram(
            "trade_ws_batch_latency_seconds", "seconds from a batch's first event received to the batch acknowledged",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.malformed = Counter("trade_ws_malformed", "frames or events rejected as malformed or unknown", ["feed", "kind"], registry=r)
        self.refresh_failures = Counter("trade_ws_contract_refresh_failures", "failed contract-list loads", registry=r)
        for feed in ("stocks", "options"):
            self.connected.labels(feed=feed).set(0)
            self.reconnects.labels(feed=feed)
            self.gaps.labels(feed=feed)

    def contracts_refreshed(self) -> None:
        """Mark a successful contract-list load now."""
        self._refreshed_at = time.time()

    def serve(self, host: str, port: int):
        """Serve ``/metrics`` on ``host:port`` in a daemon thread (port 0: a free port).

        Returns
        -------
        (server, thread)
            ``server.server_port`` is the bound port; ``server.shutdown()`` stops it.

        Raises
        ------
        OSError
            If the port is taken.
        """
        return start_http_server(port, addr=host, registry=self.registry)
