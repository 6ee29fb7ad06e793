"""The Prometheus endpoint (`metrics_port`): every figure read from the store at scrape time,
the figures `perfwatch status` reports, so the numbers are true whichever process wrote
them (a cycle, a retrain child, `run --once` from cron, a Dask worker) and cost nothing
between scrapes. A scrape reads every model at once (store.fleet_reads): a few queries
however many models.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from perfwatch.config import Settings
from perfwatch.services.status import service_status
from perfwatch.store import reads
from perfwatch.store.fleet_reads import fleet_figures, fleet_figures_of_nothing

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
        with self.engine.connect() as connection:
            known = reads.model_ids(connection)
            ids = {name: known[name] for name in self.names if name in known}
            figures = fleet_figures(connection, ids.values())
        for name in self.names:
            item = figures.get(ids.get(name, -1)) or fleet_figures_of_nothing()
            estimate = item["estimate"]
            for row in estimate:
                _add(estimated, [name, row["metric"]], row["value"])
                _add(threshold, [name, row["metric"]], row["threshold"])
                _add(adjusted, [name, row["metric"]], row["adjusted"])
            trust = item["trust"]
            if trust is not None and trust["reliable"] is not None:
                reliable.add_metric([name], 1.0 if trust["reliable"] else 0.0)
                outside.add_metric([name], trust["out_of_domain_share"])
            judged = item["realized"]
            if judged:
                _add(coverage, [name], judged[0]["coverage"])
                for row in judged:
                    _add(realized, [name, row["metric"]], row["value"])
            for kind in ALERT_KINDS:
                alerts.add_metric([name, kind], item["alerts"].get(kind, 0))
            last = item["cycle"]
            if last and last["finished_at"]:
                ended, started = last["finished_at"], last["started_at"]
                duration.add_metric([name], (ended - started).total_seconds())
                finished.add_metric([name], ended.timestamp())
                cycle_ok.add_metric([name], 1.0 if last["status"] == "ok" else 0.0)
            _add(champion, [name], item["champion"])
            rows.add_metric([name], item["batches"].get("ingested", (0, 0))[1])
            quarantined.add_metric([name], item["batches"].get("quarantined", (0, 0))[0])
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
