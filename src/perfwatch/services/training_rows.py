"""What a retrain learns from and is judged on: one selection, for the job and its dry run.

The version's training set (refused if the file changed since registration) and the
labeled production rows of the retrain window. The newest labeled chunks (`holdout` of
the labeled rows, at most about HOLDOUT_ROWS) are held out for the gate; of the rest,
the rows the training set does not hold already are appended (a retrained version's
training set keeps the id and chunk of each production row it appended). When concept
drift triggered it and `on_concept_drift = "sliding"`, the window's rows alone are
learnt from: the old concept would teach the old answers.

`retrain_manifest` is `retrain --dry-run`: the policy's decision and this selection,
counted per batch.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.retrain import Decision
from perfwatch.errors import PerfwatchError
from perfwatch.files import verify
from perfwatch.ingest.rows import BATCH_COLUMN
from perfwatch.services.retrain_policy import evaluate
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.queries import StoredFile
from perfwatch.store.segments import TARGET, labeled_rows
from perfwatch.store.tables import ModelVersion

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

BATCH = "__batch"  # the batch content hash of a labeled production row
# The most rows held out: the gate judges on them, and a promotion makes them the new
# reference (which is bounded to as many). Beyond this, more rows sharpen neither the
# gate nor CBPE (they are better spent on training), while scoring them and CBPE's fit
# (its cost is per reference chunk) grow with them.
HOLDOUT_ROWS = 50_000


@dataclass
class TrainingRows:
    """A retrain's rows, selected."""

    window_start: datetime
    window_end: datetime
    batches: Sequence[StoredFile]  # the stored batches of the window's chunks
    sliding: bool
    original: "pd.DataFrame"  # the training set (what of it was asked for)
    labeled: "pd.DataFrame"  # the window's labeled rows: asked columns, target, chunk, BATCH
    learn: "pd.DataFrame"  # of them, the rows appended to the training set
    holdout: "pd.DataFrame"  # of them, the newest chunks, which the gate judges on
    learnt_before: int = 0  # labeled rows the training set holds already
    problem: PerfwatchError | None = None  # why a retrain would fail now


def select_training_rows(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    version: ModelVersion,
    *,
    sliding: bool,
    columns: list[str],
    training_columns: list[str] | None = None,
) -> TrainingRows:
    """Select a retrain's rows: `columns` of the labeled production rows (with target,
    chunk and BATCH), of the training set only `training_columns` when given (a dry run
    needs only the keys of the rows it learnt). What would stop a retrain is kept as
    `problem`, the first found, and the rest is selected as far as it can be."""
    import pandas as pd

    with transaction(engine) as session:
        now = queries.watermark(session=session, model_id=version.model_id)
        if now is None:
            raise PerfwatchError(
                f"model {model.name!r} has no production data yet",
                hint="drop batch files into its inbox and run a cycle",
            )
        since = now - parse_duration(model.retrain.window)
        # only chunks whose labels are final: before its label horizon has passed, a
        # chunk holds the labels that come early (failures), and would teach a bias
        mature = queries.mature_chunks(session=session, model_id=version.model_id, since=since)
        starts = [
            start
            for start in queries.chunk_row_counts(
                session=session, model_id=version.model_id, since=since
            )
            if start in mature
        ]
        batches = queries.batches_in_chunks(
            session=session, model_id=version.model_id, chunk_starts=starts
        )
    problems: list[PerfwatchError] = []
    try:
        original = training_set(version, model, training_columns)
    except PerfwatchError as exc:
        problems.append(exc)
        original = pd.DataFrame()
    labeled = _labeled(engine, settings, model, version.model_id, starts, columns)
    rows = TrainingRows(since, now, batches, sliding, original, labeled, labeled, labeled.iloc[:0])
    if labeled.empty:
        problems.append(
            PerfwatchError(
                "no labeled production rows in the retrain window",
                hint="labels have to arrive (labels_inbox) before a retrain can learn anything new",
            )
        )
    else:
        try:
            learn, rows.holdout = split_holdout(model, labeled)
            rows.learn = learn if sliding else not_learnt(model, original, learn)
            rows.learnt_before = len(learn) - len(rows.learn)
        except PerfwatchError as exc:
            problems.append(exc)
    rows.problem = problems[0] if problems else None
    return rows


def _labeled(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    starts: list[datetime],
    columns: list[str],
) -> "pd.DataFrame":
    wanted = [BATCH_COLUMN, *columns]
    rows = labeled_rows(engine, settings.data_dir, model_id, starts, model.served_columns, wanted)
    rows = rows.rename(columns={BATCH_COLUMN: BATCH, TARGET: model.target})
    # BATCH stays the category it was stored as: as text, a million hashes cost 0.2 s
    return rows.astype({model.target: "int64"})


def training_set(
    version: ModelVersion, model: ModelSettings, columns: list[str] | None = None
) -> "pd.DataFrame":
    """The version's training data, refused if the file changed since registration; of
    it, those of `columns` it has, when given."""
    import pandas as pd
    import pyarrow.parquet as pq

    if not version.training_path or not version.training_sha256:
        raise PerfwatchError(
            f"version {version.version} was registered without training data",
            hint="register it again with --training-data, or set training_data in the config",
        )
    path = Path(version.training_path)
    verify(path, version.training_sha256, "training data")
    if path.suffix == ".parquet":
        names = pq.read_schema(path).names
        kept = None if columns is None else [c for c in columns if c in names]
        return pd.read_parquet(path, columns=kept)
    usecols = None if columns is None else (lambda name: name in columns)
    return pd.read_csv(path, sep=model.read.delimiter, decimal=model.read.decimal, usecols=usecols)


def training_set_across(version: ModelVersion, model: ModelSettings) -> "dd.DataFrame":
    """The version's training data as a Dask DataFrame, read by the workers (a retrain
    across the cluster: the file may not fit one worker's memory). Checked like
    `training_set`, which its reader reads first."""
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    path = Path(version.training_path or "")
    keys = [model.id_column, CHUNK_COLUMN]
    wanted = [*model.features, model.target, *keys]
    if path.suffix == ".parquet":
        names = pq.read_schema(path).names
        return dd.read_parquet(path, columns=[c for c in wanted if c in names])
    return dd.read_csv(
        path,
        sep=model.read.delimiter,
        decimal=model.read.decimal,
        usecols=lambda name: name in wanted,
        blocksize="64MB",
    )


def count_rows(version: ModelVersion, model: ModelSettings) -> int:
    """The rows of the version's training data, without reading them all at once."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(version.training_path or "")
    if path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    parts = pd.read_csv(path, sep=model.read.delimiter, usecols=[0], chunksize=1_000_000)
    return sum(len(part) for part in parts)


def is_sliding(model: ModelSettings, trigger: str | None) -> bool:
    """Whether a retrain learns from the window's rows alone (the old concept's training
    set would teach the old answers)."""
    return trigger == "concept_drift" and model.retrain.on_concept_drift == "sliding"


def split_holdout(
    model: ModelSettings, labeled: "pd.DataFrame"
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Hold out the newest chunks that hold `holdout` of the labeled rows, at most about
    HOLDOUT_ROWS (at least one chunk): the rest is learnt from."""
    per_chunk = labeled.groupby(CHUNK_COLUMN).size().sort_index(ascending=False)
    wanted = min(model.retrain.holdout * len(labeled), HOLDOUT_ROWS)
    newest, held = [], 0
    for start, count in per_chunk.items():
        if held >= wanted:
            break
        newest.append(start)
        held += int(count)
    if len(newest) == len(per_chunk):
        raise PerfwatchError(
            "too few labeled chunks to learn from and still hold the newest out for the gate",
            hint="wait for labels of more chunks, or lower retrain.holdout",
        )
    in_holdout = labeled[CHUNK_COLUMN].isin(newest)
    return labeled[~in_holdout], labeled[in_holdout]


def not_learnt(
    model: ModelSettings, training: "pd.DataFrame", learn: "pd.DataFrame"
) -> "pd.DataFrame":
    """The window's rows the training set does not hold already: a retrained version's
    training set keeps the id and chunk of each production row it appended, and the
    window of the next retrain still holds them."""
    key = [model.id_column, CHUNK_COLUMN]
    if not set(key) <= set(training.columns):
        return learn  # a training set from outside: it holds no stored production row
    learnt = training[key].dropna().drop_duplicates().astype({CHUNK_COLUMN: "int64"})
    if learnt.empty:
        return learn
    seen = learn[key].merge(learnt.assign(__learnt=True), on=key, how="left")["__learnt"]
    return learn[seen.isna().to_numpy()]


@dataclass
class Manifest:
    """What a retrain would learn from, and why."""

    decision: Decision
    training_path: str | None
    training_sha256: str | None
    window_start: datetime
    window_end: datetime
    # per batch: its labeled rows in the window, and of them the rows it would append
    batches: list[dict[str, Any]] = field(default_factory=list)
    holdout: dict[str, int] = field(default_factory=lambda: {"rows": 0, "chunks": 0})
    learnt_before: int = 0  # labeled rows the training set holds already (not appended)
    sliding: bool = False  # the window's rows alone, without the training set
    problem: str | None = None  # why a retrain would fail now
    extra: dict[str, Any] | None = None  # the extra training rows' check (services.synthetic)

    @property
    def appended_rows(self) -> int:
        return sum(b["appended_rows"] for b in self.batches)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": {
                "state": self.decision.state,
                "retrain": self.decision.retrain,
                "trigger": self.decision.trigger,
                "reason": self.decision.reason,
            },
            "training_data": {"path": self.training_path, "sha256": self.training_sha256},
            "window": {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()},
            "appended_rows": self.appended_rows,
            "holdout": self.holdout,
            "learnt_before": self.learnt_before,
            "sliding": self.sliding,
            "problem": self.problem,
            "extra_training_data": self.extra,
            "batches": [
                {
                    **b,
                    "data_start": b["data_start"].isoformat() if b["data_start"] else None,
                    "data_end": b["data_end"].isoformat() if b["data_end"] else None,
                }
                for b in self.batches
            ],
        }


def retrain_manifest(
    engine: Engine, settings: Settings, model: ModelSettings, *, force: bool = False
) -> Manifest:
    """The policy's decision (forced or not) and the exact data a retrain would use."""
    with transaction(engine) as session:
        record = queries.find_model(session=session, name=model.name)
        version = None
        if record is not None and record.id is not None:
            version = queries.champion(session=session, model_id=record.id)
    if version is None:
        raise PerfwatchError(
            f"model {model.name!r} has no champion version yet",
            hint="run `perfwatch run --once` first (it registers version 1)",
        )
    decision = evaluate(engine, model, version.model_id, force=force, record=False)
    if decision is None:
        raise PerfwatchError(
            f"model {model.name!r} has no production data yet",
            hint="drop batch files into its inbox and run a cycle",
        )
    extra = model.retrain.extra_training_data is not None
    rows = select_training_rows(
        engine,
        settings,
        model,
        version,
        sliding=is_sliding(model, decision.trigger),
        columns=[model.timestamp_column, *model.features] if extra else [],
        training_columns=[model.id_column, CHUNK_COLUMN],
    )
    return Manifest(
        decision=decision,
        training_path=version.training_path,
        training_sha256=version.training_sha256,
        window_start=rows.window_start,
        window_end=rows.window_end,
        batches=_per_batch(rows),
        holdout={"rows": len(rows.holdout), "chunks": int(rows.holdout[CHUNK_COLUMN].nunique())},
        learnt_before=rows.learnt_before,
        sliding=rows.sliding,
        problem=rows.problem.message if rows.problem else None,
        extra=_extra_check(engine, settings, model, rows) if extra else None,
    )


def _extra_check(
    engine: Engine, settings: Settings, model: ModelSettings, rows: TrainingRows
) -> dict[str, Any]:
    """The extra training rows' checks that need no training (the transfer is judged by
    the retrain itself), against the rows this retrain would append."""
    from perfwatch.services import synthetic
    from perfwatch.services.registry import load_champion

    if rows.learn.empty:
        return {"decision": "pending", "reason": "no labeled production rows to compare them with"}
    champion = load_champion(engine, settings, model)
    return synthetic.examine(model, champion, rows.learn, rows.holdout, None).to_json()


def _per_batch(rows: TrainingRows) -> list[dict[str, Any]]:
    """Each batch's labeled rows in the window, and of them the rows it would append."""
    labeled = rows.labeled.groupby(BATCH, observed=True).size()
    appended = rows.learn.groupby(BATCH, observed=True).size()
    by_hash = {b.content_hash: b for b in rows.batches}
    return [
        {
            "file": by_hash[str(content_hash)].file_name,
            "content_hash": str(content_hash),
            "labeled_rows": int(n),
            "appended_rows": int(appended.get(content_hash, 0)),
            "data_start": by_hash[str(content_hash)].data_start,
            "data_end": by_hash[str(content_hash)].data_end,
        }
        for content_hash, n in sorted(labeled.items(), key=lambda item: str(item[0]))
        if n and str(content_hash) in by_hash
    ]
