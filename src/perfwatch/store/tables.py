"""Every table of the store. The schema itself is created only by Alembic migrations.

Unique keys make every write idempotent: a re-run of a cycle, or a file dropped twice,
updates or skips rows instead of duplicating them. Timestamps are UTC-aware.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from perfwatch.store.types import UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


def _when(*, nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=UTCDateTime, nullable=nullable)


def _stamp() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _keys(index: str, *unique: str) -> tuple[UniqueConstraint, Index]:
    """A chunk row's unique key, and the index by model and chunk that reads of a model's
    chunks use."""
    return UniqueConstraint(*unique), Index(index, "model_id", "chunk_start")


class _OfModel(SQLModel):
    """A row of a model's history: its own id, and its model's."""

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id")


class _OfChunk(_OfModel):
    """A row of a model's history about one chunk (known by its start)."""

    chunk_start: datetime = _when()


class Model(SQLModel, table=True):
    """One monitored use case, declared in the config."""

    __tablename__ = "model"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: datetime = _stamp()
    # the version whose thresholds are the bar; None: the first version (set by `rebaseline`)
    bar_version_id: int | None = None
    bar_set_at: datetime | None = _when(nullable=True)
    chunking: str | None = None  # "1D", "500 rows": what its history is cut into


class ModelVersion(SQLModel, table=True):
    """One trained artifact of a model, with the reference set and estimator fitted for it."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    version: int
    status: str  # champion | candidate | retired
    source: str  # initial_model | register | retrain
    artifact_path: str
    artifact_sha256: str
    reference_path: str
    reference_sha256: str
    training_path: str | None = None
    training_sha256: str | None = None
    estimator_path: str
    estimator_sha256: str
    contract: str = Field(sa_column=Column(Text, nullable=False))  # JSON, see ingest.contract
    # JSON, see ml.inputs: the dtypes (and categories) the model takes; None before 0009
    inputs: str | None = Field(default=None, sa_column=Column(Text))
    # JSON, see ml.chunk_metrics: the fitted CBPE as plain numbers; None before 0010
    # (derived from the pickled estimator on first use, then kept)
    fitted: str | None = Field(default=None, sa_column=Column(Text))
    # JSON, see ml.chunk_drift: the fitted drift calculators as plain numbers; None before
    # 0011 or until first measured (fitted then, and again if the config's features or
    # chunking change)
    fitted_drift: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _stamp()


class AlignmentCheck(_OfModel, table=True):
    """A production sample compared with a version's training data and reference before it
    was deployed (services.alignment): the verdict and every figure behind it."""

    __tablename__ = "alignment_check"
    __table_args__ = (Index("ix_alignment_check_model", "model_id", "version_id"),)
    version_id: int = Field(foreign_key="model_version.id")
    sample_name: str
    sample_sha256: str
    rows: int
    verdict: str  # aligned | review | misaligned
    figures: str = Field(sa_column=Column(Text, nullable=False))  # JSON: Alignment.to_json()
    checked_at: datetime = _stamp()


class ReferenceMetric(SQLModel, table=True):
    """A metric's realized value on a version's reference set, and nannyml's band."""

    __tablename__ = "reference_metric"
    __table_args__ = (UniqueConstraint("version_id", "metric"),)
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id")
    metric: str
    value: float
    band_lower: float | None = None
    band_upper: float | None = None


class _InboxFile(SQLModel):
    """A file from an inbox, recorded once (by content): ingested or quarantined, and why;
    a file is moved out of its inbox only once this record is committed."""

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    file_name: str
    content_hash: str
    status: str  # ingested | quarantined
    reason: str | None = Field(default=None, sa_type=Text)
    rows: int = 0
    stored_path: str | None = None  # the Parquet segment holding what it brought
    ingested_at: datetime = _stamp()


class Batch(_InboxFile, table=True):
    """One production file: ingested (rows stored under data_dir) or quarantined."""

    __tablename__ = "batch"
    __table_args__ = (UniqueConstraint("model_id", "content_hash"),)
    rows_dropped: int = 0  # duplicated ids, not stored
    data_start: datetime | None = _when(nullable=True)
    data_end: datetime | None = _when(nullable=True)


class BatchChunk(_OfChunk, table=True):
    """How many of a batch's rows fall into a chunk: the map from chunks to stored files."""

    __tablename__ = "batch_chunk"
    __table_args__ = _keys("ix_batch_chunk_model_chunk", "batch_id", "chunk_start")
    batch_id: int = Field(foreign_key="batch.id")
    chunk_end: datetime = _when()
    rows: int


class ChunkEstimate(_OfChunk, table=True):
    """CBPE's estimate of one metric on one chunk, by one version."""

    __tablename__ = "chunk_estimate"
    __table_args__ = _keys(
        "ix_chunk_estimate_model_chunk", "model_id", "version_id", "chunk_start", "metric"
    )
    version_id: int = Field(foreign_key="model_version.id")
    chunk_end: datetime = _when()
    metric: str
    value: float
    lower: float | None = None
    upper: float | None = None
    sampling_error: float | None = None
    threshold: float | None = None  # in force: the version's own, never under the bar
    bar: float | None = None  # the threshold in force at the bar version (version 1)
    alert: bool = False
    provisional: bool = True
    rows: int
    estimated_at: datetime = _stamp()
    # the delay-adjusted estimate (ml.adjusted) of a complete chunk whose labels are
    # still arriving; CBPE's value with the reason where it cannot be adjusted
    adjusted: float | None = None
    adjusted_lower: float | None = None
    adjusted_upper: float | None = None
    adjusted_alert: bool | None = None
    adjusted_labels: int | None = None  # the chunk's labels it was adjusted with
    adjusted_reason: str | None = None  # why it is CBPE's (None: adjusted)


class DataQualityFinding(_OfChunk, table=True):
    """A soft problem in a batch, counted per chunk and column (nulls, ranges, categories)."""

    __tablename__ = "data_quality_finding"
    __table_args__ = _keys("ix_finding_model_chunk", "batch_id", "chunk_start", "column", "kind")
    batch_id: int = Field(foreign_key="batch.id")
    column: str
    kind: str  # null | out_of_range | unseen_category | duplicate_id
    count: int
    detail: str = ""


class Cycle(_OfModel, table=True):
    """One monitoring cycle of one model: when, how much, and how it ended."""

    __tablename__ = "cycle"
    __table_args__ = (Index("ix_cycle_model_started", "model_id", "started_at"),)
    started_at: datetime = _stamp()
    finished_at: datetime | None = _when(nullable=True)
    status: str = "running"  # running | ok | failed | stopped (warm stop) | interrupted (killed)
    batches: int = 0
    quarantined: int = 0
    rows: int = 0
    chunks_estimated: int = 0
    labels: int = 0  # new labels stored
    chunks_judged: int = 0  # chunks given realized metrics
    skew_checked: int = 0  # served scores re-scored by the champion
    skew_mismatched: int = 0  # of them, off by more than the model's skew_tolerance
    skew_largest: float | None = None  # the largest difference seen
    skew_error: str | None = Field(default=None, sa_column=Column(Text))  # the check failed
    skew_version_id: int | None = None  # the version that re-scored (None before 0012)
    skew_through: datetime | None = _when(nullable=True)  # the newest re-scored row's time
    error: str | None = Field(default=None, sa_column=Column(Text))
    timings: str | None = Field(default=None, sa_column=Column(Text))  # JSON: step -> seconds


class LabelFile(_InboxFile, table=True):
    """One delayed-label file: ingested (labels stored) or quarantined."""

    __tablename__ = "label_file"
    __table_args__ = (UniqueConstraint("model_id", "content_hash"),)
    stored: int = 0  # new labels stored
    repeated: int = 0  # the same label again (in the file or already stored): skipped
    conflicts: int = 0  # a different label for an id already labeled: recorded, not applied
    held: int = 0  # ids not seen yet when the file arrived


class LabelChunk(_OfChunk, table=True):
    """How many of a label file's labels fall into a chunk: the map from chunks to the
    label segments, as batch_chunk is for rows."""

    __tablename__ = "label_chunk"
    __table_args__ = _keys("ix_label_chunk_model_chunk", "label_file_id", "chunk_start")
    label_file_id: int = Field(foreign_key="label_file.id")
    rows: int


class Label(_OfModel, table=True):
    """A label whose row had not arrived with its file: held (no chunk) until the batch
    comes, then matched here. Labels matched on arrival live in their file's Parquet
    segment instead (a million SQL rows per cycle would cost more than the analysis)."""

    __tablename__ = "label"
    __table_args__ = _keys("ix_label_model_chunk", "model_id", "row_id")
    label_file_id: int = Field(foreign_key="label_file.id")
    row_id: str
    target: int
    labeled_at: datetime | None = _when(nullable=True)  # the label file's own label time
    chunk_start: datetime | None = _when(nullable=True)  # None: held, its row not seen yet
    held_since: datetime | None = _when(nullable=True)  # data time when it was held
    # the row's served figures, copied when it is matched (as label segments carry them)
    row_time: datetime | None = _when(nullable=True)
    score: float | None = None
    prediction: int | None = None


class LabelConflict(SQLModel, table=True):
    """A second, different label for an id: both values kept, the first one stays in force."""

    __tablename__ = "label_conflict"
    __table_args__ = (UniqueConstraint("label_file_id", "row_id"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    label_file_id: int = Field(foreign_key="label_file.id")
    row_id: str
    stored_target: int
    new_target: int


class ChunkLabels(_OfChunk, table=True):
    """A chunk's label coverage: `labeled` grows with every matched label in the same
    transaction; the other figures are those of the last realized computation, so a
    chunk whose figures differ from the live counts is due again (even after a crash)."""

    __tablename__ = "chunk_labels"
    __table_args__ = (UniqueConstraint("model_id", "chunk_start"),)
    chunk_end: datetime = _when()
    labeled: int = 0
    computed_labeled: int | None = None
    computed_rows: int | None = None
    coverage: float | None = None
    mature: bool = False
    computed_at: datetime | None = _when(nullable=True)


class ChunkRealized(_OfChunk, table=True):
    """Realized performance of one metric on one mature, covered chunk, beside the estimate
    it is judged against, and the concept-drift verdict."""

    __tablename__ = "chunk_realized"
    __table_args__ = (UniqueConstraint("model_id", "chunk_start", "metric"),)
    chunk_end: datetime = _when()
    metric: str
    value: float
    sampling_error: float | None = None
    labeled_rows: int
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    estimated: float | None = None  # that version's CBPE estimate of the chunk
    estimated_sampling_error: float | None = None
    out_of_band: bool = False  # realized outside the estimate's band, both errors counted
    concept_drift: bool = False  # out of band, confirmed over `consecutive` chunks
    magnitude: float | None = None  # realized - estimated
    impact: float | None = None  # expected metric on the reference inputs under the new
    # concept, minus the reference value (computed for out-of-band chunks)
    bar: float | None = None  # the model's bar for the metric when judged
    computed_at: datetime = _stamp()


class Alert(_OfModel, table=True):
    """Something that needs a person: opened and closed by the cycle, never duplicated
    (at most one open alert per model, kind and subject)."""

    __tablename__ = "alert"
    __table_args__ = (
        Index(
            "ux_alert_open",
            "model_id",
            "kind",
            "subject",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index("ix_alert_model_opened", "model_id", "opened_at"),
    )
    kind: str  # performance | concept_drift | feature_drift | data_quality | skew
    subject: str  # the metric, feature or column it is about
    chunk_start: datetime | None = _when(nullable=True)  # the chunk that opened it
    value: float | None = None
    message: str = Field(sa_column=Column(Text, nullable=False))
    opened_at: datetime = _stamp()
    closed_at: datetime | None = _when(nullable=True)
    closed_reason: str | None = None


class ChunkDrift(_OfChunk, table=True):
    """Drift of one feature (or of all, by PCA reconstruction) on one complete chunk."""

    __tablename__ = "chunk_drift"
    __table_args__ = _keys(
        "ix_chunk_drift_model_chunk", "model_id", "version_id", "chunk_start", "feature"
    )
    version_id: int = Field(foreign_key="model_version.id")
    feature: str
    # jensen_shannon | reconstruction_error (nannyml's), ks | chi2 | wasserstein |
    # classifier | mmd (ml.drift_tests)
    method: str
    value: float
    threshold: float | None = None  # from the reference chunks (a distance's)
    p_value: float | None = None  # a test's, false-discovery corrected across features
    raw_alert: bool = False  # the method's own alert: noisy on its own
    alert: bool = False  # confirmed: see domain.drift
    rows: int
    computed_at: datetime = _stamp()


class ChunkTrust(_OfChunk, table=True):
    """Whether one complete chunk's estimate can be trusted (domain.trust), by one version:
    its rows outside that version's reference support, and a reference-vs-chunk
    classifier's ROC AUC (None where no cheap figure moved)."""

    __tablename__ = "chunk_trust"
    __table_args__ = _keys("ix_chunk_trust_model_chunk", "model_id", "version_id", "chunk_start")
    version_id: int = Field(foreign_key="model_version.id")
    out_of_domain_share: float
    domain_auc: float | None = None
    reliable: bool
    reason: str | None = None  # why not, naming the features
    rows: int
    computed_at: datetime = _stamp()


class RetrainDecision(_OfModel, table=True):
    """One evaluation of the retrain policy that mattered: a trigger, a skip and its
    reason, or the return to healthy (unchanged evaluations are not repeated)."""

    __tablename__ = "retrain_decision"
    __table_args__ = (Index("ix_retrain_decision_model", "model_id", "decided_at"),)
    version_id: int = Field(foreign_key="model_version.id")  # the champion it was about
    decided_at: datetime = _stamp()
    data_time: datetime = _when()  # the newest data when it was decided
    state: str  # healthy | disabled | running | cooling_down | waiting_for_labels | due
    trigger: str | None = None  # estimate | concept_drift | manual
    reason: str = Field(sa_column=Column(Text, nullable=False))
    labeled_rows: int = 0  # labeled production rows in the window at the time


class RetrainRun(_OfModel, table=True):
    """One retrain: why, on what exactly, how the gate judged it, and what came of it."""

    __tablename__ = "retrain_run"
    __table_args__ = (Index("ix_retrain_run_model", "model_id", "started_at"),)
    parent_version_id: int = Field(foreign_key="model_version.id")
    version_id: int | None = Field(default=None, foreign_key="model_version.id")  # registered
    status: str = "running"  # running | finished | failed
    decision: str | None = None  # promoted | candidate | rejected
    trigger: str | None = None  # estimate | concept_drift | manual
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    data_time: datetime = _when()  # the newest data when it started
    # JSON documents: the policy, the open alerts that triggered it, the training-data
    # manifest (batches, hashes, rows), the holdout, the gate's figures
    policy: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    alerts: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    manifest: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    gate: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    host: str = ""  # where it runs: a run whose process is gone is marked failed
    pid: int = 0
    started_at: datetime = _stamp()
    finished_at: datetime | None = _when(nullable=True)


class DaemonLease(SQLModel, table=True):
    """Which daemon runs on this store: one row, held by one process at a time. The holder
    renews its heartbeat; a row whose process is gone (same host) or whose heartbeat is
    stale may be taken over, so a crashed daemon never holds the store for ever."""

    __tablename__ = "daemon_lease"
    name: str = Field(primary_key=True)  # "daemon": one per store
    token: str  # drawn at each start: who holds it now
    host: str
    pid: int
    started_at: datetime = _stamp()
    heartbeat_at: datetime = _stamp()
    stopped_at: datetime | None = _when(nullable=True)  # a warm stop


class WebhookTarget(SQLModel, table=True):
    """A webhook of the config, known by a key (its URL may hold a token, so it is not
    stored); it is told of the events from the moment it was first configured."""

    __tablename__ = "webhook_target"
    key: str = Field(primary_key=True)  # sha256 of the URL, 16 hex digits
    host: str  # for people: where it goes
    first_seen: datetime = _stamp()


class Notification(SQLModel, table=True):
    """One message about one event for one webhook, kept until it is delivered (retried
    with backoff): never lost, never sent twice."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("target", "event"),
        Index("ix_notification_pending", "delivered_at", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(foreign_key="webhook_target.key")
    event: str  # alert:<id>:opened | alert:<id>:closed | retrain:<id>:<decision>
    model: str
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the JSON body
    created_at: datetime = _stamp()
    attempts: int = 0
    next_attempt_at: datetime = _stamp()
    delivered_at: datetime | None = _when(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
