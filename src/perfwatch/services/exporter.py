"""The Prometheus endpoint (`metrics_port`): every figure read from the store at scrape time,
through the same read path as `perfwatch status`, so the numbers are true whichever
process wrote them (a cycle, a retrain child, `run --once` from cron) and cost nothing
between scrapes.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from perfwatch.config import Settings
from perfwatch.services.status import model_status, service_status

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.core import GaugeMetricFamily, Metric

ALERT_KINDS = (
    "performance",
    "concept_drift",
    "feature_drift",
    "data_quality",
    "skew",
    "extrapolation",
)


class StoreCollector:
    def __init__(self, engine: Engine, names: list[str]) -> None:
        self.engine, self.names = engine, names

    def collect(self) -> Iterator["Metric"]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def gauge(name: str, text: str, labels: tuple[str, ...] = ("model",)) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"perfwatch_{name}", text, labels=list(labels))

        per_metric = ("model", "metric")
        estimated = gauge(
            "estimated_metric", "Estimate (CBPE) of the newest complete chunk", per_metric
        )
        threshold = gauge("metric_threshold", "Alert threshold of the metric", per_metric)
        adjusted = gauge(
            "adjusted_metric",
            "Delay-adjusted estimate of the newest complete chunk (CBPE's where none)",
            per_metric,
        )
        realized = gauge("realized_metric", "Realized value of the newest judged chunk", per_metric)
        coverage = gauge("label_coverage", "Label coverage of the newest judged chunk")
        reliable = gauge(
            "estimate_reliable", "1 if the newest complete chunk's estimate can be trusted"
        )
        outside = gauge(
            "out_of_domain_share", "Share of the newest complete chunk outside the reference"
        )
        alerts = gauge("open_alerts", "Open alerts by kind", ("model", "kind"))
        duration = gauge("cycle_duration_seconds", "Duration of the last cycle")
        cycle_ok = gauge("last_cycle_ok", "1 if the last cycle succeeded, else 0")
        finished = gauge("last_cycle_timestamp_seconds", "When the last cycle finished")
        champion = gauge("champion_version", "Version number of the serving champion")
        rows = CounterMetricFamily("perfwatch_rows_ingested", "Rows ingested", labels=["model"])
        quarantined = CounterMetricFamily(
            "perfwatch_batches_quarantined", "Batch files quarantined", labels=["model"]
        )
        for item in model_status(self.engine, self.names):
            name = item["name"]
            estimate = item["latest_complete_estimate"] or item["latest_estimate"]
            for metric, figures in (estimate or {}).get("metrics", {}).items():
                _add(estimated, [name, metric], figures["value"])
                _add(threshold, [name, metric], figures["threshold"])
                _add(adjusted, [name, metric], figures.get("adjusted"))
            complete = item["latest_complete_estimate"] or {}
            if complete.get("reliable") is not None:
                reliable.add_metric([name], 1.0 if complete["reliable"] else 0.0)
                outside.add_metric([name], complete["out_of_domain_share"])
            judged = item["latest_realized"]
            if judged:
                _add(coverage, [name], judged["label_coverage"])
                for metric, figures in judged["metrics"].items():
                    _add(realized, [name, metric], figures["value"])
            kinds: dict[str, int] = {}
            for alert in item["alerts"]:
                kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
            for kind in ALERT_KINDS:
                alerts.add_metric([name, kind], kinds.get(kind, 0))
            last = item["last_cycle"]
            if last and last["finished_at"]:
                ended = datetime.fromisoformat(last["finished_at"])
                started = datetime.fromisoformat(last["started_at"])
                duration.add_metric([name], (ended - started).total_seconds())
                finished.add_metric([name], ended.timestamp())
                cycle_ok.add_metric([name], 1.0 if last["status"] == "ok" else 0.0)
            _add(champion, [name], item["champion_version"])
            rows.add_metric([name], item["rows_ingested"])
            quarantined.add_metric([name], item["batches_quarantined"])
        service = service_status(self.engine)
        up = GaugeMetricFamily("perfwatch_daemon_up", "1 while the daemon's heartbeat is fresh")
        up.add_metric([], 1.0 if service["daemon"]["state"] == "running" else 0.0)
        pending = GaugeMetricFamily(
            "perfwatch_notifications_pending", "Webhook messages not delivered yet"
        )
        pending.add_metric([], service["notifications"]["pending"])
        yield from (estimated, threshold, adjusted, realized, coverage, reliable, outside, alerts)
        yield from (duration, cycle_ok)
        yield from (finished, champion, rows, quarantined, up, pending)


def _add(family: "GaugeMetricFamily", labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def serve_metrics(engine: Engine, settings: Settings, names: list[str]) -> "WSGIServer":
    """Start the endpoint on a background thread; return the server (to shut down)."""
    from prometheus_client import CollectorRegistry, start_http_server

    assert settings.metrics_port is not None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, names))
    server, _thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_address, registry=registry
    )
    return server
