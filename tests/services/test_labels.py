"""Delayed labels on real files and a real store: coverage, realized metrics, verdicts,
and every bad label input of issue 3."""

import warnings
from typing import Any

import joblib
import pandas as pd
import pytest
from sqlmodel import select

from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.simulate.fleet import FEATURES, TARGET
from perfwatch.store.db import transaction
from perfwatch.store.segments import TARGET as LABEL
from perfwatch.store.segments import stored_labels
from perfwatch.store.tables import Alert, ChunkLabels, Label, LabelConflict, LabelFile
from tests.workspace import Workspace, production

METRICS = ["roc_auc", "f1", "recall"]


def cycle(ws: Workspace, engine: Any = None) -> CycleReport:
    settings = ws.settings()
    report = run_cycle(engine or ws.engine(), settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


def labels_of(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[["id", TARGET]].copy()


def by_day(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [rows for _, rows in frame.groupby(frame.timestamp.dt.date)]


def table(engine: Any, model: type) -> list[Any]:
    with transaction(engine) as session:
        rows = session.exec(select(model)).all()
        session.expunge_all()
        return list(rows)


def open_alerts(engine: Any) -> set[tuple[str, str]]:
    return {(a.kind, a.subject) for a in table(engine, Alert) if a.closed_at is None}


def test_realized_metrics_equal_nannyml_on_the_same_rows(workspace: Workspace) -> None:
    days = production(6)
    workspace.drop_days(days)
    engine = workspace.engine()
    cycle(workspace, engine)
    labeled = pd.concat(by_day(days)[:4])
    workspace.drop_labels(labels_of(labeled), "labels.parquet")
    report = cycle(workspace, engine)
    assert report.label_files[0].stored == len(labeled) and report.judged.judged == 4

    import nannyml as nml

    model = joblib.load(workspace.root / "artifacts" / "model.joblib")
    reference = pd.read_parquet(workspace.root / "artifacts" / "reference.parquet")
    for frame in (reference, labeled):
        frame["y_pred_proba"] = model.predict_proba(frame[FEATURES])[:, 1]
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype(int)
    calculator = nml.PerformanceCalculator(
        problem_type="classification_binary",
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true=TARGET,
        timestamp_column_name="timestamp",
        metrics=METRICS,
        chunk_period="D",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calculator.fit(reference)
        expected = calculator.calculate(labeled).filter(period="analysis").to_df()
    rows = history(engine, "press")
    for metric in METRICS:
        ours = [r["realized"] for r in rows if r["metric"] == metric and r["realized"] is not None]
        assert ours == pytest.approx(expected[(metric, "value")].tolist(), abs=1e-9)
    assert {r["label_coverage"] for r in rows if r["realized"] is not None} == {1.0}
    realized = model_status(engine, ["press"])[0]["latest_realized"]
    assert realized["chunk_start"].startswith(str(labeled.timestamp.max().date()))
    assert not any(m["concept_drift"] for m in realized["metrics"].values())


def test_partly_labeled_chunks_show_coverage_and_no_verdict(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    days = by_day(production(3))
    ws.drop_days(pd.concat(days))
    engine = ws.engine()
    cycle(ws, engine)
    ws.drop_labels(labels_of(days[0].iloc[::2]), "half.parquet")
    assert cycle(ws, engine).judged.judged == 0
    labels = model_status(engine, ["press"])[0]["labels"]
    assert labels["newest_chunk"]["label_coverage"] == pytest.approx(0.5)
    assert all(r["realized"] is None for r in history(engine, "press"))
    ws.drop_labels(labels_of(days[0].iloc[1::2]), "rest.parquet")
    assert cycle(ws, engine).judged.judged == 1, "the rest of the labels completes the chunk"


def test_a_chunk_is_judged_only_once_mature(artifacts: Any, tmp_path: Any, sqlite_url: str) -> None:
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra='label_horizon = "3D"')
    days = by_day(production(6))
    engine = ws.engine()
    ws.drop_days(pd.concat(days[:3]))
    ws.drop_labels(labels_of(days[0]), "day0.parquet")
    cycle(ws, engine)
    assert model_status(engine, ["press"])[0]["labels"]["newest_chunk"]["mature"] is False
    assert model_status(engine, ["press"])[0]["latest_realized"] is None
    ws.drop_days(pd.concat(days[3:5]))  # data time now past day 0's end + 3 days
    assert cycle(ws, engine).judged.judged == 1


# -- bad input -------------------------------------------------------------------------------


def quarantined_label_file(ws: Workspace, name: str) -> str:
    assert (ws.labels / "quarantine" / name).is_file(), "the file is kept"
    reason = (ws.labels / "quarantine" / f"{name}.reason.txt").read_text().strip()
    stored = [f for f in table(ws.engine(), LabelFile) if f.file_name == name]
    assert [f.status for f in stored] == ["quarantined"] and stored[0].reason == reason
    labels = model_status(ws.engine(), ["press"])[0]["labels"]
    assert (labels["stored"], labels["held"]) == (0, 0), "no label of a rejected file is applied"
    return reason


def test_labels_before_their_batch_are_held_then_matched(workspace: Workspace) -> None:
    days = by_day(production(8))
    engine = workspace.engine()
    workspace.drop_days(pd.concat(days[:2]))
    early = labels_of(days[2]).assign(label_time=days[2]["timestamp"] + pd.Timedelta(hours=5))
    workspace.drop_labels(early, "early.parquet")  # day 2 has not arrived
    report = cycle(workspace, engine)
    assert report.label_files[0].held == len(days[2])
    assert model_status(engine, ["press"])[0]["labels"]["held"] == len(days[2])
    workspace.drop_days(pd.concat(days[2:4]))
    assert cycle(workspace, engine).judged.judged == 1
    assert model_status(engine, ["press"])[0]["labels"]["held"] == 0
    realized = [r for r in history(engine, "press") if r["realized"] is not None]
    assert {r["chunk_start"][:10] for r in realized} == {str(days[2].timestamp.iloc[0].date())}
    matched = table(engine, Label)
    assert len(matched) == len(days[2]) and all(m.labeled_at and m.score for m in matched)


def test_labels_for_unknown_ids_are_held_and_reported_after_the_grace(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    days = by_day(production(8))
    engine = ws.engine()
    ws.drop_days(days[0])
    strangers = pd.DataFrame({"id": [f"ghost-{i}" for i in range(25)], TARGET: 0})
    ws.drop_labels(strangers, "ghosts.csv")
    assert cycle(ws, engine).label_files[0].held == 25
    assert ("data_quality", "labels") not in open_alerts(engine), "within the grace period"
    ws.drop_days(pd.concat(days[1:5]))  # 4 days of data later: past the 3-day grace
    cycle(ws, engine)
    assert ("data_quality", "labels") in open_alerts(engine)
    message = next(a.message for a in table(engine, Alert) if a.subject == "labels")
    assert message.startswith("25 labels name ids of rows perfwatch has not stored")
    assert model_status(engine, ["press"])[0]["labels"]["held"] == 25, "held, not lost"


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([0, 1, 2, 1], "targets other than 0 and 1 (e.g. 2.0)"),
        (["no", "yes", "no", "no"], "holds text where numbers are expected"),
        ([0, None, 1, 0], "1 rows have no target"),
    ],
    ids=["not-binary", "text", "missing"],
)
def test_bad_targets_quarantine_the_file(
    sqlite_workspace: Workspace, targets: list[Any], expected: str
) -> None:
    ws = sqlite_workspace
    day = production(1)
    ws.drop_days(day)
    ws.drop_labels(pd.DataFrame({"id": day["id"].iloc[:4].tolist(), TARGET: targets}), "bad.csv")
    report = cycle(ws)
    assert [f.status for f in report.label_files] == ["quarantined"]
    assert expected in quarantined_label_file(ws, "bad.csv")


def test_a_label_file_without_the_id_column_is_quarantined(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    day = production(1)
    ws.drop_days(day)
    ws.drop_labels(day[[TARGET]].rename(columns={TARGET: TARGET}), "no-id.parquet")
    cycle(ws)
    reason = quarantined_label_file(ws, "no-id.parquet")
    assert "missing column 'id'" in reason and "row id" in reason
    [alert] = [
        a for a in model_status(ws.engine(), ["press"])[0]["alerts"] if a["subject"] == "quarantine"
    ]
    assert alert["message"].startswith("1 label file(s) quarantined"), "not a batch file"


def test_duplicate_ids_equal_values_are_skipped_different_ones_recorded(
    workspace: Workspace,
) -> None:
    day = production(2)
    workspace.drop_days(day)
    first = labels_of(day.iloc[:10])
    repeated_inside = pd.concat([first, first.iloc[:3]])  # equal values, same file
    contradicting_inside = first.iloc[3:4].assign(**{TARGET: 1 - first[TARGET].iloc[3]})
    workspace.drop_labels(pd.concat([repeated_inside, contradicting_inside]), "a.parquet")
    engine = workspace.engine()
    outcome = cycle(workspace, engine).label_files[0]
    assert (outcome.stored, outcome.repeated, outcome.conflicts) == (10, 3, 1)

    again = first.iloc[:5].copy()
    again.loc[again.index[0], TARGET] = 1 - again[TARGET].iloc[0]  # a second, different label
    workspace.drop_labels(again, "b.parquet")
    outcome = cycle(workspace, engine).label_files[0]
    assert (outcome.stored, outcome.repeated, outcome.conflicts) == (0, 4, 1)

    conflicts = {(c.row_id, c.stored_target, c.new_target) for c in table(engine, LabelConflict)}
    first_id, fourth_id = first["id"].iloc[0], first["id"].iloc[3]
    assert conflicts == {
        (fourth_id, int(first[TARGET].iloc[3]), 1 - int(first[TARGET].iloc[3])),
        (first_id, int(first[TARGET].iloc[0]), 1 - int(first[TARGET].iloc[0])),
    }
    coverage = {c.chunk_start: c.labeled for c in table(engine, ChunkLabels)}
    assert sum(coverage.values()) == 10, "each id counted once"
    settings = workspace.settings()
    model = settings.models[0]
    in_force = stored_labels(engine, settings.data_dir, 1, sorted(coverage), model.served_columns)
    assert dict(zip(in_force["id"], in_force[LABEL], strict=True)) == dict(
        zip(first["id"], first[TARGET].astype(int), strict=True)
    ), "the first label of each id, and only it"
    assert model_status(engine, ["press"])[0]["labels"]["conflicts"] == 2


def test_the_same_label_file_twice_is_counted_once(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    day = production(1)
    ws.drop_days(day)
    ws.drop_labels(labels_of(day), "log.parquet")
    engine = ws.engine()
    cycle(ws, engine)
    ws.drop_labels(labels_of(day), "log.parquet")
    assert [f.status for f in cycle(ws, engine).label_files] == ["duplicate"]
    assert model_status(engine, ["press"])[0]["labels"]["stored"] == len(day)
    assert (ws.labels / "processed" / "log.parquet").is_file()


def weeks(count: int, start_week: int = 0) -> list[pd.DataFrame]:
    """`count` weeks of a small fleet, one frame a week (the rows of one batch file)."""
    fleet = production(7 * count, start_day=7 * start_week, runs_per_day=60)
    monday = fleet.timestamp.dt.floor("D") - pd.to_timedelta(fleet.timestamp.dt.day_of_week, "D")
    return [rows for _, rows in fleet.groupby(monday)]


def test_a_backfill_in_one_cycle_matches_every_label(sqlite_workspace: Workspace) -> None:
    """20 weekly batch files and their 20 label files in one cycle: 140 days, beyond the
    90-day label window counted back from the newest row."""
    ws = sqlite_workspace
    backfill = weeks(20)
    for index, rows in enumerate(backfill):
        ws.drop(rows, f"week-{index:02d}.parquet")
        ws.drop_labels(labels_of(rows), f"week-{index:02d}-labels.parquet")
    report = cycle(ws)
    everything = pd.concat(backfill)
    assert report.rows == len(everything)
    labels = model_status(ws.engine(), ["press"])[0]["labels"]
    assert labels["held"] == 0 and labels["stored"] == len(everything)


def test_labels_of_rows_older_than_the_window_are_matched(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    old, recent = weeks(2), weeks(2, start_week=20)  # 20 weeks apart
    ws.drop_days(pd.concat([*old, *recent]))
    cycle(ws)
    ws.drop_labels(labels_of(pd.concat(old)), "a-late-maintenance-log.parquet")
    cycle(ws)
    labels = model_status(ws.engine(), ["press"])[0]["labels"]
    assert labels["held"] == 0 and labels["stored"] == len(pd.concat(old))


def test_held_labels_find_rows_that_arrive_older_than_the_window(
    sqlite_workspace: Workspace,
) -> None:
    """Labels first, their rows later, and those rows 20 weeks behind the newest row."""
    ws = sqlite_workspace
    old, recent = weeks(1), weeks(1, start_week=20)
    ws.drop_days(recent[0])
    ws.drop_labels(labels_of(old[0]), "log.parquet")
    cycle(ws)
    assert model_status(ws.engine(), ["press"])[0]["labels"]["held"] == len(old[0])
    ws.drop_days(old[0])  # a backfill of the old week
    cycle(ws)
    labels = model_status(ws.engine(), ["press"])[0]["labels"]
    assert labels["held"] == 0 and labels["stored"] == len(old[0])


def test_labels_dated_before_their_rows_quarantine_their_file(
    sqlite_workspace: Workspace,
) -> None:
    """An outcome cannot be known before the run: a file whose label times come before
    their rows' times (a producer's clock or time zone) is quarantined, named; a file
    whose times are right is taken, and so are labels without a time."""
    ws = sqlite_workspace
    days = by_day(production(3))
    ws.drop_days(pd.concat(days))
    engine = ws.engine()
    cycle(ws, engine)
    late = labels_of(days[0]).assign(label_time=days[0].timestamp + pd.Timedelta(hours=2))
    early = labels_of(days[1]).assign(label_time=days[1].timestamp + pd.Timedelta(minutes=5))
    early.loc[early.index[3:6], "label_time"] -= pd.Timedelta(hours=1)  # 3 an hour too early
    ws.drop_labels(late, "a-right.parquet")
    ws.drop_labels(early, "b-clock-skewed.parquet")
    ws.drop_labels(labels_of(days[2]), "c-no-times.parquet")
    report = cycle(ws, engine)
    assert [(f.status, f.stored) for f in report.label_files] == [
        ("ingested", 800),
        ("quarantined", 0),
        ("ingested", 800),
    ]
    reason = report.label_files[1].reason or ""
    first = early.iloc[3]
    assert reason.startswith(
        f"3 labels are dated before their rows ran (first: {first['id']!r} labeled at"
        f" {first['label_time']:%Y-%m-%d %H:%M:%S}, its row at"
        f" {days[1].timestamp.iloc[3]:%Y-%m-%d %H:%M:%S} UTC)"
    )
    assert (ws.labels / "quarantine" / "b-clock-skewed.parquet").is_file()


def test_a_label_file_quarantined_for_the_config_is_taken_once_the_config_is_fixed(
    sqlite_workspace: Workspace,
) -> None:
    """A ';' separated label file, quarantined naming the setting; sent again unchanged it
    stays quarantined, recorded once; sent again after the setting is made, it is read
    again and its labels stored, its quarantine record replaced."""
    ws = sqlite_workspace
    day = production(1)
    ws.drop_days(day)
    engine = ws.engine()
    cycle(ws, engine)
    ws.labels.mkdir()
    labels_of(day).to_csv(ws.labels / "day.csv", sep=";", index=False)
    assert [f.status for f in cycle(ws, engine).label_files] == ["quarantined"]
    reason = quarantined_label_file(ws, "day.csv")
    assert "delimiter = ';'" in reason

    (ws.labels / "quarantine" / "day.csv").rename(ws.labels / "day.csv")
    assert [f.status for f in cycle(ws, engine).label_files] == ["duplicate"]
    assert quarantined_label_file(ws, "day.csv") == reason

    ws.config.write_text(ws.config.read_text() + '[models.read]\ndelimiter = ";"\n')
    (ws.labels / "quarantine" / "day.csv").rename(ws.labels / "day.csv")
    report = cycle(ws, engine)
    assert [(f.status, f.stored) for f in report.label_files] == [("ingested", 800)]
    assert [(f.status, f.reason) for f in table(engine, LabelFile)] == [("ingested", None)]
    assert model_status(engine, ["press"])[0]["labels"]["files_quarantined"] == 0
