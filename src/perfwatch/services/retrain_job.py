"""The retrain job: learn a challenger, judge it against the champion, promote or not.

It learns from the rows services.training_rows selects (the champion's training set and
the window's labeled production rows, the newest held out): never trained on, the
held-out rows are what the gate judges both models on. A promotion registers the
challenger with the rows the gate judged it on as its reference (topped up with the old
reference's newest rows unless the concept changed), so CBPE, the validation contract
and the thresholds are re-fitted: every later estimate is the new version's. Every run
leaves a `retrain_run` row: trigger, policy, the exact batches and rows, the gate's
figures.
"""

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch import logs, stopping
from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns
from perfwatch.domain.retrain import Decision, GateRule, gate_verdict
from perfwatch.errors import PerfwatchError
from perfwatch.files import atomic_path, copy_atomically, in_background, sha256_file
from perfwatch.ml.inputs import ModelInputs
from perfwatch.services import training_rows
from perfwatch.services.lease import process_exists
from perfwatch.services.registry import Champion, load_champion, model_dir, register_version
from perfwatch.services.retrain_policy import evaluate
from perfwatch.services.training_rows import BATCH, TrainingRows, is_sliding, select_training_rows
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ModelVersion, RetrainRun, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

    from perfwatch.services.synthetic import ExtraCheck

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gate:
    primary: str
    champion: dict[str, float]
    challenger: dict[str, float]
    decision: str  # promoted | candidate | rejected
    reason: str
    label_free: dict[str, Any] = field(default_factory=dict)  # see _label_free


def run_retrain(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    *,
    force: bool = False,
    shuffle_labels: bool = False,
) -> RetrainRun | None:
    """Retrain if the policy says so (or `force`); None when it does not (its reason is
    recorded by the policy). `shuffle_labels` is a test hook: a deliberately bad challenger."""
    with logs.about(model.name):
        return _retrain(engine, settings, model, force=force, shuffle_labels=shuffle_labels)


def _retrain(
    engine: Engine, settings: Settings, model: ModelSettings, *, force: bool, shuffle_labels: bool
) -> RetrainRun | None:
    champion = load_champion(engine, settings, model)
    model_id = champion.version.model_id
    if mark_interrupted(engine, model_id):
        log.warning("%s: a retrain left running by a killed process is marked failed", model.name)
    decision = evaluate(engine, model, model_id, force=force)
    if decision is None or not decision.retrain:
        return None
    run = _start(engine, model, champion, decision)
    try:
        _train_and_judge(engine, settings, model, champion, run, shuffle_labels=shuffle_labels)
    except Exception as exc:  # the champion stays; the reason is kept and shown
        message = exc.message if isinstance(exc, PerfwatchError) else f"{type(exc).__name__}: {exc}"
        log.error("%s: retrain failed: %s", model.name, message)
        _finish(engine, run, status="failed", error=message)
        if not isinstance(exc, PerfwatchError):
            raise
    return run


def _start(
    engine: Engine, model: ModelSettings, champion: Champion, decision: Decision
) -> RetrainRun:
    with transaction(engine) as session:
        model_id = champion.version.model_id
        if queries.running_retrain(session=session, model_id=model_id) is not None:
            raise PerfwatchError(
                f"a retrain of {model.name!r} is already running",
                hint="wait for it; a run left by a killed process is marked failed at start-up",
            )
        policy = model.retrain.model_dump(mode="json")  # [models.retrain], as it was
        alerts = [
            {"id": a.id, "kind": a.kind, "subject": a.subject, "message": a.message}
            for a in queries.open_alerts(session=session, model_id=model_id).values()
        ]
        now = queries.watermark(session=session, model_id=model_id)
        assert now is not None  # the policy found data
        assert champion.version.id is not None  # a loaded champion is a stored version
        run = RetrainRun(
            model_id=model_id,
            parent_version_id=champion.version.id,
            trigger=decision.trigger,
            reason=decision.reason,
            data_time=now,
            policy=json.dumps(policy),
            alerts=json.dumps(alerts),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        session.add(run)
    log.info("%s: retrain started: %s", model.name, decision.reason)
    return run


def _finish(engine: Engine, run: RetrainRun, **changes: Any) -> None:
    with transaction(engine) as session:
        for key, value in changes.items():
            setattr(run, key, value)
        run.finished_at = utcnow()
        session.add(run)


def _train_and_judge(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    run: RetrainRun,
    *,
    shuffle_labels: bool,
) -> None:
    import joblib

    from perfwatch.ml.cluster_training import in_task

    # on a Dask worker the training set is first read for its keys only: a big one is
    # trained across the cluster, never read whole into this worker
    across = settings.executor.kind == "dask" and in_task()
    rows = select_training_rows(
        engine,
        settings,
        model,
        champion.version,
        sliding=is_sliding(model, run.trigger),
        columns=[model.timestamp_column, *model.features],
        training_columns=[model.id_column, CHUNK_COLUMN] if across else None,
    )
    if rows.problem is not None:
        raise rows.problem
    original_rows = (
        0
        if rows.sliding
        else training_rows.count_rows(champion.version, model)
        if across
        else len(rows.original)
    )
    folder = model_dir(settings, model.name) / "retrains" / f"run-{run.id}"
    folder.mkdir(parents=True, exist_ok=True)
    stopping.check("training")
    if across and original_rows + len(rows.learn) > settings.executor.dask_rows:
        learnt = _learn_across(settings, model, champion, rows, folder, shuffled=shuffle_labels)
    else:
        if across and not rows.sliding:  # small enough for this worker after all
            rows.original = training_rows.training_set(champion.version, model)
        learnt = _learn_here(model, champion, rows, folder, shuffled=shuffle_labels)
    extra = None
    if model.retrain.extra_training_data is not None:
        learnt, extra = _with_extra_rows(model, champion, rows, folder, learnt, across=across)
        if extra.decision == "kept":  # the lineage keeps the very rows learnt from
            kept = folder / "extra" / model.retrain.extra_training_data.name
            copy_atomically(model.retrain.extra_training_data, kept)
    stopping.check("the gate")
    artifact = folder / "model.joblib"
    with atomic_path(artifact) as temporary:
        joblib.dump(learnt.challenger, temporary)
    # kept whatever the gate decides: what this challenger learnt from, exactly (written
    # while the gate scores; awaited before the run or a version refers to it)
    training_set = in_background(learnt.write)
    models = {
        "champion": (champion.model, champion.inputs),
        "challenger": (learnt.challenger, learnt.inputs),
    }
    judged = _scored(model, models, rows.holdout)
    gate = _gate(model, judged)
    if gate.champion:  # both scored: how would each do where no label has arrived yet?
        unlabeled = _unlabeled_rows(engine, settings, model, champion.version, rows.holdout)
        gate = replace(gate, label_free=_label_free(model, models, judged, unlabeled))
    manifest = {**_manifest(champion.version, rows, original_rows), "trained_in": learnt.where}
    if extra is not None:
        manifest["extra_training_data"] = extra.to_json()
    training_set.result()
    with transaction(engine) as session:
        run.manifest, run.gate = json.dumps(manifest, default=str), json.dumps(asdict(gate))
        run.artifact_path = str(artifact)
        run.artifact_sha256 = sha256_file(artifact)
        session.add(run)
    stopping.check("registering the challenger")  # registering runs to its end
    if gate.decision == "rejected":
        _finish(engine, run, status="finished", decision="rejected")
        log.warning("%s: challenger rejected: %s", model.name, gate.reason)
        return
    reference = _reference(model, champion, judged["challenger"], rows.sliding)
    version = _register(settings, engine, model, artifact, reference, gate, learnt.inputs)
    _finish(engine, run, status="finished", decision=gate.decision, version_id=version.id)


@dataclass(frozen=True)
class Learnt:
    challenger: Any
    inputs: ModelInputs  # what the challenger takes
    where: str  # "this process" | "N Dask workers" (the manifest says it)
    write: "Callable[[], None]"  # writes what it learnt from, as the version's training set


def _learn_here(
    model: ModelSettings,
    champion: Champion,
    rows: TrainingRows,
    folder: Path,
    *,
    shuffled: bool,
    extra: "pd.DataFrame | None" = None,
) -> Learnt:
    """The challenger trained in this process (on the `extra` rows too, when given: they
    are not written into the training set it keeps, see services.synthetic)."""
    from perfwatch.ml.training import train_like

    parts = [rows.learn] if rows.sliding else [rows.original, rows.learn]
    frame = _training_frame(model, champion.inputs, parts)
    if shuffled:
        frame[model.target] = frame[model.target].sample(frac=1.0, random_state=1).to_numpy()
    real = frame
    if extra is not None:
        import pandas as pd

        extra_frame = _training_frame(model, champion.inputs, [extra])
        frame = pd.concat([real, extra_frame], ignore_index=True)
    challenger, inputs = train_like(
        champion.model,
        frame,
        inputs=champion.inputs,
        target=model.target,
        categorical=model.categorical,
    )
    write = partial(_write_parquet, real, folder / "train.parquet")
    return Learnt(challenger, inputs, "this process", write)


def _with_extra_rows(
    model: ModelSettings,
    champion: Champion,
    rows: TrainingRows,
    folder: Path,
    without: Learnt,
    *,
    across: bool,
) -> tuple[Learnt, "ExtraCheck"]:
    """The extra training rows checked (services.synthetic); the challenger trained with
    them when they pass, kept only if it does at least as well on the real held-out rows."""
    from perfwatch.services import synthetic

    real_model = (without.challenger, without.inputs)
    check = synthetic.examine(model, champion, rows.learn, rows.holdout, real_model)
    if check.decision == "rejected":
        log.warning("%s: extra training rows rejected: %s", model.name, check.reason)
        return without, check
    if across:
        skipped = "not used: a retrain across the Dask cluster does not learn from extra rows yet"
        return without, replace(check, decision="rejected", reason=skipped, frame=None)
    with_extra = _learn_here(model, champion, rows, folder, shuffled=False, extra=check.frame)
    judged = _scored(
        model,
        {
            "without": (without.challenger, without.inputs),
            "with": (with_extra.challenger, with_extra.inputs),
        },
        rows.holdout,
    )
    check = synthetic.judge_transfer(check, model, judged)
    log.info("%s: extra training rows %s: %s", model.name, check.decision, check.reason)
    kept = check.decision == "kept"
    return (replace(with_extra, write=without.write) if kept else without), check


def _learn_across(
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    rows: TrainingRows,
    folder: Path,
    *,
    shuffled: bool,
) -> Learnt:
    """The challenger trained across the Dask cluster (lightgbm.dask): the training set
    read by the workers, the window's rows (in memory already) appended to it."""
    import dask.dataframe as dd

    from perfwatch.ml.cluster_training import cluster_client, train_across

    appended = _training_frame(model, champion.inputs, [rows.learn])
    parts = [dd.from_pandas(appended, npartitions=1)]
    if not rows.sliding:
        original = training_rows.training_set_across(champion.version, model)
        like = appended.iloc[:0]  # the original's missing keys: empty, typed as appended's
        typed = original.map_partitions(_frame_like, model, champion.inputs, like, meta=like)
        parts.insert(0, typed)
    frame = dd.concat(parts)
    if shuffled:
        frame = frame.map_partitions(_shuffled, model.target, meta=appended.iloc[:0])
    with cluster_client() as client:  # every computation on the cluster, this task seceded
        total = sum(client.compute(frame.map_partitions(len)).result())
        log.info("%s: training on %d rows across the Dask cluster", model.name, total)
        challenger, inputs = train_across(
            champion.model,
            frame,
            inputs=champion.inputs,
            target=model.target,
            categorical=model.categorical,
            total_rows=total,
            sample_rows=settings.executor.dask_rows,
            client=client,
        )
        _write_parts(client, frame, appended, folder / "train.parquet")
        workers = len(client.scheduler_info()["workers"])
    return Learnt(challenger, inputs, f"{workers} Dask workers", lambda: None)  # written


def _frame_like(
    part: "pd.DataFrame", model: ModelSettings, inputs: ModelInputs, like: "pd.DataFrame"
) -> "pd.DataFrame":
    """A partition of the training set as `_training_frame` makes it, with `like`'s
    columns (keys it lacks are missing)."""
    frame = _training_frame(model, inputs, [part])
    return frame.reindex(columns=like.columns).astype(like.dtypes.to_dict())


def _shuffled(part: "pd.DataFrame", target: str) -> "pd.DataFrame":
    return part.assign(**{target: part[target].sample(frac=1.0, random_state=1).to_numpy()})


def _write_parts(client: "Client", frame: "dd.DataFrame", like: "pd.DataFrame", path: Path) -> None:
    """A Dask DataFrame as one Parquet file (a version's training set is one file with
    one checksum), a partition at a time (this worker never holds it whole)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(like, preserve_index=False)
    with atomic_path(path) as temporary, pq.ParquetWriter(temporary, schema) as writer:
        for part in frame.to_delayed():
            rows = client.compute(part).result()
            writer.write_table(pa.Table.from_pandas(rows, schema, preserve_index=False))


def _training_frame(
    model: ModelSettings, inputs: ModelInputs, parts: list["pd.DataFrame"]
) -> "pd.DataFrame":
    """Features (in the types the champion takes: the original training set and stored
    production rows agree), target, and for each production row its id and chunk: a
    retrained version's training set says which rows it appended, so the next retrain
    (whose window still holds them) does not append them twice."""
    import pandas as pd

    columns, key = [model.target], [model.id_column, CHUNK_COLUMN]
    frame = pd.concat(
        [
            pd.concat(
                [inputs.frame(p), p[columns + key if set(key) <= set(p.columns) else columns]],
                axis=1,
            )
            for p in parts
        ],
        ignore_index=True,
    )
    if CHUNK_COLUMN in frame.columns:
        frame[CHUNK_COLUMN] = frame[CHUNK_COLUMN].astype("Int64")  # original rows: none
    return frame


def _scored(
    model: ModelSettings, models: dict[str, tuple[Any, ModelInputs]], holdout: "pd.DataFrame"
) -> dict[str, "pd.DataFrame"]:
    """The newest HOLDOUT_ROWS held-out rows, scored by each model (score and prediction)."""
    from perfwatch.ml.model import predict, score

    rows = _newest(holdout, model, training_rows.HOLDOUT_ROWS)
    scored = {}
    for name, (classifier, inputs) in models.items():
        scores = score(classifier, rows, inputs)
        scored[name] = rows.assign(
            **{
                model.score_column: scores,
                model.prediction_column: predict(scores, model.decision_threshold),
            }
        )
    return scored


def _gate(model: ModelSettings, judged: dict[str, "pd.DataFrame"]) -> Gate:
    """Both models on the held-out rows: promote only if the challenger wins the primary
    metric by `min_gain` and loses no other by more than `max_loss`."""
    import numpy as np

    from perfwatch.ml.concept import expected_metrics

    figures = {}
    for name, rows in judged.items():
        scores = rows[model.score_column].to_numpy(dtype=float)
        if np.isnan(scores).any():
            return Gate(model.metrics[0], {}, {}, "rejected", f"the {name} predicted NaN")
        labels = rows[model.target].to_numpy(dtype=float)
        predictions = rows[model.prediction_column].to_numpy()
        figures[name] = expected_metrics(scores, predictions, labels, model.metrics)
    return _verdict(model, figures["champion"], figures["challenger"])


def _unlabeled_rows(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    version: ModelVersion,
    holdout: "pd.DataFrame",
) -> "pd.DataFrame":
    """The newest rows after the last labeled chunk (at most HOLDOUT_ROWS)."""
    from perfwatch.domain.chunks import moment
    from perfwatch.store.segments import read_stored

    after = moment(int(holdout[CHUNK_COLUMN].max()))
    with transaction(engine) as session:
        starts = [
            s
            for s in queries.chunk_row_counts(
                session=session, model_id=version.model_id, since=after
            )
            if s > after
        ]
        batches = queries.batches_in_chunks(
            session=session, model_id=version.model_id, chunk_starts=starts
        )
    if not starts:
        return holdout.iloc[:0]
    columns = [model.timestamp_column, *model.features]
    rows = read_stored(batches, columns, {chunk_ns(s) for s in starts}, settings.data_dir)
    return _newest(rows, model, training_rows.HOLDOUT_ROWS)


def _label_free(
    model: ModelSettings,
    models: dict[str, tuple[Any, ModelInputs]],
    judged: dict[str, "pd.DataFrame"],
    unlabeled: "pd.DataFrame",
) -> dict[str, Any]:
    """CBPE fitted for each model on the newest held-out rows (as it scored them) as its
    reference, estimating the newest unlabeled chunks: a comparison the labels cannot
    make yet. Recorded beside the gate's figures; the labeled holdout decides."""
    from perfwatch.errors import EstimationError
    from perfwatch.ml import cbpe, chunk_metrics
    from perfwatch.ml.chunk_metrics import Fitted
    from perfwatch.ml.model import predict, score
    from perfwatch.services.registry import cbpe_columns

    if unlabeled.empty:
        return {"chunks": 0}
    figures: dict[str, Any] = {"chunks": int(unlabeled[CHUNK_COLUMN].nunique())}
    for name, (classifier, inputs) in models.items():
        scores = score(classifier, unlabeled, inputs)
        rows = unlabeled.assign(
            **{
                model.score_column: scores,
                model.prediction_column: predict(scores, model.decision_threshold),
            }
        )
        try:
            estimator, _ = cbpe.fit(
                judged[name],
                columns=cbpe_columns(model),
                metrics=model.metrics,
                period=model.chunking,
            )
            estimates = chunk_metrics.estimate(
                Fitted.of(estimator),
                rows,
                columns=cbpe_columns(model),
                metrics=model.metrics,
                chunking=model.chunking,
            )
        except EstimationError as exc:
            return figures | {"error": exc.message}
        figures[name] = {
            metric: _mean([e.value for e in estimates if e.metric == metric])
            for metric in model.metrics
        }
    return figures


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else None


def _verdict(model: ModelSettings, old: dict[str, float], new: dict[str, float]) -> Gate:
    rules = model.retrain
    rule = GateRule(model.metrics, rules.min_gain, rules.max_loss, rules.auto_promote)
    decision, reason = gate_verdict(rule, old, new)
    return Gate(model.metrics[0], old, new, decision, reason)


def _newest(rows: "pd.DataFrame", model: ModelSettings, limit: int) -> "pd.DataFrame":
    """The newest `limit` rows (by data time)."""
    if len(rows) <= limit:
        return rows
    return rows.nlargest(limit, model.timestamp_column)


def _manifest(version: ModelVersion, rows: TrainingRows, original_rows: int) -> dict[str, Any]:
    """Exactly what the challenger learnt from, and what judged it."""
    appended = rows.learn.groupby(BATCH, observed=True).size()
    return {
        "original": {
            "path": version.training_path,
            "sha256": version.training_sha256,
            "rows": original_rows,
        },
        "appended_rows": len(rows.learn),
        "batches": [{"content_hash": h, "rows": int(n)} for h, n in sorted(appended.items())],
        "window": _span(rows.learn),
        "holdout": {
            "rows": len(rows.holdout),
            "chunks": int(rows.holdout[CHUNK_COLUMN].nunique()),
        },
        "sliding": rows.sliding,
    }


def _span(rows: "pd.DataFrame") -> dict[str, str | None]:
    from perfwatch.domain.chunks import moment

    if rows.empty:
        return {"start": None, "end": None}
    return {
        "start": moment(int(rows[CHUNK_COLUMN].min())).isoformat(),
        "end": moment(int(rows[CHUNK_COLUMN].max())).isoformat(),
    }


def _reference(
    model: ModelSettings, champion: Champion, judged: "pd.DataFrame", sliding: bool
) -> "pd.DataFrame":
    """The new reference: the rows the gate judged (scored by the challenger), topped up
    to HOLDOUT_ROWS with the old reference's newest rows unless the concept changed (the
    old rows would teach CBPE the old answers). Bounded, so that CBPE's fit does not grow
    with every promotion; the newest rows first, as they show production as it is now."""
    import pandas as pd

    columns = [model.timestamp_column, *model.features, model.target]
    scored = [*columns, model.score_column, model.prediction_column]
    reference = judged[scored]
    room = training_rows.HOLDOUT_ROWS - len(reference)
    if sliding or room <= 0:
        return reference
    earlier = _newest(champion.reference_rows[columns], model, room)
    return pd.concat([earlier, reference], ignore_index=True)  # unscored: registering scores them


def _register(
    settings: Settings,
    engine: Engine,
    model: ModelSettings,
    artifact: Path,
    reference: "pd.DataFrame",
    gate: Gate,
    inputs: ModelInputs,
) -> ModelVersion:
    """Register the challenger with its new reference, the data it learnt from as its
    training set."""
    folder = artifact.parent
    _write_parquet(reference, folder / "reference.parquet")
    return register_version(
        engine,
        settings,
        model,
        artifact=artifact,
        reference=folder / "reference.parquet",
        training_data=folder / "train.parquet",
        source="retrain",
        champion=gate.decision == "promoted",
        inputs=inputs,
    )


def _write_parquet(frame: "pd.DataFrame", path: Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


def run_due_retrains(
    engine: Engine, settings: Settings, names: list[str]
) -> list[tuple[str, RetrainRun]]:
    """What a daemon tick does after its cycles, in this process (`run --once`): each of
    these models whose policy says a retrain is due retrains now, one after another. A
    failed retrain is recorded with its reason and the others go on."""
    runs = []
    for name in names:
        model = settings.model(name)
        if not model.retrain.enabled or not needs_worker(engine, name):
            continue
        try:
            run = run_retrain(engine, settings, model)
        except Exception:  # recorded as failed by run_retrain; the next model goes on
            log.exception("%s: retrain failed", name)
            continue
        if run is not None:
            runs.append((name, run))
    return runs


def needs_worker(engine: Engine, name: str) -> bool:
    """Whether the daemon should start a retrain worker: the policy's latest decision is
    'due', or a run was left 'running' here by a process that is gone (the worker marks
    it failed, and retries). Cheap: the daemon asks every tick, a worker costs seconds."""
    with transaction(engine) as session:
        model_id = queries.get_or_create_model(session=session, name=name).id
        assert model_id is not None
        decision = queries.latest_decision(session=session, model_id=model_id)
        if decision is not None and decision.state == "due":
            return True
        left = queries.running_retrain(session=session, model_id=model_id)
    return left is not None and left.host == socket.gethostname() and not process_exists(left.pid)


def mark_interrupted(engine: Engine, model_id: int) -> int:
    """Runs left 'running' by a killed process on this host: failed, so the policy may
    retry (a run that is really running elsewhere keeps running)."""
    with transaction(engine) as session:
        return queries.fail_running_retrains(
            session=session, model_id=model_id, host=socket.gethostname(), alive=process_exists
        )
