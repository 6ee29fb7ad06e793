"""The report's content, from a real store: what it charts, its headline, its window."""

import pytest

from perfwatch.errors import PerfwatchError
from perfwatch.report_page import page
from perfwatch.services import report
from perfwatch.services.monitor import run_all
from tests.workspace import Workspace, production

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
    assert not fetched(html), "offline: the page loads nothing"


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


def test_retrains_are_marked_and_their_lineage_tabled(sqlite_workspace: Workspace) -> None:
    import json

    from perfwatch.services.retraining import run_retrain

    fleet = production(16, scenario="covariate_shift", shift_day=4)
    sqlite_workspace.drop_days(fleet)
    sqlite_workspace.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    engine, settings = sqlite_workspace.engine(), sqlite_workspace.settings()
    run_all(engine, settings)
    run = run_retrain(engine, settings, settings.models[0], force=True)
    assert run is not None and run.status == "finished"
    data = report.gather(engine, "press", KNOWN, None)
    [shown] = data.retrains
    manifest = json.loads(run.manifest)
    assert shown["parent"] == 1 and shown["trigger"] == run.trigger
    assert shown["appended_rows"] == manifest["appended_rows"]
    assert shown["batches"] == len(manifest["batches"])
    assert shown["gate"].startswith("roc_auc: champion ")
    html = page(data)
    assert f"retrain {run.decision}" in html, "a marker on the metric charts"
    assert f"{manifest['appended_rows']:,} rows, {len(manifest['batches'])} batches" in html
