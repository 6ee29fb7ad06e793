"""Which version serves and which sets the bar, chosen by hand: promote, rollback,
rebaseline; and the versions listed with their gate results and lineage (registering
and loading versions is services.registry's).

Promoting swaps the champion: the version already carries its own reference set, CBPE
estimator and contract (fitted when it was registered), so estimates from the next
cycle on are that version's. The serving hand-off (`champion.joblib`) is replaced
atomically.
"""

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import col, select

from perfwatch.config import ModelSettings, Settings
from perfwatch.errors import PerfwatchError
from perfwatch.files import copy_atomically, verify
from perfwatch.services.registry import model_dir
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ModelVersion, RetrainRun

if TYPE_CHECKING:
    from sqlmodel import Session


def list_versions(engine: Engine, settings: Settings, model: ModelSettings) -> dict[str, Any]:
    """Every version with its gate results; the champion's hand-off path and sha256."""
    with transaction(engine) as session:
        model_id = _model_id(session, model)
        rows = session.exec(
            select(ModelVersion)
            .where(ModelVersion.model_id == model_id)
            .order_by(col(ModelVersion.version))
        ).all()
        runs = _runs_by_version(session, model_id)
        numbers = {v.id: v.version for v in rows}
        versions = [_describe(v, runs.get(v.id or 0), numbers) for v in rows]
    champion = next((v for v in versions if v["status"] == "champion"), None)
    return {
        "model": model.name,
        "champion": {
            "version": champion["version"] if champion else None,
            "path": str(model_dir(settings, model.name) / "champion.joblib"),
            "sha256": champion["artifact_sha256"] if champion else None,
        },
        "versions": versions,
    }


def lineage(
    engine: Engine, model: ModelSettings, version: int | None = None
) -> list[dict[str, Any]]:
    """The chain from a version (default: the champion) back to the first, newest first."""
    with transaction(engine) as session:
        model_id = _model_id(session, model)
        rows = session.exec(select(ModelVersion).where(ModelVersion.model_id == model_id)).all()
        by_number = {v.version: v for v in rows}
        numbers = {v.id: v.version for v in rows}
        runs = _runs_by_version(session, model_id)
        current = (
            by_number.get(version)
            if version is not None
            else next((v for v in rows if v.status == "champion"), None)
        )
        if current is None:
            raise PerfwatchError(
                f"model {model.name!r} has no version {version}",
                hint=f"its versions: {', '.join(str(n) for n in sorted(by_number))}",
            )
        chain = []
        while current is not None:
            step = _describe(current, runs.get(current.id or 0), numbers)
            chain.append(step)
            parent = step["parent"]
            current = by_number.get(parent) if parent is not None else None
    return chain


def promote(engine: Engine, settings: Settings, model: ModelSettings, version: int) -> int:
    """Make a version the champion (its artifact hash checked); return the old champion's."""
    with transaction(engine) as session:
        model_id = _model_id(session, model)
        target = session.exec(
            select(ModelVersion).where(
                ModelVersion.model_id == model_id, ModelVersion.version == version
            )
        ).first()
        if target is None:
            raise PerfwatchError(
                f"model {model.name!r} has no version {version}",
                hint=f"`perfwatch models {model.name}` lists them",
            )
        old = queries.champion(session=session, model_id=model_id)
        if old is not None and old.id == target.id:
            raise PerfwatchError(f"version {version} is already the champion")
        artifact = settings.data_dir / target.artifact_path
        verify(artifact, target.artifact_sha256, "model artifact")
        queries.retire_champion(session=session, model_id=model_id)
        target.status = "champion"
        session.add(target)
        previous = old.version if old is not None else 0
    # the serving hand-off follows the committed change, as on registration
    copy_atomically(artifact, model_dir(settings, model.name) / "champion.joblib")
    return previous


def rollback(engine: Engine, settings: Settings, model: ModelSettings) -> tuple[int, int]:
    """Promote the champion's parent (or the newest retired version); (from, to)."""
    chain = lineage(engine, model)
    current = chain[0]
    target = current["parent"]
    if target is None:
        listed = list_versions(engine, settings, model)["versions"]
        retired = [v["version"] for v in listed if v["status"] == "retired"]
        if not retired:
            raise PerfwatchError(
                f"model {model.name!r} has no earlier version to roll back to",
                hint=f"`perfwatch models {model.name}` lists its versions",
            )
        target = max(retired)
    promote(engine, settings, model, target)
    return current["version"], target


def rebaseline(engine: Engine, model: ModelSettings) -> tuple[int, int]:
    """Make the champion's thresholds the model's bar (recorded with when); return the
    versions of the old and the new bar. The next estimates are judged against it."""
    from perfwatch.store.tables import Model, utcnow

    with transaction(engine) as session:
        model_id = _model_id(session, model)
        champion = queries.champion(session=session, model_id=model_id)
        old = queries.bar_version(session=session, model_id=model_id)
        record = session.get(Model, model_id)
        assert champion is not None and champion.id is not None and record is not None
        record.bar_version_id, record.bar_set_at = champion.id, utcnow()
        session.add(record)
        return (old.version if old else champion.version), champion.version


def _model_id(session: "Session", model: ModelSettings) -> int:
    record = queries.find_model(session=session, name=model.name)
    if record is None or record.id is None:
        raise PerfwatchError(
            f"model {model.name!r} has no versions yet",
            hint="run `perfwatch run --once` first (it registers version 1)",
        )
    return record.id


def _runs_by_version(session: "Session", model_id: int) -> dict[int, RetrainRun]:
    runs = session.exec(
        select(RetrainRun).where(
            RetrainRun.model_id == model_id, col(RetrainRun.version_id).is_not(None)
        )
    ).all()
    return {run.version_id: run for run in runs if run.version_id is not None}


def _describe(
    version: ModelVersion, run: RetrainRun | None, numbers: dict[int | None, int]
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "version": version.version,
        "status": version.status,
        "source": version.source,
        "created_at": version.created_at.isoformat(),
        "artifact_sha256": version.artifact_sha256,
        "training_sha256": version.training_sha256,
        # what the model is fed (ml.inputs): per column its kind and a category's categories
        "inputs": json.loads(version.inputs) if version.inputs else None,
        "parent": None,
        "trigger": None,
        "gate": None,
    }
    if run is not None:
        manifest = json.loads(run.manifest)
        described |= {
            "parent": numbers.get(run.parent_version_id),
            "trigger": {
                "kind": run.trigger,
                "reason": run.reason,
                "alerts": json.loads(run.alerts),
                "data_time": run.data_time.isoformat(),
            },
            "policy": json.loads(run.policy),
            "training_data": manifest,
            "gate": json.loads(run.gate),
            "decision": run.decision,
        }
    return described
