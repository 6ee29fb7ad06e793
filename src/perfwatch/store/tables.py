"""Every table of the store. The schema itself is created only by Alembic migrations.

Unique keys make every write idempotent: a re-run of a cycle, or a file dropped twice,
updates or skips rows instead of duplicating them. Timestamps are UTC-aware.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from perfwatch.store.types import UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


def _when(*, nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=UTCDateTime, nullable=nullable)


def _stamp() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Model(SQLModel, table=True):
    """One monitored use case, declared in the config."""

    __tablename__ = "model"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: datetime = _stamp()


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
    created_at: datetime = _stamp()


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


class Batch(SQLModel, table=True):
    """One production file: ingested (rows stored under data_dir) or quarantined."""

    __tablename__ = "batch"
    __table_args__ = (UniqueConstraint("model_id", "content_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    file_name: str
    content_hash: str
    status: str  # ingested | quarantined
    reason: str | None = Field(default=None, sa_column=Column(Text))
    rows: int = 0
    rows_dropped: int = 0  # duplicated ids, not stored
    data_start: datetime | None = _when(nullable=True)
    data_end: datetime | None = _when(nullable=True)
    stored_path: str | None = None
    ingested_at: datetime = _stamp()


class BatchChunk(SQLModel, table=True):
    """How many of a batch's rows fall into a chunk: the map from chunks to stored files."""

    __tablename__ = "batch_chunk"
    __table_args__ = (
        UniqueConstraint("batch_id", "chunk_start"),
        Index("ix_batch_chunk_model_chunk", "model_id", "chunk_start"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id")
    model_id: int = Field(foreign_key="model.id")
    chunk_start: datetime = _when()
    chunk_end: datetime = _when()
    rows: int


class ChunkEstimate(SQLModel, table=True):
    """CBPE's estimate of one metric on one chunk, by one version."""

    __tablename__ = "chunk_estimate"
    __table_args__ = (
        UniqueConstraint("model_id", "version_id", "chunk_start", "metric"),
        Index("ix_chunk_estimate_model_chunk", "model_id", "chunk_start"),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id")
    version_id: int = Field(foreign_key="model_version.id")
    chunk_start: datetime = _when()
    chunk_end: datetime = _when()
    metric: str
    value: float
    lower: float | None = None
    upper: float | None = None
    sampling_error: float | None = None
    threshold: float | None = None
    alert: bool = False
    provisional: bool = True
    rows: int
    estimated_at: datetime = _stamp()


class DataQualityFinding(SQLModel, table=True):
    """A soft problem in a batch, counted per chunk and column (nulls, ranges, categories)."""

    __tablename__ = "data_quality_finding"
    __table_args__ = (
        UniqueConstraint("batch_id", "chunk_start", "column", "kind"),
        Index("ix_finding_model_chunk", "model_id", "chunk_start"),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id")
    batch_id: int = Field(foreign_key="batch.id")
    chunk_start: datetime = _when()
    column: str
    kind: str  # null | out_of_range | unseen_category | duplicate_id
    count: int
    detail: str = ""


class Cycle(SQLModel, table=True):
    """One monitoring cycle of one model: when, how much, and how it ended."""

    __tablename__ = "cycle"
    __table_args__ = (Index("ix_cycle_model_started", "model_id", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id")
    started_at: datetime = _stamp()
    finished_at: datetime | None = _when(nullable=True)
    status: str = "running"  # running | ok | failed | interrupted
    batches: int = 0
    quarantined: int = 0
    rows: int = 0
    chunks_estimated: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    timings: str | None = Field(default=None, sa_column=Column(Text))  # JSON: step -> seconds
