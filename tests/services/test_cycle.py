"""The monitoring cycle on real files, a real store, real nannyml and LightGBM."""

import warnings
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sqlmodel import delete, select

from perfwatch.files import sha256_file
from perfwatch.ingest import inbox
from perfwatch.services.monitor import run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.simulate.fleet import FEATURES, TARGET
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch, ChunkDrift, ChunkEstimate
from tests.workspace import Workspace, production

METRICS = ["roc_auc", "f1", "recall"]


def cycle(ws: Workspace, engine: object = None):
    engine = engine or ws.engine()
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


def champion_reference(engine: object) -> dict[str, object]:
    """The champion's reference figures per metric, as the store holds them."""
    with transaction(engine) as session:
        model = queries.find_model(session=session, name="press")
        version = queries.champion(session=session, model_id=model.id)
        return queries.reference_metrics(session=session, version_id=version.id)


def test_first_cycle_registers_version_1_and_estimates_every_chunk(workspace: Workspace) -> None:
    workspace.drop_days(production(5))
    engine = workspace.engine()
    report = cycle(workspace, engine)

    assert [f.status for f in report.files] == ["ingested"] * 5
    assert report.rows == 5 * 800 and report.chunks_estimated == 5
    champion = workspace.root / "var" / "models" / "press" / "champion.joblib"
    assert sha256_file(champion) == sha256_file(workspace.root / "artifacts" / "model.joblib")
    rows = history(engine, "press")
    assert len(rows) == 5 * len(METRICS)
    assert {r["model_version"] for r in rows} == {1}
    provisional = {r["chunk_start"] for r in rows if r["provisional"]}
    assert provisional == {max(r["chunk_start"] for r in rows)}, "only the newest is incomplete"
    assert not any(r["alert"] for r in rows), "a stable fleet raises no alert"
    assert sorted((workspace.inbox / "processed").iterdir()) != []
    assert not list(workspace.inbox.glob("*.parquet"))


def test_estimates_equal_nannyml_cbpe_on_the_same_rows(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    days = production(4)
    ws.drop_days(days)
    cycle(ws)  # asserts the cycle ended ok
    rows = history(ws.engine(), "press")

    import nannyml as nml

    model = joblib.load(ws.root / "artifacts" / "model.joblib")
    reference = pd.read_parquet(ws.root / "artifacts" / "reference.parquet")
    for frame in (reference, days):
        frame["y_pred_proba"] = model.predict_proba(frame[FEATURES])[:, 1]
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype(int)
    estimator = nml.CBPE(
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
        estimator.fit(reference)
        expected = estimator.estimate(days).filter(period="analysis").to_df()
    for metric in METRICS:
        ours = [r["estimated"] for r in rows if r["metric"] == metric]
        assert ours == pytest.approx(expected[(metric, "value")].tolist(), abs=1e-9)


def test_a_second_cycle_without_new_data_changes_nothing(workspace: Workspace) -> None:
    workspace.drop_days(production(3))
    engine = workspace.engine()
    cycle(workspace, engine)
    before = history(engine, "press")
    again = cycle(workspace, engine)
    assert again.files == [] and again.chunks_estimated == 0
    assert history(engine, "press") == before


def test_only_changed_chunks_are_estimated(workspace: Workspace) -> None:
    days = production(5)
    by_day = [rows for _, rows in days.groupby(days.timestamp.dt.date)]
    engine = workspace.engine()
    workspace.drop(pd.concat(by_day[:3]), "first.parquet")
    assert cycle(workspace, engine).chunks_estimated == 3
    workspace.drop(by_day[3], "second.parquet")
    # the new day, and the day before it, which is now complete
    assert cycle(workspace, engine).chunks_estimated == 2
    late = by_day[4].copy()
    late["timestamp"] = late["timestamp"] - pd.Timedelta(days=4)  # late rows for day 0
    late["id"] = late["id"] + "-late"
    workspace.drop(late, "late.parquet")
    assert cycle(workspace, engine).chunks_estimated == 1
    rows = [r for r in history(engine, "press") if r["metric"] == "roc_auc"]
    assert rows[0]["rows"] == 1600 and not rows[0]["provisional"]


def test_covariate_shift_alerts_and_status_shows_it(workspace: Workspace) -> None:
    workspace.drop_days(production(12, scenario="covariate_shift", shift_day=4))
    engine = workspace.engine()
    cycle(workspace, engine)
    rows = [r for r in history(engine, "press") if r["metric"] == "roc_auc"]
    assert not any(r["alert"] for r in rows[:4]), "no alert before the shift"
    assert sum(r["alert"] for r in rows[6:]) >= 3, "the estimate drops once the shift is in"
    assert rows[-1]["estimated"] < rows[0]["estimated"] - 0.04
    status = model_status(engine, ["press"])[0]
    assert status["alerts"] and status["alerts"][0]["kind"] == "performance"
    assert status["latest_complete_estimate"]["metrics"]["roc_auc"]["alert"]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        ("roc_auc = { lower = 0.999 }", lambda ref: 0.999),
        ("roc_auc = { drop = 0.5 }", lambda ref: ref * 0.5),
    ],
)
def test_configured_thresholds(
    tmp_path: Path, artifacts: Path, sqlite_url: str, threshold: str, expected: object
) -> None:
    ws = Workspace.create(
        tmp_path / "ws", artifacts, sqlite_url, extra=f"[models.thresholds]\n{threshold}\n"
    )
    ws.drop_days(production(3))
    engine = ws.engine()
    cycle(ws, engine)
    reference = champion_reference(engine)
    rows = [r for r in history(engine, "press") if r["metric"] == "roc_auc"]
    want = expected(reference["roc_auc"].value)
    assert [r["threshold"] for r in rows] == pytest.approx([want] * len(rows))
    lower_floor = "lower" in threshold
    # alerts only on complete chunks; the newest chunk is provisional and never alerts
    assert [r["alert"] for r in rows] == [lower_floor, lower_floor, False]


def test_default_threshold_is_nannymls_reference_band(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop_days(production(2))
    engine = sqlite_workspace.engine()
    cycle(sqlite_workspace, engine)
    band = champion_reference(engine)
    rows = history(engine, "press")
    for row in rows:
        assert row["threshold"] == pytest.approx(band[row["metric"]].band_lower)
        assert band[row["metric"]].band_lower < band[row["metric"]].value


def test_nan_from_nannyml_is_an_error_not_a_value(sqlite_workspace: Workspace) -> None:
    days = production(3)
    # the middle day: a broken server serves 0.0 for every run; ROC AUC is then undefined
    day1 = days.timestamp.dt.day == days.timestamp.dt.day.min() + 1
    days.loc[day1, "y_pred_proba"] = 0.0
    days.loc[~day1, "y_pred_proba"] = float("nan")  # the others are scored by perfwatch
    days.loc[day1, "y_pred"] = 0
    sqlite_workspace.drop_days(days)
    ws = sqlite_workspace
    settings = ws.settings()
    engine = ws.engine()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "failed" and "NaN" in report.error and "roc_auc" in report.error
    stored = history(engine, "press")
    assert all(r["estimated"] == r["estimated"] for r in stored), "no NaN is stored"
    status = model_status(engine, ["press"])[0]
    assert status["last_cycle"]["status"] == "failed" and "NaN" in status["last_cycle"]["error"]


def test_changing_the_chunk_of_a_model_with_history_is_refused(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    cycle(ws)
    ws.config.write_text(ws.config.read_text() + 'chunk = "6h"\n')
    ws.drop_days(production(1, start_day=2))
    settings = ws.settings()
    report = run_cycle(ws.engine(), settings, settings.models[0])
    assert report.status == "failed"
    assert "has history in chunks of 1D, but its config now says 6h" in report.error
    assert list(ws.inbox.glob("*.parquet")), "nothing ingested under the wrong chunks"
    ws.config.write_text(ws.config.read_text().replace('chunk = "6h"', "chunk_rows = 500"))
    settings = ws.settings()
    report = run_cycle(ws.engine(), settings, settings.models[0])
    assert "has history in chunks of 1D, but its config now says 500 rows" in report.error


@pytest.mark.parametrize("complete_after", [None, "2h"])
def test_the_clock_closes_a_quiet_line_s_last_chunk_only_when_asked(
    tmp_path: Path, artifacts: Path, sqlite_url: str, complete_after: str | None
) -> None:
    from datetime import timedelta

    from tests.workspace import PRODUCTION_START

    extra = f'complete_after = "{complete_after}"' if complete_after else ""
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra)
    fleet = production(2)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]], "log.parquet")
    settings = ws.settings()
    engine = ws.engine()
    last_end = PRODUCTION_START + timedelta(days=2)
    run_cycle(engine, settings, settings.models[0], now=last_end + timedelta(hours=1))
    assert history(engine, "press")[-1]["provisional"], "not even the clock has closed it"
    later = run_cycle(engine, settings, settings.models[0], now=last_end + timedelta(hours=3))
    newest = history(engine, "press")[-1]
    assert newest["chunk_start"].startswith("2026-03-03")
    assert newest["provisional"] is (complete_after is None)
    assert later.chunks_estimated == (0 if complete_after is None else 1)
    judged = newest["realized"] is not None  # its labels are in: judged once it is closed
    assert judged is (complete_after is not None)


def drift_figures(engine: object) -> dict[tuple[object, str], tuple[float, bool]]:
    with transaction(engine) as session:
        return {
            (d.chunk_start, d.feature): (d.value, d.raw_alert)
            for d in session.exec(select(ChunkDrift)).all()
        }


def test_a_version_registered_before_its_figures_were_stored_gets_them_once(
    sqlite_workspace: Workspace,
) -> None:
    """Stores migrated from before 0010 (0011) hold no fitted CBPE (drift) figures: the
    first cycle derives them (from the pickled estimator, from the reference), keeps them,
    and estimates and measures drift alike."""
    from perfwatch.ml.chunk_drift import FittedDrift
    from perfwatch.ml.chunk_metrics import Fitted

    ws = sqlite_workspace
    ws.drop_days(production(3))
    engine = ws.engine()
    cycle(ws, engine)
    before = history(engine, "press")
    drift_before = drift_figures(engine)
    assert drift_before, "complete chunks have their drift measured"
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
        stored, stored_drift = version.fitted, version.fitted_drift
        version.fitted = version.fitted_drift = None  # as 0011 leaves an older version
        session.add(version)
        session.exec(delete(ChunkEstimate))
        session.exec(delete(ChunkDrift))
    ws.drop_days(production(1, start_day=3))
    cycle(ws, engine)
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
    assert version.fitted is not None and Fitted.from_json(version.fitted) == Fitted.from_json(
        stored
    )
    assert version.fitted_drift is not None
    assert FittedDrift.from_json(version.fitted_drift) == FittedDrift.from_json(stored_drift)
    after = {(r["chunk_start"], r["metric"]): r["estimated"] for r in history(engine, "press")}
    for row in before:
        assert after[(row["chunk_start"], row["metric"])] == pytest.approx(
            row["estimated"], abs=1e-12
        )
    drift_after = drift_figures(engine)
    for key, (value, alert) in drift_before.items():
        assert drift_after[key] == (pytest.approx(value, abs=1e-12), alert)


def test_drift_is_fitted_again_when_the_config_changes_what_it_was_fitted_for(
    sqlite_workspace: Workspace,
) -> None:
    """Drift references depend on the features and the chunking: figures stored for
    another config are not applied, they are fitted again (and kept)."""
    import json

    ws = sqlite_workspace
    ws.drop_days(production(3))
    engine = ws.engine()
    cycle(ws, engine)
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
        stale = json.loads(version.fitted_drift)
        right = stale["fitted_for"]
        stale["fitted_for"] = right.replace("1D", "2D")
        assert stale["fitted_for"] != right
        stale["features"] = stale["features"][:1]  # applied, one feature would be measured
        version.fitted_drift = json.dumps(stale)
        session.add(version)
        session.exec(delete(ChunkDrift))
    ws.drop_days(production(1, start_day=3))
    cycle(ws, engine)
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
    assert json.loads(version.fitted_drift)["fitted_for"] == right
    measured = {feature for _, feature in drift_figures(engine)}
    assert set(FEATURES) <= measured


def test_verify_recomputes_with_nannyml_and_names_a_figure_that_differs(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`perfwatch run --verify` (PERFWATCH_VERIFY=1): nannyml recomputes every estimate
    and realized metric beside perfwatch's arithmetic; equal, the cycle goes on; a figure
    off by more than 1e-9 fails it, named."""
    import json

    ws = sqlite_workspace
    monkeypatch.setenv("PERFWATCH_VERIFY", "1")
    days = production(10)
    ws.drop_days(days[days.timestamp < days.timestamp.min() + pd.Timedelta(days=9)])
    ws.drop_labels(days[["id", TARGET]], "labels.parquet")
    engine = ws.engine()
    report = cycle(ws, engine)  # estimates and realized metrics, both verified
    assert report.judged.judged > 0
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
        fitted = json.loads(version.fitted)
        fitted["metrics"][0]["std"] *= 1.001  # roc_auc's sampling error, a little off
        version.fitted = json.dumps(fitted)
        session.add(version)
    ws.drop_days(days[days.timestamp >= days.timestamp.min() + pd.Timedelta(days=9)])
    failed = run_cycle(engine, ws.settings(), ws.settings().models[0])
    assert failed.status == "failed"
    assert "--verify: roc_auc sampling_error of chunk" in failed.error
    assert "perfwatch" in failed.error and "nannyml" in failed.error


def test_verify_checks_drift_against_nannyml_too(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feature drift is verified as estimates are: a reference share a little off changes
    a Jensen-Shannon distance, and `--verify` names the feature and the chunk."""
    import json

    ws = sqlite_workspace
    monkeypatch.setenv("PERFWATCH_VERIFY", "1")
    days = production(6)
    ws.drop_days(days[days.timestamp < days.timestamp.min() + pd.Timedelta(days=4)])
    engine = ws.engine()
    cycle(ws, engine)  # drift of the complete chunks, verified
    assert drift_figures(engine)
    with transaction(engine) as session:
        version = queries.champion(session=session, model_id=1)
        fitted = json.loads(version.fitted_drift)
        feature = fitted["features"][0]
        feature["shares"][0] += 0.01
        version.fitted_drift = json.dumps(fitted)
        session.add(version)
    ws.drop_days(days[days.timestamp >= days.timestamp.min() + pd.Timedelta(days=4)])
    failed = run_cycle(engine, ws.settings(), ws.settings().models[0])
    assert failed.status == "failed"
    assert f"--verify: {feature['name']} value of chunk" in failed.error


def test_odd_input_is_estimated_as_nannyml_estimates_it_or_refused_with_a_reason(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `--verify` (nannyml recomputes every figure beside the fast path): served
    scores outside [0, 1] are quarantined with the reason; missing served scores are
    scored by the champion; a chunk predicted all one class is estimated and measured as
    nannyml does; a chunk of one row has no ROC AUC (nannyml's is NaN too): the cycle
    that completes it fails naming it, after storing everything else, and the next is ok."""
    import numpy as np

    ws = sqlite_workspace
    monkeypatch.setenv("PERFWATCH_VERIFY", "1")
    model = joblib.load(ws.root / "artifacts" / "model.joblib")
    fleet = production(6)
    fleet["y_pred_proba"] = model.predict_proba(fleet[FEATURES])[:, 1]
    days = [rows.copy() for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    days[1].loc[days[1].index[::3], "y_pred_proba"] = np.nan  # scored by the champion
    days[2] = days[2].head(1)  # a chunk of one row
    days[3]["y_pred_proba"] = days[3]["y_pred_proba"].clip(upper=0.3)  # all predicted 0
    for frame in days:
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype("Int64")
        frame.loc[frame["y_pred_proba"].isna(), "y_pred"] = pd.NA
    broken = days[4].copy()
    broken.loc[broken.index[0], "y_pred_proba"] = 1.7
    for index, frame in enumerate(days[:5]):
        ws.drop(frame, f"day{index}.parquet")
    ws.drop(broken.assign(id=broken["id"] + "-again"), "margins.parquet")
    engine = ws.engine()
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "failed"  # not --verify: nannyml gives the same NaN
    assert (
        report.error == "CBPE gives NaN for 1 complete chunk metric(s): roc_auc on 2026-03-04 00:00"
    )
    [refused] = [f for f in report.files if f.status == "quarantined"]
    assert refused.file_name == "margins.parquet" and "outside [0, 1]" in (refused.reason or "")
    estimated = {(r["chunk_start"][:10], r["metric"]) for r in history(engine, "press")}
    for day in (0, 1, 3, 4):
        assert (f"2026-03-0{2 + day}", "roc_auc") in estimated
    assert ("2026-03-04", "recall") in estimated and ("2026-03-04", "roc_auc") not in estimated
    measured = {start.date().isoformat() for start, _ in drift_figures(engine)}
    assert {"2026-03-04", "2026-03-05"} <= measured, "the one-row and one-class chunks"
    ws.drop(days[5], "day5.parquet")
    cycle(ws, engine)  # verified again; the one-row chunk is not estimated again


def test_a_backlog_is_taken_in_passes_with_the_figures_of_one(
    tmp_path: Path, artifacts: Path, sqlite_url: str
) -> None:
    """`pass_rows` bounds what one pass holds in memory: 6 daily files of 800 rows in
    passes of 1,000 rows (one file each, the last pass two small ones) give the estimates,
    drift and stored rows of one pass over all of them."""
    fleet = production(6)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    stores = {}
    for name, top in (("one", ""), ("passes", "pass_rows = 1000\n")):
        ws = Workspace.create(tmp_path / name, artifacts, f"sqlite:///{tmp_path}/{name}.db")
        ws.config.write_text(top + ws.config.read_text())
        assert ws.settings().pass_rows == (1000 if top else 1_000_000)
        for index, frame in enumerate(days):
            ws.drop(frame, f"day{index}.parquet")
        ws.drop(days[5].head(100).assign(id=lambda f: f["id"] + "-late"), "day6.parquet")
        planned = inbox.passes(inbox.waiting(ws.inbox), ws.settings().pass_rows)
        assert len(planned) == (6 if top else 1) and len(planned[-1]) == (2 if top else 7)
        engine = ws.engine()
        report = cycle(ws, engine)
        assert report.rows == 6 * 800 + 100 and len(report.files) == 7
        stores[name] = (history(engine, "press"), drift_figures(engine))
    assert_same_figures(stores["passes"], stores["one"])


def assert_same_figures(mine: tuple[list, dict], theirs: tuple[list, dict]) -> None:
    """Two stores' (history, drift figures) tell the same: chunks, rows and estimates."""
    (rows, drift), (expected, expected_drift) = mine, theirs
    assert [(r["chunk_start"], r["metric"], r["rows"]) for r in rows] == [
        (r["chunk_start"], r["metric"], r["rows"]) for r in expected
    ]
    for row, other in zip(rows, expected, strict=True):
        assert row["estimated"] == pytest.approx(other["estimated"], abs=1e-12)
    assert drift.keys() == expected_drift.keys()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_bigger_than_a_pass_is_taken_in_parts_with_the_figures_of_one(
    tmp_path: Path, artifacts: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill in one file is read a part of `pass_rows` rows at a time (memory bounded
    by the part, not the file: benchmark (d) measures 10M rows in one file), each part
    recorded as a batch of its own: the figures are those of one pass, nannyml agrees
    with them (--verify), and the file sent again adds nothing."""
    fleet = production(6)
    stores = {}
    for name, top in (("whole", ""), ("parts", "pass_rows = 1000\n")):
        monkeypatch.setenv("PERFWATCH_VERIFY", "1" if top else "0")
        ws = Workspace.create(tmp_path / name, artifacts, f"sqlite:///{tmp_path}/{name}.db")
        ws.config.write_text(top + ws.config.read_text())
        ws.drop(fleet, f"backfill.{fmt}")
        engine = ws.engine()
        report = cycle(ws, engine)
        assert report.rows == 6 * 800
        stores[name] = (history(engine, "press"), drift_figures(engine))
    assert [f.file_name for f in report.files] == [
        f"backfill.{fmt} (rows {start + 1:,}-{min(start + 1000, 4800):,} of 4,800)"
        for start in range(0, 4800, 1000)
    ]
    assert [p.name for p in (ws.inbox / "processed").iterdir()] == [f"backfill.{fmt}"]
    with transaction(engine) as session:
        batches = session.exec(select(Batch)).all()
    whole = sha256_file(ws.inbox / "processed" / f"backfill.{fmt}")
    assert [(b.content_hash, b.rows, b.file_name) for b in batches] == [
        (
            f"{whole}:rows={start}-{min(start + 1000, 4800)}",
            1000 if start < 4000 else 800,
            f"backfill.{fmt}",
        )
        for start in range(0, 4800, 1000)
    ]
    assert_same_figures(stores["parts"], stores["whole"])

    ws.drop(fleet, f"again.{fmt}")  # the same bytes under another name
    again = cycle(ws, engine)
    assert [f.status for f in again.files] == ["duplicate"] * 5 and again.rows == 0
    assert not list(ws.inbox.glob(f"*.{fmt}")), "the copy left the inbox with its last part"


def test_a_bad_part_quarantines_its_file_and_keeps_the_parts_before(workspace: Workspace) -> None:
    """Scores outside [0, 1] in the third part: the first two are stored, the file goes to
    quarantine with a reason naming the rows, and the parts after are not read."""
    ws = workspace
    ws.config.write_text("pass_rows = 1000\n" + ws.config.read_text())
    fleet = production(6).assign(y_pred_proba=float("nan"))
    fleet.loc[2500, "y_pred_proba"] = 1.7
    ws.drop(fleet, "backfill.parquet")
    report = cycle(ws)
    assert [(f.status, f.rows) for f in report.files] == [
        ("ingested", 1000),
        ("ingested", 1000),
        ("quarantined", 0),
    ]
    reason = report.files[2].reason or ""
    assert reason.startswith("rows 2,001-3,000 of 4,800: column 'y_pred_proba' holds 1 values")
    assert "the rows before them were ingested" in reason
    kept = ws.inbox / "quarantine" / "backfill.parquet"
    assert kept.is_file() and reason in kept.with_name("backfill.parquet.reason.txt").read_text()
    assert report.rows == 2000 and not list(ws.inbox.glob("*.parquet"))


def test_the_weighted_estimator_is_used_when_configured_and_verified_against_nannyml(
    tmp_path: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`estimator = "weighted"`: each chunk's estimate from its own calibration, also for
    chunks re-estimated from the stored rows; `--verify` still checks CBPE's arithmetic."""
    monkeypatch.setenv("PERFWATCH_VERIFY", "1")
    fleet = production(5, scenario="heat_wave", shift_day=3)
    found = {}
    for estimator in ("cbpe", "weighted"):
        ws = Workspace.create(
            tmp_path / estimator,
            artifacts,
            f"sqlite:///{tmp_path / estimator / 'pw.db'}",
            extra=f'estimator = "{estimator}"',
        )
        days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
        ws.drop(pd.concat(days[:3]).drop(columns=[TARGET]), "first.parquet")
        cycle(ws)
        ws.drop(pd.concat(days[3:]).drop(columns=[TARGET]), "then.parquet")
        cycle(ws)  # day 3 (read back from the store) and day 4 become complete
        found[estimator] = {
            r["chunk_start"]: r["estimated"]
            for r in history(ws.engine(), "press")
            if r["metric"] == "roc_auc" and not r["provisional"]
        }
    cbpe, weighted = found["cbpe"], found["weighted"]
    assert cbpe.keys() == weighted.keys() and len(cbpe) == 4
    assert all(cbpe[c] != weighted[c] for c in cbpe), "every chunk has its own calibration"
    stable = sorted(cbpe)[:3]
    assert all(abs(cbpe[c] - weighted[c]) < 0.03 for c in stable), "like the reference: alike"
