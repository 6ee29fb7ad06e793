"""The real `perfwatch` command in a subprocess, as a user or a script runs it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from perfwatch.simulate.fleet import TARGET
from tests.workspace import Workspace, production

pytestmark = pytest.mark.slow


def perfwatch(
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "perfwatch"]
    if config is not None:
        command += ["--config", str(config)]
    environment = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "COLUMNS": "120", **(env or {})}
    environment.pop("PERFWATCH_CONFIG", None)
    environment.pop("PERFWATCH_STORE", None)
    environment.update(env or {})
    return subprocess.run(
        command + list(args), capture_output=True, text=True, env=environment, cwd=cwd, timeout=300
    )


def minimal_config(folder: Path, extra: str = "") -> Path:
    """A valid config with one model and no files: enough for errors before any cycle."""
    config = folder / "perfwatch.toml"
    config.write_text(
        '[[models]]\nname = "m"\ntarget = "y"\nfeatures = ["a"]\ninbox = "i"\n' + extra
    )
    return config


def test_init_run_status_history(workspace: Workspace) -> None:
    ws = workspace
    assert perfwatch("init", config=ws.config).returncode == 0
    ws.drop_days(production(12, scenario="covariate_shift", shift_day=4))
    run = perfwatch("run", "--once", config=ws.config)
    assert run.returncode == 0, run.stderr
    assert "press: ok · 12 batch(es), 9,600 rows · 0 label(s)" in run.stdout
    assert "alert opened: performance · roc_auc" in run.stdout

    status = perfwatch("status", "--json", config=ws.config)
    assert status.returncode == 0, status.stderr
    model = json.loads(status.stdout)["models"][0]
    for key in (
        "name",
        "champion_version",
        "last_cycle",
        "batches_ingested",
        "batches_quarantined",
        "rows_ingested",
        "latest_estimate",
        "latest_realized",
        "alerts",
        "retrain",
    ):
        assert key in model
    assert model["champion_version"] == 1 and model["rows_ingested"] == 9600
    assert model["last_cycle"]["status"] == "ok" and model["last_cycle"]["error"] is None
    assert model["last_cycle"]["finished_at"].endswith("+00:00")
    metrics = model["latest_estimate"]["metrics"]
    assert set(metrics) == {"roc_auc", "f1", "recall"}
    assert set(metrics["roc_auc"]) >= {"value", "lower", "upper", "threshold", "alert"}
    assert model["alerts"], "the shifted fleet has an open performance alert"
    assert perfwatch("status", "--check", config=ws.config).returncode == 1

    screen = perfwatch("status", config=ws.config)
    assert screen.returncode == 0 and "press" in screen.stdout and "ALERT" in screen.stdout
    assert "latest complete chunk" in screen.stdout

    rows = json.loads(perfwatch("history", "press", "--json", config=ws.config).stdout)
    assert len(rows) == 12 * 3
    for key in (
        "chunk_start",
        "chunk_end",
        "model_version",
        "metric",
        "estimated",
        "lower",
        "upper",
        "threshold",
        "bar",
        "alert",
        "realized",
        "label_coverage",
        "concept_drift",
    ):
        assert key in rows[0]
    csv_out = perfwatch("history", "press", "--metric", "roc_auc", "--csv", config=ws.config)
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("chunk_start,chunk_end,model_version,metric,estimated")
    assert len(lines) == 1 + 12
    narrow = perfwatch("history", "press", config=ws.config, env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80 and "…" not in narrow
    assert narrow.count("2026-03-") == 12 * 3, "every row keeps its whole date"


def test_labels_show_realized_performance_and_the_concept_verdict(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    fleet = production(12, scenario="concept_drift", shift_day=4, runs_per_day=2_000)
    ws.drop_days(fleet)
    labeled = fleet[fleet.timestamp < fleet.timestamp.max().normalize()]
    ws.drop_labels(labeled[["id", "failure"]], "maintenance-log.csv")
    # --verify: nannyml recomputes every estimate and realized metric, and agrees
    run = perfwatch("run", "--once", "--verify", config=ws.config)
    assert run.returncode == 0, run.stderr
    assert f"{len(labeled):,} label(s)" in run.stdout and "11 judged" in run.stdout

    model = json.loads(perfwatch("status", "--json", config=ws.config).stdout)["models"][0]
    realized = model["latest_realized"]
    assert realized["label_coverage"] == 1.0
    assert all(m["value"] < m["estimated"] for m in realized["metrics"].values())
    assert any(m["concept_drift"] for m in realized["metrics"].values())
    kinds = {(a["kind"], a["metric"]) for a in model["alerts"]}
    assert ("concept_drift", "recall") in kinds
    assert not any(kind == "performance" for kind, _ in kinds), "the estimate alone is calm"
    assert perfwatch("status", "--check", config=ws.config).returncode == 1
    assert "CONCEPT DRIFT" in perfwatch("status", config=ws.config).stdout

    csv_out = perfwatch("history", "press", "--metric", "recall", "--csv", config=ws.config)
    header, *lines = csv_out.stdout.strip().splitlines()
    columns = header.split(",")
    judged = [dict(zip(columns, line.split(","), strict=True)) for line in lines]
    assert sum(row["concept_drift"] == "True" for row in judged) >= 5
    assert all(row["label_coverage"] == "1.0" for row in judged[:-1])


def test_retrain_dry_run_then_retrain(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    fleet = production(10, scenario="covariate_shift", shift_day=3)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[:6400], "log.parquet")  # 8 of 10 days
    assert perfwatch("run", "--once", "--no-retrain", config=ws.config).returncode == 0
    plan = perfwatch("retrain", "press", "--dry-run", "--json", config=ws.config)
    assert plan.returncode == 0, plan.stderr
    manifest = json.loads(plan.stdout)
    assert manifest["decision"]["state"] == "due" and manifest["decision"]["retrain"]
    assert sum(b["labeled_rows"] for b in manifest["batches"]) == 6400
    assert len(manifest["batches"]) == 8
    assert manifest["holdout"] == {"rows": 800, "chunks": 1}  # the newest labeled day
    assert manifest["appended_rows"] == 5600 and not manifest["problem"]
    screen = perfwatch("retrain", "press", "--dry-run", config=ws.config)
    assert "due" in screen.stdout and "5,600 labeled production rows" in screen.stdout
    assert "held out for the gate: the newest 1 chunk(s), 800 labeled rows" in screen.stdout
    assert "retrain: due" in perfwatch("status", config=ws.config).stdout
    done = perfwatch("retrain", "press", "--json", config=ws.config)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["retrained"] and outcome["decision"] in {"promoted", "rejected"}
    gate = outcome["gate"]
    assert set(gate["champion"]) == set(gate["challenger"]) == {"roc_auc", "f1", "recall"}
    again = perfwatch("retrain", "press", config=ws.config)
    assert again.returncode == 0 and "no retrain: " in again.stdout, "cooling down now"


def test_models_lineage_rollback_and_promote(sqlite_workspace: Workspace) -> None:
    import hashlib

    ws = sqlite_workspace
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    assert perfwatch("run", "--once", "--no-retrain", config=ws.config).returncode == 0
    retrained = json.loads(perfwatch("retrain", "press", "--json", config=ws.config).stdout)
    assert retrained["decision"] == "promoted", retrained

    listed = json.loads(perfwatch("models", "press", "--json", config=ws.config).stdout)
    assert [(v["version"], v["status"]) for v in listed["versions"]] == [
        (1, "retired"),
        (2, "champion"),
    ]
    hand_off = Path(listed["champion"]["path"])
    assert hashlib.sha256(hand_off.read_bytes()).hexdigest() == listed["champion"]["sha256"]
    assert listed["versions"][1]["gate"]["primary"] == "roc_auc"

    chain = json.loads(perfwatch("lineage", "press", "--json", config=ws.config).stdout)
    assert [step["version"] for step in chain] == [2, 1]
    assert chain[0]["parent"] == 1 and chain[0]["trigger"]["kind"] == "estimate"
    assert chain[0]["training_data"]["appended_rows"] > 0
    text = perfwatch("lineage", "press", config=ws.config).stdout
    assert "press v2" in text and "learnt from" in text

    assert "rolled back from v2 to v1" in perfwatch("rollback", "press", config=ws.config).stdout
    listed = json.loads(perfwatch("models", "press", "--json", config=ws.config).stdout)
    assert listed["champion"]["version"] == 1
    v1 = listed["versions"][0]["artifact_sha256"]
    assert hashlib.sha256(hand_off.read_bytes()).hexdigest() == v1
    assert perfwatch("promote", "press", "2", config=ws.config).returncode == 0
    missing = perfwatch("promote", "press", "9", config=ws.config)
    assert missing.returncode == 1 and "has no version 9" in missing.stderr


def test_status_check_passes_without_alerts(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop_days(production(3))
    assert perfwatch("run", "--once", config=sqlite_workspace.config).returncode == 0
    assert perfwatch("status", "--check", config=sqlite_workspace.config).returncode == 0


def test_status_shows_failing_cycles_and_waiting_files_and_check_fails(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    assert perfwatch("run", "--once", config=ws.config).returncode == 0
    artifact = ws.root / "var" / "models" / "press" / "v1" / "model.joblib"
    intact = artifact.read_bytes()
    artifact.write_bytes(intact + b"tampered")  # every cycle now fails
    ws.drop_days(production(1, start_day=2))
    for _ in range(2):
        assert perfwatch("run", "--once", config=ws.config).returncode == 1

    model = json.loads(perfwatch("status", "--json", config=ws.config).stdout)["models"][0]
    assert model["state"] == "failing" and not model["alerts"]
    cycle = model["last_cycle"]
    assert cycle["status"] == "failed" and "model artifact" in cycle["error"]
    assert cycle["failed_in_a_row"] == 2 and cycle["failing_since"] <= cycle["started_at"]
    assert model["waiting"]["batches"] == 1 and model["waiting"]["labels"] == 0
    assert perfwatch("status", "--check", config=ws.config).returncode == 1
    screen = perfwatch("status", config=ws.config).stdout
    assert "CYCLE FAILING" in screen and "2 in a row" in screen
    assert "waiting: 1 batch file(s)" in screen

    artifact.write_bytes(intact)  # repaired: the next cycle takes the waiting file in
    assert perfwatch("run", "--once", config=ws.config).returncode == 0
    model = json.loads(perfwatch("status", "--json", config=ws.config).stdout)["models"][0]
    assert model["state"] != "failing" and model["waiting"]["batches"] == 0
    failure = model["last_failure"]  # what happened stays in sight for a day
    assert failure["cycles"] == 2 and "model artifact" in failure["error"]
    assert failure["first_at"] == cycle["failing_since"]
    assert failure["last_at"] == cycle["started_at"]
    screen = perfwatch("status", config=ws.config).stdout
    assert "last failure: 2 cycles at " in screen and "CYCLE FAILING" not in screen


def test_status_never_imports_heavy_libraries(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    assert perfwatch("run", "--once", config=ws.config).returncode == 0
    probe = (
        "import sys\n"
        "from perfwatch.cli import main\n"
        f"sys.argv = ['perfwatch', '--config', {str(ws.config)!r}, 'status']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        # sqlmodel too: the ORM's import alone would break the cold-status budget
        "heavy = sorted({'nannyml', 'lightgbm', 'sklearn', 'pandas', 'alembic', 'sqlmodel'}"
        " & {m.split('.')[0] for m in sys.modules})\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert "press" in result.stdout, result.stderr
    assert "HEAVY []" in result.stdout


def test_a_steady_cycle_never_imports_nannyml(sqlite_workspace: Workspace) -> None:
    """nannyml fits when a version is registered; a cycle that registers nothing applies
    what it fitted (estimates, realized metrics, drift) without importing it (issue 14)."""
    ws = sqlite_workspace
    days = production(8)
    first = days.timestamp < days.timestamp.min() + pd.Timedelta(days=6)
    ws.drop_days(days[first])
    assert perfwatch("run", "--once", config=ws.config).returncode == 0  # registers v1
    ws.drop_days(days[~first])
    ws.drop_labels(days[["id", TARGET]], "labels.parquet")
    probe = (
        "import sys\n"
        "from perfwatch.cli import main\n"
        f"sys.argv = ['perfwatch', '--config', {str(ws.config)!r}, 'run', '--once']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    print('EXIT', exit.code)\n"
        "print('NANNYML', 'nannyml' in {m.split('.')[0] for m in sys.modules})\n"
    )
    quiet = {k: v for k, v in os.environ.items() if k != "PERFWATCH_VERIFY"}  # verify imports it
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=quiet
    )
    assert "NANNYML False" in result.stdout, result.stdout + result.stderr
    history = json.loads(perfwatch("history", "press", "--json", config=ws.config).stdout)
    assert any(row["realized"] is not None for row in history), "labels were judged"
    status = json.loads(perfwatch("status", "--json", config=ws.config).stdout)["models"][0]
    assert status["last_cycle"]["status"] == "ok"


def test_a_misspelled_config_key_exits_2_with_error_and_hint(tmp_path: Path) -> None:
    config = minimal_config(tmp_path, extra='chunck = "1D"\n')
    result = perfwatch("status", config=config)
    assert result.returncode == 2
    assert "error:" in result.stderr and "unknown key 'chunck' of model 'm'" in result.stderr
    assert "hint: did you mean 'chunk'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_store_is_reported_without_its_password(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    secret = "postgresql+psycopg://perfwatch:hunter2-secret@127.0.0.1:1/perfwatch"
    result = perfwatch("status", config=config, env={"PERFWATCH_STORE": secret})
    assert result.returncode == 1
    assert (
        "error: cannot open store postgresql+psycopg://perfwatch:***@127.0.0.1:1" in result.stderr
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_init_writes_the_example_config_then_creates_the_store(tmp_path: Path) -> None:
    """In config/perfwatch.toml, with the store and folders beside config/, not in it."""
    example = (Path(__file__).parents[2] / "config" / "perfwatch.example.toml").read_text()
    printed = perfwatch("init", "--example")
    assert printed.returncode == 0 and printed.stdout == example
    first = perfwatch("init", cwd=tmp_path)
    config = tmp_path / "config" / "perfwatch.toml"
    assert first.returncode == 0 and config.is_file()
    text = config.read_text()
    assert 'store = "sqlite:///../var/perfwatch.db"' in text and 'data_dir = "../var"' in text
    assert 'inbox = "../inbox/press-failure"' in text
    assert text.replace("../", "") == example, "only the paths differ"
    second = perfwatch("init", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "var" / "perfwatch.db").is_file()
    assert (tmp_path / "inbox" / "press-failure").is_dir()
    assert not (tmp_path / "config" / "var").exists()


def test_check_finds_what_a_cycle_would_trip_on(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    import lightgbm

    from tests.services.test_model_inputs import SMALL, as_category, history, write_artifacts

    ws = sqlite_workspace
    good = perfwatch("check", "press", config=ws.config)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok      scores the reference: Pipeline scored" in good.stdout

    frame = production(1).astype({"torque": object})
    frame.loc[frame.index[3], "torque"] = "ERR:overload"
    sample = tmp_path / "sample.csv"
    frame.to_csv(sample, index=False)
    checked = json.loads(
        perfwatch("check", "press", "--sample", str(sample), "--json", config=ws.config).stdout
    )
    assert not checked["ok"]
    [problem] = [c for c in checked["checks"] if not c["ok"]]
    assert problem["check"] == "sample" and "would be quarantined" in problem["detail"]

    # a bare LGBMClassifier on a category column, the column not declared categorical
    bare = write_artifacts(
        tmp_path / "bare", as_category(history()), lightgbm.LGBMClassifier(**SMALL)
    )
    for name in ("model.joblib", "reference.parquet", "train.parquet"):
        (ws.root / "artifacts" / name).write_bytes((bare / name).read_bytes())
    ws.config.write_text(ws.config.read_text().replace('categorical = ["product_type"]', ""))
    refused = perfwatch("check", "press", config=ws.config)
    assert refused.returncode == 1
    assert "PROBLEM scores the reference" in refused.stdout
    assert "list it under 'categorical'" in refused.stdout.replace("\n", " ")
    init = perfwatch("init", config=ws.config)
    assert init.returncode == 0 and "warning: press: scores the reference" in init.stderr


def test_status_before_init_says_how_to_fix(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    result = perfwatch("status", config=config)
    assert result.returncode == 1 and "no perfwatch schema" in result.stderr
    assert "hint: run `perfwatch init`" in result.stderr
    assert not (tmp_path / "var" / "perfwatch.db").exists(), "reading creates no store"


def test_config_from_environment_variable(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    env = {"PERFWATCH_CONFIG": str(sqlite_workspace.config)}
    assert perfwatch("init", env=env, cwd=tmp_path).returncode == 0
    result = perfwatch("status", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["models"][0]["name"] == "press"


def test_register_adds_a_version(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    assert perfwatch("run", "--once", config=ws.config).returncode == 0
    art = ws.root / "artifacts"
    result = perfwatch(
        "register",
        "press",
        "--model",
        str(art / "model.joblib"),
        "--reference",
        str(art / "reference.parquet"),
        config=ws.config,
    )
    assert result.returncode == 0, result.stderr
    assert "registered version 2" in result.stdout
    status = json.loads(perfwatch("status", "--json", config=ws.config).stdout)["models"][0]
    assert status["champion_version"] == 2


def test_check_and_register_with_a_sample_judge_its_alignment(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """`check --sample`: the verdict, exit 1 when misaligned; `register --sample` refuses a
    misaligned version unless --force, and keeps the check with the version (the report
    shows it)."""
    ws = sqlite_workspace
    stable = tmp_path / "stable.parquet"
    production(2).to_parquet(stable)
    heat = tmp_path / "heat.parquet"
    production(6, scenario="heat_wave", shift_day=0).iloc[-1600:].to_parquet(heat)

    aligned = perfwatch("check", "press", "--sample", str(stable), config=ws.config)
    assert aligned.returncode == 0, aligned.stdout + aligned.stderr
    assert "alignment: ALIGNED (a sample of 1,600 rows against the training data)" in aligned.stdout
    assert "expect roc_auc about" in aligned.stdout
    checked = perfwatch("check", "press", "--sample", str(heat), "--json", config=ws.config)
    assert checked.returncode == 1
    figures = json.loads(checked.stdout)
    assert not figures["ok"] and all(c["ok"] for c in figures["checks"])
    alignment = figures["alignment"]
    assert alignment["verdict"] == "misaligned"
    assert {f["feature"] for f in alignment["features"] if f["shifted"]} == {
        "air_temp",
        "process_temp",
    }
    assert {"p_value", "p_adjusted", "jensen_shannon", "outside", "test"} <= set(
        alignment["features"][0]
    )

    assert perfwatch("init", config=ws.config).returncode == 0
    art = ws.root / "artifacts"
    register = [
        "register",
        "press",
        "--model",
        str(art / "model.joblib"),
        "--reference",
        str(art / "reference.parquet"),
        "--sample",
        str(heat),
    ]
    refused = perfwatch(*register, config=ws.config)
    assert refused.returncode == 1 and "not registered: the check failed" in refused.stderr
    assert "alignment: MISALIGNED" in refused.stdout
    forced = perfwatch(*register, "--force", config=ws.config)
    assert forced.returncode == 0 and "registered version 1" in forced.stdout, forced.stderr
    report = perfwatch(
        "report", "press", "--output", str(tmp_path / "report.html"), config=ws.config
    )
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report.html").read_text()
    assert "Alignment before deployment" in page and "heat.parquet (1,600 rows)" in page
    assert "misaligned" in page and "features shifted: air_temp" in page


def _joblib_dict(path: Path) -> None:
    import joblib

    joblib.dump({"not": "a model"}, path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_joblib_dict, "has no predict_proba"),
        (
            lambda path: path.write_text("this is not a model\n"),
            "error: cannot load the model file",
        ),
    ],
    ids=["not-a-classifier", "not-a-pickle"],
)
def test_register_refuses_a_file_that_is_no_model(
    sqlite_workspace: Workspace, write: Any, message: str
) -> None:
    ws = sqlite_workspace
    bogus = ws.root / "bogus.joblib"
    write(bogus)
    assert perfwatch("init", config=ws.config).returncode == 0
    result = perfwatch(
        "register",
        "press",
        "--model",
        str(bogus),
        "--reference",
        str(ws.root / "artifacts" / "reference.parquet"),
        config=ws.config,
    )
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_demo_tells_the_whole_loop(tmp_path: Path) -> None:
    """The heat wave: the inputs drift, the estimate alerts, labels a week later confirm
    it (concept drift), a retrain is promoted, and realized performance comes back to
    the bar set at deployment."""
    result = perfwatch("demo", "--workspace", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the terminal's line breaks undone
    days = re.findall(r"(2026-\d\d-\d\d) +[\d,]+ rows(.*?)(?=2026-\d\d-\d\d +[\d,]+ rows|$)", text)

    def first(event: str) -> str:
        return next(day for day, said in days if event in said)

    # the estimate alerts before the labels of the hot days confirm it as concept drift
    assert first("alert opened: performance") < first("CONCEPT DRIFT")
    assert "challenger promoted" in text
    assert "extra training rows rejected: " in text, "the naive synthetic set is not learnt from"
    back = re.search(r"after the retrain: realized roc_auc ([\d.]+) .*?\(the bar: ([\d.]+)\)", text)
    assert back, text[-2000:]
    realized, bar = float(back.group(1)), float(back.group(2))
    assert realized >= bar - 0.02, "realized performance back near the bar"


def test_demo_shows_the_drop_the_alert_and_the_quarantine(tmp_path: Path) -> None:
    result = perfwatch(
        "demo",
        "--workspace",
        str(tmp_path / "demo"),
        "--days",
        "14",
        "--scenario",
        "covariate_shift",
    )
    assert result.returncode == 0, result.stderr
    assert "ALERT" in result.stdout and "quarantined" in result.stdout
    assert "version 1 checked against the first day's production" in result.stdout
    assert "alignment: ALIGNED (a sample of 2,000 rows against the training data)" in result.stdout
    page = tmp_path / "demo" / "report.html"
    assert f"report: {page}" in result.stdout.replace("\n", "")
    assert 'data-charts="6"' in page.read_text(), "3 metrics, coverage, drift, data quality"
    assert "first-day-sample.parquet (2,000 rows)" in page.read_text()
    config = tmp_path / "demo" / "perfwatch.toml"
    model = json.loads(perfwatch("status", "--json", config=config).stdout)["models"][0]
    assert model["alerts"], "covariate shift makes the estimate alert"
    assert model["batches_quarantined"] == 4
    reasons = " ".join(q["reason"] for q in model["quarantined"])
    assert "missing column 'torque'" in reasons and "is empty" in reasons
    rows = json.loads(
        perfwatch("history", "press-failure", "--metric", "roc_auc", "--json", config=config).stdout
    )
    assert rows[0]["estimated"] - min(r["estimated"] for r in rows) > 0.05, "visibly drops"


def test_demo_concept_drift_flat_estimate_realized_drop_and_verdict(tmp_path: Path) -> None:
    result = perfwatch(
        "demo", "--workspace", str(tmp_path / "demo"), "--scenario", "concept_drift", "--days", "24"
    )
    assert result.returncode == 0, result.stderr
    assert "CONCEPT DRIFT" in result.stdout and "alert opened: concept_drift" in result.stdout
    text = result.stdout.replace("\n", " ")
    said = re.findall(r"(2026-\d\d-\d\d) +[\d,]+ rows(.*?)(?=2026-\d\d-\d\d +[\d,]+ rows|$)", text)
    early = next(day for day, line in said if "alert opened: performance" in line)
    assert early < next(day for day, line in said if "CONCEPT DRIFT" in line), (
        "the early failures call it a week before the labels mature"
    )
    config = tmp_path / "demo" / "perfwatch.toml"
    model = json.loads(perfwatch("status", "--json", config=config).stdout)["models"][0]
    assert "concept_drift" in {a["kind"] for a in model["alerts"]}
    everything = json.loads(perfwatch("history", "press-failure", "--json", config=config).stdout)
    assert not any(r["alert"] for r in everything if r["model_version"] == 1), (
        "version 1's estimates never alerted: CBPE cannot see a concept change"
    )
    rows = [r for r in everything if r["metric"] == "roc_auc"]
    estimates = [r["estimated"] for r in rows]
    assert max(estimates) - min(estimates) < 0.03, "the estimate stays flat"
    drifted = [r for r in rows if r["concept_drift"]]
    assert drifted and all(r["realized"] < r["estimated"] - 0.03 for r in drifted)


def test_run_without_once_runs_cycles_and_stops_warmly_on_sigterm(
    sqlite_workspace: Workspace,
) -> None:
    import signal
    import time

    ws = sqlite_workspace
    ws.drop_days(production(2))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "perfwatch", "--config", str(ws.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the first cycle runs at start-up
            status = perfwatch("status", "--json", config=ws.config)
            if status.returncode == 0:
                cycle = json.loads(status.stdout)["models"][0]["last_cycle"]
                if cycle and cycle["status"] == "ok":
                    break
            time.sleep(1)
        else:
            pytest.fail("the daemon ran no cycle within 120 s")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert not list(ws.inbox.glob("*.parquet")), "the daemon ingested the inbox"


def test_demo_refuses_a_workspace_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "perfwatch.toml").write_text("# someone's deployment\n")
    result = perfwatch("demo", "--workspace", str(tmp_path))
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert (tmp_path / "perfwatch.toml").read_text() == "# someone's deployment\n"


def test_status_of_a_fleet_is_one_table_and_status_model_one_screen(tmp_path: Path) -> None:
    config = tmp_path / "perfwatch.toml"
    config.write_text(
        "".join(
            f'[[models]]\nname = "line{i}"\ntarget = "y"\nfeatures = ["a"]\ninbox = "i{i}"\n'
            for i in range(7)
        )
    )
    assert perfwatch("init", config=config).returncode == 0
    screen = perfwatch("status", config=config).stdout
    assert "7 models (`perfwatch status MODEL` for one)" in screen
    assert all(screen.count(f"line{i} ") == 1 for i in range(7))
    assert "7 no cycle yet" in screen and "champion:" not in screen
    one = perfwatch("status", "line3", config=config).stdout
    assert "line3 no cycle yet" in one and "champion: none registered yet" in one
