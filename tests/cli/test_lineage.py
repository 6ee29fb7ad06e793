"""OpenLineage run events (services.lineage) received by a catalog over HTTP, from the
real CLI: each validated against the OpenLineage JSON schema and the standard facets it
uses (tests/data/openlineage/), and delivered once after a SIGKILL between the cycle's
commit and the send."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from perfwatch.simulate.fleet import TARGET
from tests.cli.test_cli import perfwatch
from tests.services.test_notify import Hook
from tests.services.test_real_data import census, census_deployment  # noqa: F401  (a fixture)
from tests.workspace import Workspace, production

pytestmark = pytest.mark.slow
SCHEMAS = Path(__file__).parents[1] / "data" / "openlineage"


def registry() -> Registry:
    documents = [json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")]
    return Registry().with_resources(
        (document["$id"], Resource.from_contents(document)) for document in documents
    )


def validate(event: dict[str, Any]) -> None:
    """The event against RunEvent, and each standard facet against its own schema."""
    schemas = registry()
    core = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    Draft202012Validator({"$ref": core}, registry=schemas).validate(event)
    facets = [*event["run"]["facets"].values(), *event["job"]["facets"].values()]
    for dataset in event["inputs"] + event["outputs"]:
        facets += dataset["facets"].values()
        facets += dataset.get("inputFacets", {}).values()
        facets += dataset.get("outputFacets", {}).values()
    for facet in facets:
        assert facet["_producer"] and facet["_schemaURL"]
        if facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/"):
            Draft202012Validator({"$ref": facet["_schemaURL"]}, registry=schemas).validate(facet)


@pytest.fixture
def catalog() -> Any:
    receiver = Hook().start()
    yield receiver
    receiver.stop()


def lineage_workspace(tmp_path: Path, artifacts: Path, catalog: Hook) -> Workspace:
    url = f"http://127.0.0.1:{catalog.port}/api/v1/lineage"
    extra = f'[lineage]\ntransport = "http"\nurl = "{url}"\nnamespace = "plant-7"\n'
    return Workspace.create(tmp_path / "ws", artifacts, f"sqlite:///{tmp_path / 's.db'}", extra)


def test_cycles_and_a_retrain_are_runs_a_catalog_receives_valid(
    tmp_path: Path, artifacts: Path, catalog: Hook
) -> None:
    ws = lineage_workspace(tmp_path, artifacts, catalog)
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    ws.drop_days(pd.concat(days))
    ws.drop_labels(pd.concat(days[:14])[["id", TARGET]], "log.parquet")
    assert perfwatch("init", config=ws.config).returncode == 0
    ran = perfwatch("run", "--once", "--no-retrain", config=ws.config)
    assert ran.returncode == 0, ran.stderr
    assert "notifications: 2 delivered" in ran.stdout
    retrained = perfwatch("retrain", "press", "--force", config=ws.config)
    assert retrained.returncode == 0, retrained.stderr
    assert perfwatch("run", "--once", "--no-retrain", config=ws.config).returncode == 0

    events = catalog.received
    for event in events:
        validate(event)
    kinds = [(e["job"]["name"], e["eventType"]) for e in events]
    assert kinds == [
        ("press.cycle", "START"),
        ("press.cycle", "COMPLETE"),
        ("press.retrain", "START"),
        ("press.retrain", "COMPLETE"),
    ], "the second cycle took in nothing: not a run worth telling"
    assert {e["job"]["namespace"] for e in events} == {"plant-7"}
    start, complete = events[0], events[1]
    assert start["run"]["runId"] == complete["run"]["runId"]
    inputs = {Path(d["name"]).name: d for d in complete["inputs"]}
    assert set(inputs) == {f"{day.timestamp.dt.date.iloc[0]}.parquet" for day in days} | {
        "log.parquet"
    }
    first = inputs[f"{days[0].timestamp.dt.date.iloc[0]}.parquet"]
    assert first["inputFacets"]["inputStatistics"]["rowCount"] == len(days[0])
    assert len(first["facets"]["version"]["datasetVersion"]) == 64, "the file's sha256"
    [estimates] = complete["outputs"]
    assert estimates["name"] == "press.estimates"
    assert set(estimates["facets"]["perfwatch_estimates"]["newest"]) == {"roc_auc", "f1", "recall"}
    assert complete["run"]["facets"]["perfwatch"]["rows"] == len(fleet)

    retrain = events[3]
    figures = retrain["run"]["facets"]["perfwatch"]
    assert figures["decision"] == "promoted" and figures["version"] == 2
    assert figures["gate"]["decision"] == "promoted"
    names = [Path(d["name"]).name for d in retrain["inputs"]]
    assert names == ["train.parquet", "press.production_rows"]
    [artifact] = retrain["outputs"]
    assert artifact["facets"]["perfwatch_version"]["version"] == 2
    models = json.loads(perfwatch("models", "press", "--json", config=ws.config).stdout)
    [v2] = [v for v in models["versions"] if v["version"] == 2]
    assert artifact["facets"]["version"]["datasetVersion"] == v2["artifact_sha256"]


def test_events_survive_a_kill_between_the_cycles_commit_and_the_send(
    tmp_path: Path, artifacts: Path, catalog: Hook
) -> None:
    ws = lineage_workspace(tmp_path, artifacts, catalog)
    ws.drop_days(production(2))
    assert perfwatch("init", config=ws.config).returncode == 0
    killed = perfwatch(
        "run",
        "--once",
        config=ws.config,
        env={"PERFWATCH_FAULTS": "kill@delivering notifications"},
    )
    assert killed.returncode == -9 and "press: ok" in killed.stdout
    assert catalog.received == []
    again = perfwatch("run", "--once", config=ws.config)
    assert again.returncode == 0, again.stderr
    assert perfwatch("run", "--once", config=ws.config).returncode == 0
    sent = Counter((e["run"]["runId"], e["eventType"]) for e in catalog.received)
    assert sorted(kind for _, kind in sent) == ["COMPLETE", "START"]
    assert set(sent.values()) == {1}, "delivered once"
    for event in catalog.received:
        validate(event)


def test_census_cycles_are_told_to_a_file_as_valid_events(
    tmp_path: Path,
    census: dict[str, Any],  # noqa: F811
) -> None:
    """A model we did not make (a bare LGBMClassifier on the census' category columns),
    its three production years as three files: the cycle is one run whose inputs are
    those files, by their sha256, written as JSON lines by the `file` transport."""
    from perfwatch.config import load_settings
    from perfwatch.files import sha256_file
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.notify import deliver, watch
    from perfwatch.store import db

    columns = ["id", "timestamp", *census["features"]]
    extra = '[lineage]\ntransport = "file"\npath = "lineage/events.jsonl"\n'
    config = census_deployment(tmp_path, census, ["roc_auc", "f1"], extra)
    hashes = {}
    for year, rows in census["production"].groupby("year"):
        rows[columns].to_parquet(tmp_path / "inbox" / f"{year}.parquet")
        hashes[f"{year}.parquet"] = sha256_file(tmp_path / "inbox" / f"{year}.parquet")
    settings = load_settings(config, environ={})
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    watch(engine, settings)
    assert run_cycle(engine, settings, settings.models[0]).status == "ok"
    assert deliver(engine, settings).delivered == 2
    assert deliver(engine, settings).delivered == 0, "each event once"
    lines = (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    for event in events:
        validate(event)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    inputs = {
        Path(d["name"]).name: d["facets"]["version"]["datasetVersion"] for d in events[1]["inputs"]
    }
    assert inputs == hashes
    assert events[1]["job"] == events[0]["job"] and events[1]["job"]["name"] == "employment.cycle"
    newest = events[1]["outputs"][0]["facets"]["perfwatch_estimates"]["newest"]
    assert set(newest) == {"roc_auc", "f1"}


def test_a_failed_cycle_is_a_failed_run_with_its_error(
    tmp_path: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cycle's transaction fails (an injected fault): the run's events are START and
    FAIL, the error in OpenLineage's errorMessage facet; the next cycle's run completes."""
    from perfwatch.services import ingestion
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.notify import deliver, watch

    extra = '[lineage]\ntransport = "file"\npath = "events.jsonl"\n'
    ws = Workspace.create(tmp_path / "ws", artifacts, f"sqlite:///{tmp_path / 's.db'}", extra)
    ws.drop_days(production(1))
    settings, engine = ws.settings(), ws.engine()
    watch(engine, settings)

    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected fault: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(ingestion, "_record_chunks_and_findings", fail)
        assert run_cycle(engine, settings, settings.models[0]).status == "failed"
    assert run_cycle(engine, settings, settings.models[0]).status == "ok"
    assert deliver(engine, settings).delivered == 4
    events = [json.loads(line) for line in (ws.root / "events.jsonl").read_text().splitlines()]
    for event in events:
        validate(event)
    assert [e["eventType"] for e in events] == ["START", "FAIL", "START", "COMPLETE"]
    failed = events[1]["run"]["facets"]
    assert "injected fault: disk full" in failed["errorMessage"]["message"]
    assert failed["perfwatch"]["status"] == "failed"
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"] != events[2]["run"]["runId"]
