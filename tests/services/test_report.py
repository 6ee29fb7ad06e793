"""The report's content, from a real store: what it charts, its headline, its window."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perfwatch.errors import PerfwatchError
from perfwatch.report_page import page
from perfwatch.services import report
from perfwatch.services.monitor import run_all
from perfwatch.store import db
from tests.workspace import Workspace, placeholder_version, production

KNOWN = {"press": ["roc_auc", "f1", "recall"]}


def fetched(html: str) -> list[str]:
    """What a browser would fetch for the page: scripts, styles, images, frames."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Sources(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v or "" for k, v in attrs if k in ("src", "href") and tag != "a")

    Sources().feed(html)
    return found


def shifted(ws: Workspace) -> None:
    """Twelve days with a covariate shift from day 3, labels for the first eight."""
    fleet = production(12, scenario="covariate_shift", shift_day=3)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 8 * 800], "log.parquet")
    assert all(r.status == "ok" for r in run_all(ws.engine(), ws.settings()))


def test_the_report_charts_every_metric_coverage_and_drift(sqlite_workspace: Workspace) -> None:
    shifted(sqlite_workspace)
    data = report.report_data(sqlite_workspace.engine(), "press", KNOWN, None)
    assert data.metrics == ["roc_auc", "f1", "recall"], "in the config's order"
    assert data.shown == data.chunks == 12 and not data.notes
    assert {r["chunk_start"] for r in data.estimates} == {
        r["chunk_start"] for r in data.estimates if r["metric"] == "roc_auc"
    }
    assert any(r["realized"] is not None for r in data.estimates), "labels matured"
    assert {d["feature"] for d in data.drift} >= {"tool_wear", "__all_features__"}
    html = page(data)
    assert 'data-charts="5"' in html  # three metrics, label coverage, feature drift
    for title in ("Estimated roc_auc", "Estimated f1", "Label coverage", "Feature drift"):
        assert title in html
    assert all(r["bar"] is not None for r in data.estimates)
    assert html.count("bar (version 1's threshold)") == 3, "the bar drawn on each metric"
    assert "roc_auc under threshold" in data.headline
    assert not fetched(html), "offline: the page loads nothing"


def test_a_model_without_chunks_gets_a_page_that_says_so(sqlite_workspace: Workspace) -> None:
    data = report.report_data(sqlite_workspace.engine(), "press", KNOWN, None)
    html = page(data)
    assert 'data-charts="0"' in html and "No chunks estimated yet" in html
    assert data.headline.startswith("No cycle has run yet")


def test_an_unknown_model_is_named_with_the_known_ones(sqlite_workspace: Workspace) -> None:
    with pytest.raises(PerfwatchError) as error:
        report.report_data(sqlite_workspace.engine(), "presss", KNOWN, None)
    assert error.value.message == "no model named 'presss'"
    assert error.value.hint == "the config declares: press"


def test_thousands_of_chunks_are_windowed_and_the_page_says_so(sqlite_url: str) -> None:
    engine = db.open_engine(sqlite_url)
    db.migrate(engine)
    _estimates(engine, "press", days=3000)
    data = report.report_data(engine, "press", KNOWN, None)
    assert data.chunks == 3000 and data.shown == report.MAX_CHUNKS == 730
    starts = sorted({r["chunk_start"] for r in data.estimates})
    assert len(starts) == 730 and starts[-1] == data.status["latest_estimate"]["chunk_start"]
    html = page(data)
    assert "Showing the newest 730 of 3,000 chunks" in html
    since = report.report_data(engine, "press", KNOWN, datetime(2030, 1, 1, tzinfo=UTC))
    assert since.shown == len({r["chunk_start"] for r in since.estimates}) < 730
    assert min(r["chunk_start"] for r in since.estimates).startswith("2030-01-01")


def _estimates(engine: Any, name: str, *, days: int) -> None:
    """A long history of daily roc_auc estimates, written straight into the store."""
    from perfwatch.store import queries
    from perfwatch.store.tables import ChunkEstimate

    start = datetime(2022, 1, 1, tzinfo=UTC)
    with db.transaction(engine) as session:
        model = queries.get_or_create_model(session=session, name=name)
        version = placeholder_version(model.id)
        session.add(version)
        session.flush()
        session.add_all(
            ChunkEstimate(
                model_id=model.id,
                version_id=version.id,
                metric="roc_auc",
                chunk_start=start + timedelta(days=d),
                chunk_end=start + timedelta(days=d + 1),
                value=0.9,
                lower=0.88,
                upper=0.92,
                sampling_error=0.01,
                threshold=0.85,
                alert=False,
                provisional=False,
                rows=5000,
            )
            for d in range(days)
        )


def test_retrains_are_marked_and_their_lineage_tabled(sqlite_workspace: Workspace) -> None:
    import json

    from perfwatch.services.retrain_job import run_retrain

    fleet = production(16, scenario="covariate_shift", shift_day=4)
    sqlite_workspace.drop_days(fleet)
    sqlite_workspace.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    engine, settings = sqlite_workspace.engine(), sqlite_workspace.settings()
    run_all(engine, settings)
    run = run_retrain(engine, settings, settings.models[0], force=True)
    assert run is not None and run.status == "finished"
    data = report.report_data(engine, "press", KNOWN, None)
    [shown] = data.retrains
    manifest = json.loads(run.manifest)
    assert shown["parent"] == 1 and shown["trigger"] == run.trigger
    assert shown["appended_rows"] == manifest["appended_rows"]
    assert shown["batches"] == len(manifest["batches"])
    assert shown["gate"].startswith("roc_auc: champion ")
    html = page(data)
    assert f"retrain {run.decision}" in html, "a marker on the metric charts"
    assert f"{manifest['appended_rows']:,} rows, {len(manifest['batches'])} batches" in html


def test_no_headline_calls_a_model_under_its_bar_healthy() -> None:
    under = {"roc_auc": {"value": 0.830, "bar": 0.927, "under_bar": True}}
    status = {
        "last_cycle": {"status": "ok"},
        "alerts": [],
        "retrain": {"state": "cooling_down", "reason": "until 2026-06-01"},
        "latest_realized": {"metrics": under},
        "latest_complete_estimate": {"metrics": {"roc_auc": {"value": 0.93, "bar": 0.927}}},
    }
    said = report.headline(status)
    assert said == (
        "roc_auc under the bar set at deployment: realized roc_auc 0.830 vs the bar 0.927;"
        " retrain: cooling down (until 2026-06-01)."
    )
    assert "holds" not in said and "Nothing needs attention" not in said


def test_no_headline_says_performance_holds_on_an_untrusted_estimate() -> None:
    why = "96% of rows lie outside the reference (96% have 'air_temp' above the reference's range)"
    status = {
        "last_cycle": {"status": "ok"},
        "alerts": [{"kind": "extrapolation", "subject": "estimate"}],
        "retrain": {"state": "healthy"},
        "latest_complete_estimate": {"reliable": False, "trust_reason": why, "metrics": {}},
    }
    said = report.headline(status)
    assert said.startswith(f"The estimate cannot be trusted: {why}.")
    assert "holds" not in said and "Nothing needs attention" not in said


@pytest.mark.parametrize(
    ("cycle", "alerts", "retrain", "expected"),
    [
        (None, [], {}, "No cycle has run yet"),
        ({"status": "failed", "error": "disk full"}, [], {}, "The last cycle failed: disk full."),
        ({"status": "ok"}, [], {"state": "healthy"}, "Nothing needs attention"),
        (
            {"status": "ok"},
            [{"kind": "feature_drift", "subject": "tool_wear"}],
            {"state": "healthy"},
            "Performance holds, but inputs need a look (feature drift: tool_wear).",
        ),
        (
            {"status": "ok"},
            [{"kind": "performance", "subject": "roc_auc"}],
            {"state": "waiting_for_labels", "reason": "600 more labeled rows"},
            "Estimated roc_auc under threshold: the model is probably degraded now, before"
            " labels confirm it; retrain: waiting for labels (600 more labeled rows).",
        ),
    ],
)
def test_the_headline_says_what_needs_attention(
    cycle: Any, alerts: list[Any], retrain: Any, expected: str
) -> None:
    said = report.headline({"last_cycle": cycle, "alerts": alerts, "retrain": retrain})
    assert said.startswith(expected)
