"""Bad input gets a clear error and loses nothing: each case of issue 2, one test."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from perfwatch.ingest import inbox
from perfwatch.services import ingestion
from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.store import queries, reads
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch
from tests.workspace import Workspace, production


def cycle(ws: Workspace) -> CycleReport:
    settings = ws.settings()
    return run_cycle(ws.engine(), settings, settings.models[0])


def one_day(day: int = 0, seed: int = 5) -> pd.DataFrame:
    return production(1, start_day=day, seed=seed)


def quarantined(ws: Workspace, name: str) -> str:
    """The reason a file was quarantined; checks the file itself is kept beside it."""
    kept = ws.inbox / "quarantine" / name
    assert kept.is_file(), f"{name} must be kept in quarantine/"
    reason = (ws.inbox / "quarantine" / f"{name}.reason.txt").read_text()
    with ws.engine().connect() as connection:
        stored = reads.quarantined(connection, reads.model_ids(connection)["press"], limit=50)
    assert any(b["file_name"] == name and b["reason"] == reason.strip() for b in stored)
    return reason


def test_empty_file(sqlite_workspace: Workspace) -> None:
    (sqlite_workspace.inbox).mkdir(parents=True)
    (sqlite_workspace.inbox / "empty.csv").touch()
    report = cycle(sqlite_workspace)
    assert report.status == "ok" and report.files[0].status == "quarantined"
    assert "is empty" in quarantined(sqlite_workspace, "empty.csv")


def test_truncated_parquet(sqlite_workspace: Workspace) -> None:
    whole = sqlite_workspace.drop(one_day(), "day.parquet")
    payload = whole.read_bytes()
    whole.write_bytes(payload[: len(payload) // 2])
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    reason = quarantined(sqlite_workspace, "day.parquet")
    assert "not a readable Parquet file" in reason and "truncated" in reason


def test_csv_with_text_in_a_numeric_column(sqlite_workspace: Workspace) -> None:
    rows = one_day().astype({"torque": object})
    rows.loc[rows.index[41], "torque"] = "ERR:overload"
    sqlite_workspace.drop(rows, "day.csv")
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    reason = quarantined(sqlite_workspace, "day.csv")
    assert "'torque' holds text where numbers are expected" in reason
    assert "row 42" in reason and "ERR:overload" in reason
    [listed] = model_status(sqlite_workspace.engine(), ["press"])[0]["quarantined"]
    assert listed["fixed_at"] is None
    sqlite_workspace.drop(one_day(), "day.csv")  # the producer's fixed copy
    assert cycle(sqlite_workspace).files[0].status == "ingested"
    [listed] = model_status(sqlite_workspace.engine(), ["press"])[0]["quarantined"]
    assert listed["file"] == "day.csv" and listed["fixed_at"] >= listed["at"]


def test_csv_with_numbers_is_ingested_like_parquet(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop(one_day(), "day.csv")
    report = cycle(sqlite_workspace)
    assert report.files[0].status == "ingested" and report.rows == 800


def test_a_semicolon_file_names_its_delimiter_not_truncation(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.inbox.mkdir()
    one_day().to_csv(sqlite_workspace.inbox / "day.csv", sep=";", decimal=",", index=False)
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    reason = quarantined(sqlite_workspace, "day.csv")
    assert "looks separated by ';'" in reason and "delimiter = ';'" in reason
    assert "truncated" not in reason


def test_a_decimal_comma_names_the_setting(sqlite_workspace: Workspace) -> None:
    rows = one_day()
    sqlite_workspace.inbox.mkdir()
    rows.assign(air_temp=rows["air_temp"].map(lambda v: f"{v:.2f}".replace(".", ","))).to_csv(
        sqlite_workspace.inbox / "day.csv", index=False
    )
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    assert "decimal = ','" in quarantined(sqlite_workspace, "day.csv")


def test_reader_options_read_what_other_tools_write(
    tmp_path: Path, artifacts: Path, sqlite_url: str
) -> None:
    """A semicolon CSV with decimal commas and day-first times; epochs in milliseconds."""
    options = (
        '[models.read]\ndelimiter = ";"\ndecimal = ","\ntimestamp_format = "%d/%m/%Y %H:%M:%S"'
    )
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, options)
    rows = one_day()
    for folder in ("ws", "epochs", "unset"):
        (tmp_path / folder / "inbox").mkdir(parents=True)
    written = rows.assign(timestamp=rows["timestamp"].dt.strftime("%d/%m/%Y %H:%M:%S"))
    written.to_csv(ws.inbox / "day.csv", sep=";", decimal=",", index=False)
    report = cycle(ws)
    assert report.files[0].status == "ingested" and report.rows == 800
    stored = pd.read_parquet(next((ws.root / "var" / "batches").rglob("*.parquet")))
    assert stored["air_temp"].tolist() == pytest.approx(rows["air_temp"].tolist())
    assert stored["timestamp"].tolist() == rows["timestamp"].dt.floor("s").tolist()

    epochs = Workspace.create(
        tmp_path / "epochs",
        artifacts,
        f"sqlite:///{tmp_path / 'epochs.db'}",
        '[models.read]\ntimestamp_unit = "ms"',
    )
    rows.assign(timestamp=rows["timestamp"].astype("int64") // 1_000_000).to_csv(
        epochs.inbox / "day.csv", index=False
    )
    assert cycle(epochs).rows == 800
    unset = Workspace.create(tmp_path / "unset", artifacts, f"sqlite:///{tmp_path / 'unset.db'}")
    rows.assign(timestamp=rows["timestamp"].astype("int64") // 10**9).to_csv(
        unset.inbox / "day.csv", index=False
    )
    assert cycle(unset).files[0].status == "quarantined"
    assert "timestamp_unit = 's'" in quarantined(unset, "day.csv")


def test_missing_feature_column(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop(one_day().drop(columns=["tool_wear"]), "day.parquet")
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    assert "missing column 'tool_wear'" in quarantined(sqlite_workspace, "day.parquet")


def test_extra_column_is_accepted_and_ignored(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop(one_day().assign(operator="anna"), "day.parquet")
    report = cycle(sqlite_workspace)
    assert report.files[0].status == "ingested"
    stored = next((sqlite_workspace.root / "var" / "batches" / "press").glob("*.parquet"))
    assert "operator" not in pd.read_parquet(stored).columns


def _findings(ws: Workspace) -> dict[tuple[str, str], int]:
    with transaction(ws.engine()) as session:
        model = queries.find_model(session=session, name="press")
        chunks = queries.chunk_row_counts(session=session, model_id=model.id)
    found: dict[tuple[str, str], int] = {}
    with ws.engine().connect() as connection:
        for start in chunks:
            for column, kind, count in reads.findings_in_chunk(connection, model.id, start):
                found[(column, kind)] = found.get((column, kind), 0) + count
    return found


def test_duplicated_ids_inside_a_batch(sqlite_workspace: Workspace) -> None:
    rows = one_day()
    sqlite_workspace.drop(pd.concat([rows, rows.iloc[:25]]), "day.parquet")
    report = cycle(sqlite_workspace)
    assert report.rows == 800
    assert _findings(sqlite_workspace)[("id", "duplicate_id")] == 25


def test_duplicated_ids_across_batches(sqlite_workspace: Workspace) -> None:
    rows = one_day()
    sqlite_workspace.drop(rows.iloc[:500], "morning.parquet")
    sqlite_workspace.drop(rows.iloc[400:], "retry.parquet")  # 100 rows sent again
    report = cycle(sqlite_workspace)
    assert [f.rows for f in report.files] == [500, 300]
    assert _findings(sqlite_workspace)[("id", "duplicate_id")] == 100
    with transaction(sqlite_workspace.engine()) as session:
        retry = session.exec(select(Batch).where(Batch.file_name == "retry.parquet")).one()
    assert (retry.rows, retry.rows_dropped) == (300, 100)
    assert model_status(sqlite_workspace.engine(), ["press"])[0]["rows_ingested"] == 800


def test_timestamps_without_a_zone_are_taken_as_utc(tmp_path: Path, artifacts: Path) -> None:
    rows = one_day()
    zoned = Workspace.create(tmp_path / "a", artifacts, f"sqlite:///{tmp_path}/a.db")
    naive = Workspace.create(tmp_path / "b", artifacts, f"sqlite:///{tmp_path}/b.db")
    zoned.drop(rows, "day.csv")
    naive.drop(rows.assign(timestamp=rows.timestamp.dt.tz_localize(None)), "day.csv")
    with open(naive.inbox / "day.csv") as handle:
        assert "+00:00" not in handle.read()
    cycle(zoned), cycle(naive)
    assert history(naive.engine(), "press") and [
        (r["chunk_start"], r["estimated"]) for r in history(naive.engine(), "press")
    ] == [(r["chunk_start"], r["estimated"]) for r in history(zoned.engine(), "press")]


def test_timestamps_with_another_zone_are_converted(sqlite_workspace: Workspace) -> None:
    rows = one_day()
    sqlite_workspace.drop(
        rows.assign(timestamp=rows.timestamp.dt.tz_convert("Asia/Tokyo")), "day.parquet"
    )
    cycle(sqlite_workspace)
    starts = {r["chunk_start"] for r in history(sqlite_workspace.engine(), "press")}
    assert starts == {"2026-03-02T00:00:00+00:00"}


def test_unseen_categories_and_nulls_are_ingested_and_counted(sqlite_workspace: Workspace) -> None:
    rows = one_day()
    rows.loc[rows.index[:8], "product_type"] = "X"
    rows.loc[rows.index[10:40], "air_temp"] = None
    rows.loc[rows.index[50:53], "rpm"] = 0.0  # a stuck sensor
    sqlite_workspace.drop(rows, "day.parquet")
    report = cycle(sqlite_workspace)
    assert report.files[0].status == "ingested" and report.rows == 800
    found = _findings(sqlite_workspace)
    assert found[("product_type", "unseen_category")] == 8
    assert found[("air_temp", "null")] == 30
    assert found[("rpm", "out_of_range")] == 3
    quality = model_status(sqlite_workspace.engine(), ["press"])[0]["data_quality"]
    assert {(f["column"], f["kind"]) for f in quality} >= {("product_type", "unseen_category")}


def test_the_same_file_dropped_twice(sqlite_workspace: Workspace) -> None:
    first = sqlite_workspace.drop(one_day(), "day.parquet")
    shutil.copy(first, sqlite_workspace.inbox / "day-again.parquet")
    report = cycle(sqlite_workspace)
    assert sorted(f.status for f in report.files) == ["duplicate", "ingested"]
    shutil.copy(sqlite_workspace.inbox / "processed" / "day.parquet", sqlite_workspace.inbox)
    assert [f.status for f in cycle(sqlite_workspace).files] == ["duplicate"]
    status = model_status(sqlite_workspace.engine(), ["press"])[0]
    assert status["batches_ingested"] == 1 and status["rows_ingested"] == 800
    assert len(list((sqlite_workspace.inbox / "processed").iterdir())) == 3, "nothing lost"


def test_a_file_of_rows_already_stored_is_processed_as_duplicates(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    rows = one_day()
    ws.drop(rows, "day.parquet")
    assert cycle(ws).status == "ok"
    ws.drop(rows, "day-resent.csv")  # the same rows, re-sent in another format
    ws.drop(rows.iloc[100:300], "day-part.parquet")  # a subset of them
    report = cycle(ws)
    assert report.status == "ok", report.error
    assert [(f.file_name, f.status, f.rows) for f in report.files] == [
        ("day-part.parquet", "ingested", 0),
        ("day-resent.csv", "ingested", 0),
    ]
    assert not list(ws.inbox.glob("*.*")), "nothing left to stall the inbox"
    assert _findings(ws)[("id", "duplicate_id")] == 1000
    status = model_status(ws.engine(), ["press"])[0]
    assert status["rows_ingested"] == 800 and status["last_cycle"]["status"] == "ok"


def test_a_served_score_without_a_served_prediction_is_thresholded(
    sqlite_workspace: Workspace,
) -> None:
    rows = one_day().assign(y_pred_proba=[0.2, 0.7] * 400)
    sqlite_workspace.drop(rows, "day.parquet")
    assert cycle(sqlite_workspace).status == "ok"
    stored = pd.read_parquet(next((sqlite_workspace.root / "var" / "batches").rglob("*.parquet")))
    assert stored["y_pred"].tolist() == [0, 1] * 400


def test_rows_perfwatch_scores_are_predicted_at_the_decision_threshold(
    tmp_path: Path, artifacts: Path, sqlite_url: str
) -> None:
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, "decision_threshold = 0.3")
    ws.drop(one_day().assign(y_pred_proba=[0.2, 0.4] * 400), "served.parquet")
    ws.drop(production(1, start_day=1), "unscored.parquet")
    assert cycle(ws).status == "ok"
    stored = pd.read_parquet(next((ws.root / "var" / "batches").rglob("*.parquet")))
    served = stored[stored["y_pred_proba"].isin([0.2, 0.4])]
    assert served["y_pred"].tolist() == [0, 1] * 400
    scored = stored.drop(served.index)
    assert ((scored["y_pred_proba"] >= 0.3) == (scored["y_pred"] == 1)).all()
    assert ((scored["y_pred_proba"] >= 0.3) & (scored["y_pred_proba"] < 0.5)).any()


def test_served_scores_outside_0_1_are_rejected(sqlite_workspace: Workspace) -> None:
    rows = one_day().assign(y_pred_proba=0.2, y_pred=0)
    rows.loc[rows.index[3], "y_pred_proba"] = 37.5  # a percentage, or a raw margin
    sqlite_workspace.drop(rows, "day.parquet")
    assert cycle(sqlite_workspace).files[0].status == "quarantined"
    assert "outside [0, 1]" in quarantined(sqlite_workspace, "day.parquet")


def test_served_scores_are_used_as_served(sqlite_workspace: Workspace) -> None:
    rows = one_day().assign(y_pred_proba=0.2, y_pred=0)
    sqlite_workspace.drop(rows, "day.parquet")
    cycle(sqlite_workspace)
    stored = pd.read_parquet(next((sqlite_workspace.root / "var" / "batches").rglob("*.parquet")))
    assert (stored["y_pred_proba"] == 0.2).all()


def test_hidden_files_are_not_read(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop(one_day(), ".day.parquet.partial")
    sqlite_workspace.drop(one_day(), ".day.parquet")
    assert cycle(sqlite_workspace).files == []
    assert (sqlite_workspace.inbox / ".day.parquet").exists()


def test_a_model_file_whose_hash_no_longer_matches(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop(one_day(0), "monday.parquet")
    assert cycle(ws).status == "ok"
    artifact = ws.root / "var" / "models" / "press" / "v1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    ws.drop(one_day(1, seed=6), "tuesday.parquet")
    report = cycle(ws)
    assert report.status == "failed"
    assert "changed since it was registered" in report.error and "refusing" in report.error
    assert (ws.inbox / "tuesday.parquet").exists(), "the batch waits; nothing is lost"


def test_killed_after_commit_before_the_move_duplicates_nothing(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    ws.drop(one_day(), "day.parquet")

    def die(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("killed")  # the process ends between commit and move

    with monkeypatch.context() as patch:
        patch.setattr(inbox, "move_into", die)
        with pytest.raises(SystemExit):
            cycle(ws)
    assert (ws.inbox / "day.parquet").exists()
    report = cycle(ws)
    assert [f.status for f in report.files] == ["duplicate"]
    status = model_status(ws.engine(), ["press"])[0]
    assert status["rows_ingested"] == 800 and status["batches_ingested"] == 1
    assert len(history(ws.engine(), "press")) == 3, "the next cycle caught up the estimates"
    assert not (ws.inbox / "day.parquet").exists()


def test_killed_before_commit_loses_nothing(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    ws.drop(one_day(), "day.parquet")

    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected fault: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(ingestion, "_record_chunks_and_findings", fail)  # inside the transaction
        report = cycle(ws)
    assert report.status == "failed" and "injected fault" in report.error
    assert (ws.inbox / "day.parquet").exists()
    with ws.engine().connect() as connection:
        assert reads.batch_counts(connection, reads.model_ids(connection)["press"]) == {}
    report = cycle(ws)
    assert [f.status for f in report.files] == ["ingested"] and report.rows == 800


def test_the_estimator_is_fitted_once_and_refused_when_changed(sqlite_workspace: Workspace) -> None:
    """Fitted at registration, its figures stored with the version and reused; the pickled
    nannyml estimator behind them is refused, when it is needed again, if it changed."""
    from perfwatch.store import queries
    from perfwatch.store.db import transaction

    ws = sqlite_workspace
    ws.drop(one_day(0), "monday.parquet")
    assert cycle(ws).status == "ok"
    engine = ws.engine()

    def stored() -> str | None:
        with transaction(engine) as session:
            return queries.champion(session=session, model_id=1).fitted

    estimator = ws.root / "var" / "models" / "press" / "v1" / "cbpe.pkl"
    fitted = (estimator.stat().st_mtime_ns, estimator.read_bytes(), stored())
    ws.drop(one_day(1, seed=6), "tuesday.parquet")
    assert cycle(ws).status == "ok"
    now = (estimator.stat().st_mtime_ns, estimator.read_bytes(), stored())
    assert now == fitted, "reused, not refit"
    estimator.write_bytes(fitted[1] + b"x")
    with transaction(engine) as session:  # a version from before the figures were stored
        version = queries.champion(session=session, model_id=1)
        version.fitted = None
        session.add(version)
    ws.drop(one_day(2, seed=7), "wednesday.parquet")
    report = cycle(ws)
    assert report.status == "failed" and "CBPE estimator" in report.error
    assert (ws.inbox / "wednesday.parquet").exists()


def test_a_file_that_breaks_the_reader_is_quarantined_and_the_rest_goes_on(
    sqlite_workspace: Workspace,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ws = sqlite_workspace
    ws.drop(one_day(0), "monday.parquet")
    odd = pa.Table.from_pandas(one_day(1, seed=6), preserve_index=False)
    variant = odd.schema.get_field_index("product_type")
    nested = pa.array([{"code": "L", "line": 3}] * odd.num_rows)  # a struct, not a category
    pq.write_table(odd.set_column(variant, "product_type", nested), ws.inbox / "odd.parquet")
    report = cycle(ws)
    assert report.status == "ok", report.error
    assert {f.file_name: f.status for f in report.files} == {
        "monday.parquet": "ingested",
        "odd.parquet": "quarantined",
    }
    assert "product_type" in quarantined(ws, "odd.parquet")


def test_an_unforeseen_reader_failure_quarantines_only_that_file(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfwatch.ingest import rows

    ws = sqlite_workspace
    ws.drop(one_day(0), "monday.parquet")
    ws.drop(one_day(1, seed=6), "tuesday.parquet")
    real = rows.read_batch

    def flaky(path: Path, **kwargs: object) -> object:
        if path.name == "tuesday.parquet":
            raise MemoryError("injected fault")
        return real(path, **kwargs)

    monkeypatch.setattr(rows, "read_batch", flaky)
    report = cycle(ws)
    assert report.status == "ok", report.error
    assert {f.file_name: f.status for f in report.files} == {
        "monday.parquet": "ingested",
        "tuesday.parquet": "quarantined",
    }
    reason = quarantined(ws, "tuesday.parquet")
    assert "MemoryError: injected fault" in reason and "drop it again" in reason


def test_a_file_quarantined_for_the_config_is_ingested_once_the_config_is_fixed(
    tmp_path: Path, artifacts: Path
) -> None:
    """The cause was the model's config, not the file: the same file, sent again after the
    fix, is read again and ingested, its quarantine record replaced. Sent again unchanged
    before a fix (or left in the inbox by a crash after its record committed), it is the
    same decision: a duplicate, recorded once."""
    ws = Workspace.create(tmp_path / "ws", artifacts, f"sqlite:///{tmp_path / 'ws.db'}")
    rows = one_day()
    ws.inbox.mkdir()
    in_seconds = rows.assign(timestamp=rows["timestamp"].astype("int64") // 10**9)
    in_seconds.to_csv(ws.inbox / "day.csv", index=False)
    assert [f.status for f in cycle(ws).files] == ["quarantined"]
    reason = quarantined(ws, "day.csv")

    shutil.move(ws.inbox / "quarantine" / "day.csv", ws.inbox / "day.csv")  # sent again
    assert [f.status for f in cycle(ws).files] == ["duplicate"]
    assert quarantined(ws, "day.csv") == reason
    [listed] = model_status(ws.engine(), ["press"])[0]["quarantined"]
    assert listed["reason"] == reason.strip()

    ws.config.write_text(ws.config.read_text() + '[models.read]\ntimestamp_unit = "s"\n')
    shutil.move(ws.inbox / "quarantine" / "day.csv", ws.inbox / "day.csv")
    report = cycle(ws)
    assert [f.status for f in report.files] == ["ingested"] and report.rows == 800
    status = model_status(ws.engine(), ["press"])[0]
    assert status["batches_ingested"] == 1 and status["batches_quarantined"] == 0
    assert status["quarantined"] == [] and status["rows_ingested"] == 800
    assert (ws.inbox / "processed" / "day.csv").is_file()


def test_killed_after_a_quarantine_commit_before_the_move_records_it_once(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    ws.inbox.mkdir()
    (ws.inbox / "empty.csv").touch()

    def die(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(inbox, "move_into", die)
        with pytest.raises(SystemExit):
            cycle(ws)
    assert [f.status for f in cycle(ws).files] == ["duplicate"]
    assert "is empty" in quarantined(ws, "empty.csv")
    assert model_status(ws.engine(), ["press"])[0]["batches_quarantined"] == 1


def test_a_moved_deployment_keeps_its_history(tmp_path: Path, artifacts: Path) -> None:
    first = Workspace.create(tmp_path / "here", artifacts, "sqlite:///var/perfwatch.db")
    first.drop_days(production(2))
    assert cycle(first).status == "ok"
    shutil.move(tmp_path / "here", tmp_path / "there")  # a new disk, a container volume
    moved = Workspace(
        tmp_path / "there", tmp_path / "there" / "perfwatch.toml", "sqlite:///var/perfwatch.db"
    )
    late = one_day(0, seed=9)
    late["id"] = "late-" + late["id"]
    moved.drop(late, "late-monday.parquet")  # re-estimating Monday reads its stored rows
    report = cycle(moved)
    assert report.status == "ok", report.error
    monday = next(r for r in history(moved.engine(), "press") if r["metric"] == "roc_auc")
    assert monday["rows"] == 1600
    with transaction(moved.engine()) as session:
        paths = [b.stored_path for b in session.exec(select(Batch)).all()]
    assert paths and not any(Path(p).is_absolute() for p in paths)
