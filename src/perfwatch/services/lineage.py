"""OpenLineage run events for a data catalog (Marquez, DataHub, Atlas and others ingest
them): each monitoring cycle that took in files (or failed), and each retrain, is a run
with a START and a COMPLETE (or FAIL, or ABORT for a warm stop) event.

Like the webhook messages (services.notify), the events are derived from what the store
records (cycles, the files they recorded, the estimates they made, retrain runs and the
versions they registered) and go through the same outbox: written once (their key
deduplicates), sent with retries and backoff, never from inside a cycle, and never lost
by a crash: a process killed after a cycle committed sends its events after the restart.
A cycle's events are derived once it has finished, with their true times; a retrain's
START as soon as it runs.

perfwatch writes the events itself, following the OpenLineage 2-0-2 JSON schema
(`tests/data/openlineage/`): no client library is needed. Transports: `console` (the
log), `file` (a JSON line each, appended), `http` (POSTed as JSON, e.g. to Marquez's
`/api/v1/lineage`).
"""

import json
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.config import LineageSettings, Settings

if TYPE_CHECKING:
    from sqlmodel import Session

    from perfwatch.store.tables import Cycle, RetrainRun

log = logging.getLogger(__name__)

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "urn:perfwatch"  # a URI naming what produced the events (facets say it too)
FACET_SCHEMA = "urn:perfwatch:facets:1"
# the standard facets used, at the versions of the schema they were checked against
FACET_VERSIONS = {
    "JobTypeJobFacet": "2-0-4",
    "DatasetVersionDatasetFacet": "1-0-1",
    "InputStatisticsInputDatasetFacet": "1-0-0",
    "OutputStatisticsOutputDatasetFacet": "1-0-2",
    "ErrorMessageRunFacet": "1-0-1",
}
# a cycle's run state, as OpenLineage names it (a running or skipped cycle has no events)
ENDED = {"ok": "COMPLETE", "failed": "FAIL", "interrupted": "FAIL", "stopped": "ABORT"}

Event = tuple[str, datetime, int, str, dict[str, Any]]  # key, when, order, model, event


@dataclass(frozen=True)
class Transport:
    key: str  # the outbox's target key
    host: str  # for people: where the events go
    send: Callable[[str], str | None]  # None when sent, else why not


def transport(lineage: LineageSettings) -> Transport:
    """Where the events go, as the config says."""
    from perfwatch.services.notify import post_json

    if lineage.transport == "http":
        assert lineage.url is not None
        host = lineage.url.split("//", 1)[-1].split("/", 1)[0].rpartition("@")[2]
        send = partial(post_json, lineage.url, lineage.headers, lineage.timeout, what="lineage")
        return Transport(f"openlineage:{_digest(lineage.url)}", f"OpenLineage {host}", send)
    if lineage.transport == "file":
        assert lineage.path is not None
        path = lineage.path
        return Transport(
            f"openlineage:{_digest(str(path))}", f"OpenLineage {path}", partial(_append, path)
        )
    return Transport("openlineage:console", "OpenLineage console", _log)


def events(
    settings: Settings, session: "Session", since: datetime, done: set[str] | None = None
) -> list[Event]:
    """Every run event since then: of the cycles that took in files or did not end well,
    and of the retrains (key, when, order within a run, model, the event); a run whose
    events are all `done` (in the outbox already) is not built again."""
    from perfwatch.store import queries

    assert settings.lineage is not None
    namespace, done = settings.lineage.namespace, done or set()
    found: list[Event] = []
    for cycle, model in queries.cycles_to_tell(session=session, since=since):
        if f"lineage:cycle:{cycle.id}:{ENDED[cycle.status]}" not in done:
            found += _cycle_events(session, settings, namespace, cycle, model)
    for run, model in queries.retrains_since(session=session, since=since):
        ended = "FAIL" if run.status == "failed" else "COMPLETE"
        told = f"lineage:retrain:{run.id}:{ended if run.finished_at else 'START'}"
        if told not in done:
            found += _retrain_events(session, settings, namespace, run, model)
    return sorted(found, key=lambda e: (e[1], e[2]))


def _cycle_events(
    session: "Session", settings: Settings, namespace: str, cycle: "Cycle", model: str
) -> list[Event]:
    from perfwatch.store import queries

    assert cycle.finished_at is not None and cycle.id is not None
    window = (cycle.model_id, cycle.started_at, cycle.finished_at)
    inputs = [
        _file_input(settings, model, kind, record)
        for kind, record in queries.files_recorded_in(session=session, window=window)
    ]
    estimates = queries.estimates_made_in(session=session, window=window)
    version = max((number for number, *_ in estimates), default=None)
    outputs = [_estimates_output(namespace, model, estimates)] if estimates else []
    figures = {
        "model": model,
        "version": version,
        "status": cycle.status,
        "rows": cycle.rows,
        "batches": cycle.batches,
        "quarantined": cycle.quarantined,
        "labels": cycle.labels,
        "chunks_estimated": cycle.chunks_estimated,
        "chunks_judged": cycle.chunks_judged,
    }
    run = _run_id(namespace, model, "cycle", cycle.id, cycle.started_at)
    job = _job(namespace, f"{model}.cycle", "MONITORING_CYCLE")
    start = _event("START", cycle.started_at, run, job, {"perfwatch": _facet(figures)}, inputs)
    ended = ENDED[cycle.status]
    facets = {"perfwatch": _facet(figures)} | _error(cycle.error)
    end = _event(ended, cycle.finished_at, run, job, facets, inputs, outputs)
    key = f"lineage:cycle:{cycle.id}"
    return [
        (f"{key}:START", cycle.finished_at, 0, model, start),
        (f"{key}:{ended}", cycle.finished_at, 1, model, end),
    ]


def _retrain_events(
    session: "Session", settings: Settings, namespace: str, run: "RetrainRun", model: str
) -> list[Event]:
    from perfwatch.store import queries

    assert run.id is not None
    parent, version = queries.retrain_versions(session=session, run=run)
    manifest, gate = json.loads(run.manifest or "{}"), json.loads(run.gate or "{}")
    figures = {
        "model": model,
        "parent_version": parent.version if parent else None,
        "version": version.version if version else None,
        "trigger": run.trigger,
        "reason": run.reason,
        "status": run.status,
        "decision": run.decision,
        "gate": gate,
    }
    run_id = _run_id(namespace, model, "retrain", run.id, run.started_at)
    job = _job(namespace, f"{model}.retrain", "RETRAIN")
    key = f"lineage:retrain:{run.id}"
    start = _event("START", run.started_at, run_id, job, {"perfwatch": _facet(figures)})
    told: list[Event] = [(f"{key}:START", run.started_at, 0, model, start)]
    if run.finished_at is None:
        return told
    ended = "FAIL" if run.status == "failed" else "COMPLETE"
    inputs = _retrain_inputs(settings, namespace, model, manifest)
    outputs = [] if version is None else [_version_output(settings, model, version)]
    facets = {"perfwatch": _facet(figures)} | _error(run.error)
    end = _event(ended, run.finished_at, run_id, job, facets, inputs, outputs)
    return [*told, (f"{key}:{ended}", run.finished_at, 1, model, end)]


def _retrain_inputs(
    settings: Settings, namespace: str, model: str, manifest: dict[str, Any]
) -> list[dict[str, Any]]:
    """The training set, the production rows appended (by batch), the extra rows."""
    inputs = []
    original = manifest.get("original") or {}
    if original.get("path"):
        inputs.append(
            _dataset(_files(), _absolute(settings, original["path"]), original.get("sha256"))
            | {"inputFacets": {"inputStatistics": _statistics("InputStatistics", original["rows"])}}
        )
    if manifest.get("batches"):
        rows = _dataset(namespace, f"{model}.production_rows", None)
        rows["facets"]["perfwatch_batches"] = _facet({"batches": manifest["batches"]})
        rows["inputFacets"] = {
            "inputStatistics": _statistics("InputStatistics", manifest["appended_rows"])
        }
        inputs.append(rows)
    extra = manifest.get("extra_training_data")
    if extra:
        data = _dataset(_files(), _absolute(settings, extra["path"]), extra.get("sha256"))
        data["facets"]["perfwatch_extra"] = _facet(
            {"decision": extra["decision"], "reason": extra["reason"]}
        )
        data["inputFacets"] = {"inputStatistics": _statistics("InputStatistics", extra["rows"])}
        inputs.append(data)
    return inputs


def _version_output(settings: Settings, model: str, version: Any) -> dict[str, Any]:
    """A registered version's artifact, by its sha256."""
    path = str(Path(settings.data_dir) / version.artifact_path)
    output = _dataset(_files(), path, version.artifact_sha256)
    output["facets"]["perfwatch_version"] = _facet(
        {"model": model, "version": version.version, "status": version.status}
    )
    return output


def _file_input(settings: Settings, model: str, kind: str, record: Any) -> dict[str, Any]:
    """A batch or label file the cycle recorded, where it was moved, with its sha256."""
    declared = next((m for m in settings.models if m.name == model), None)  # or removed since
    inbox = None
    if declared is not None:
        inbox = declared.inbox if kind == "batch" else declared.labels_inbox
    folder = "quarantine" if record.status == "quarantined" else "processed"
    path = str((inbox or Path(".")) / folder / record.file_name)
    digest = record.content_hash.split(":", 1)[0]  # a part's key: <sha256>:rows=a-b
    dataset = _dataset(_files(), path, digest)
    dataset["facets"]["perfwatch_file"] = _facet(
        {"kind": kind, "status": record.status, "key": record.content_hash, "reason": record.reason}
    )
    dataset["inputFacets"] = {"inputStatistics": _statistics("InputStatistics", record.rows)}
    return dataset


def _estimates_output(
    namespace: str, model: str, estimates: list[tuple[int, datetime, str, float, bool]]
) -> dict[str, Any]:
    """The estimates the cycle made: per metric, its newest chunk's value and alert."""
    newest: dict[str, dict[str, Any]] = {}
    for version, start, metric, value, alert in estimates:
        if metric not in newest or start >= datetime.fromisoformat(newest[metric]["chunk"]):
            newest[metric] = {
                "chunk": start.isoformat(),
                "value": value,
                "alert": alert,
                "version": version,
            }
    output = _dataset(namespace, f"{model}.estimates", None)
    output["facets"]["perfwatch_estimates"] = _facet({"newest": newest})
    output["outputFacets"] = {"outputStatistics": _statistics("OutputStatistics", len(estimates))}
    return output


def _event(
    kind: str,
    when: datetime,
    run_id: str,
    job: dict[str, Any],
    run_facets: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": when.isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id, "facets": run_facets},
        "job": job,
        "inputs": inputs or [],
        "outputs": outputs or [],
    }


def _job(namespace: str, name: str, kind: str) -> dict[str, Any]:
    job_type = {
        "_producer": PRODUCER,
        "_schemaURL": _schema("JobTypeJobFacet"),
        "processingType": "BATCH",
        "integration": "PERFWATCH",
        "jobType": kind,
    }
    return {"namespace": namespace, "name": name, "facets": {"jobType": job_type}}


def _dataset(namespace: str, name: str, version: str | None) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if version:
        facets["version"] = {
            "_producer": PRODUCER,
            "_schemaURL": _schema("DatasetVersionDatasetFacet"),
            "datasetVersion": version,
        }
    return {"namespace": namespace, "name": name, "facets": facets}


def _statistics(kind: str, rows: int) -> dict[str, Any]:
    facet = f"{kind}{'Input' if kind.startswith('Input') else 'Output'}DatasetFacet"
    return {"_producer": PRODUCER, "_schemaURL": _schema(facet), "rowCount": rows}


def _schema(facet: str) -> str:
    return f"https://openlineage.io/spec/facets/{FACET_VERSIONS[facet]}/{facet}.json#/$defs/{facet}"


def _facet(fields: dict[str, Any]) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA, **fields}


def _error(message: str | None) -> dict[str, Any]:
    if not message:
        return {}
    return {
        "errorMessage": {
            "_producer": PRODUCER,
            "_schemaURL": _schema("ErrorMessageRunFacet"),
            "message": message,
            "programmingLanguage": "PYTHON",
        }
    }


def _run_id(namespace: str, model: str, kind: str, number: int, started: datetime) -> str:
    """A run's id: the same whenever it is derived again, so a resent event is the same."""
    name = f"perfwatch:{namespace}:{model}:{kind}:{number}:{started.isoformat()}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _files() -> str:
    return f"file://{socket.gethostname()}"


def _absolute(settings: Settings, path: str) -> str:
    return str(Path(path) if Path(path).is_absolute() else Path(settings.data_dir) / path)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _append(path: Path, payload: str) -> str | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as lines:
            lines.write(json.dumps(json.loads(payload), separators=(",", ":")) + "\n")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _log(payload: str) -> str | None:
    log.info("openlineage event: %s", payload)
    return None
