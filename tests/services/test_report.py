"""The report's content, from a real store: what it charts, its headline, its window."""

import pytest

from perfwatch.errors import PerfwatchError
from perfwatch.report_page import page
from perfwatch.services import report
from perfwatch.services.monitor import run_all
from tests.workspace import Workspace, production

KNOWN = {"press": ["roc_auc", "f1", "recall"]}


def shifted(ws: Workspace) -> None:
    """Twelve days with a covariate shift from day 3, labels for the first eight."""
    fleet = production(12, scenario="covariate_shift", shift_day=3)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 8 * 800], "log.parquet")
    assert all(r.status == "ok" for r in run_all(ws.engine(), ws.settings()))


def test_the_report_charts_every_metric_coverage_and_drift(sqlite_workspace: Workspace) -> None:
    shifted(sqlite_workspace)
    data = report.gather(sqlite_workspace.engine(), "press", KNOWN, None)
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
    assert "roc_auc under threshold" in data.headline
    assert "<script src" not in html and "cdn.plot.ly" not in html, "offline: nothing to fetch"


def test_a_model_without_chunks_gets_a_page_that_says_so(sqlite_workspace: Workspace) -> None:
    data = report.gather(sqlite_workspace.engine(), "press", KNOWN, None)
    html = page(data)
    assert 'data-charts="0"' in html and "No chunks estimated yet" in html
    assert data.headline.startswith("No cycle has run yet")


def test_an_unknown_model_is_named_with_the_known_ones(sqlite_workspace: Workspace) -> None:
    with pytest.raises(PerfwatchError) as error:
        report.gather(sqlite_workspace.engine(), "presss", KNOWN, None)
    assert error.value.message == "no model named 'presss'"
    assert error.value.hint == "the config declares: press"


def test_a_long_history_is_windowed_and_the_page_says_so(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    shifted(sqlite_workspace)
    monkeypatch.setattr(report, "MAX_CHUNKS", 5)
    data = report.gather(sqlite_workspace.engine(), "press", KNOWN, None)
    assert data.shown == 5 and data.chunks == 12
    assert len({r["chunk_start"] for r in data.estimates}) == 5
    assert "Showing the newest 5 of 12 chunks" in page(data)
