"""Reading tables with pandas and typing them (the reference set), and chunk assignment."""

from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod
from perfwatch.errors import BatchRejected
from perfwatch.ingest.contract import Contract, derive_contract, enforce_types

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from perfwatch.config import ModelSettings

SUFFIXES = (".parquet", ".csv")


def read_arrow(path: Path) -> "pa.Table":
    """Read a Parquet or CSV file; reject it (with a reason) when it cannot be read or is empty."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise BatchRejected(
            f"{path.name} is empty (0 bytes)",
            hint="the producer wrote nothing; drop the complete file again",
        )
    try:
        if path.suffix == ".parquet":
            table = pq.ParquetFile(path).read(use_threads=False)
        else:
            table = pcsv.read_csv(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise BatchRejected(
            f"{path.name} is not a readable {kind} file: {exc}",
            hint="the file may be truncated or half-written; producers should"
            " write to a hidden .name and rename when done",
        ) from None
    if table.num_rows == 0:
        raise BatchRejected(f"{path.name} has no rows", hint="drop a file with rows")
    return table


def read_table(path: Path) -> "pd.DataFrame":
    """read_arrow, as a pandas DataFrame (for the reference set)."""
    return read_arrow(path).to_pandas()


def assign_chunks(rows: "pd.DataFrame", timestamp_column: str, period: ChunkPeriod) -> None:
    """Add the chunk column: each row's chunk start, as int64 ns since the epoch."""
    import numpy as np

    moments = rows[timestamp_column].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    rows[CHUNK_COLUMN] = (
        moments - period.origin_ns
    ) // period.length_ns * period.length_ns + period.origin_ns


def prepare_reference(
    frame: "pd.DataFrame", *, model: "ModelSettings"
) -> tuple["pd.DataFrame", Contract]:
    """Check and type a reference set (features, a binary target, timestamps, chunk column)
    and learn the validation contract from it."""
    required = [model.timestamp_column, model.target, *model.features]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise BatchRejected(
            f"the reference set lacks {', '.join(map(repr, missing))}",
            hint="the reference is labeled production-like data: it needs the"
            " features, the target and the timestamp column",
        )
    keep = required + [
        c for c in (model.score_column, model.prediction_column) if c in frame.columns
    ]
    contract = derive_contract(frame, features=model.features, categorical=model.categorical)
    rows = enforce_types(frame[keep].copy(), contract)
    targets = set(rows[model.target].dropna().unique().tolist())
    if not targets <= {0, 1} or len(targets) < 2 or rows[model.target].isna().any():
        raise BatchRejected(
            f"the reference target {model.target!r} must hold 0 and 1 only,"
            f" both present (found {sorted(map(str, targets))[:5]})",
            hint="encode the positive class (failure) as 1",
        )
    rows[model.target] = rows[model.target].astype("int64")
    rows[model.timestamp_column] = _utc_timestamps(
        rows[model.timestamp_column], model.timestamp_column
    )
    if model.score_column in rows.columns:
        _served_scores(rows, model)
    assign_chunks(rows, model.timestamp_column, period=model.chunk_period)
    return rows, contract


def _utc_timestamps(column: "pd.Series", name: str) -> "pd.Series":
    """Parse timestamps; a value without a zone is taken as UTC (documented in the README)."""
    import pandas as pd

    if column.isna().any():
        raise BatchRejected(
            f"{int(column.isna().sum())} rows have no timestamp ({name!r})",
            hint="every row needs a timestamp; fix the producer",
        )
    try:
        if pd.api.types.is_datetime64_any_dtype(column):
            parsed = column
        else:
            parsed = pd.to_datetime(column.astype(str), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise BatchRejected(
            f"column {name!r} holds values that are not timestamps: {exc}",
            hint="write ISO 8601 timestamps, ideally with a UTC offset",
        ) from None
    parsed = parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed.dt.tz_convert("UTC")
    return parsed.astype("datetime64[ns, UTC]")


def _served_scores(rows: "pd.DataFrame", model: "ModelSettings") -> "pd.Series":
    """Check served scores lie in [0, 1]; return which rows still need scoring."""
    import pandas as pd

    if model.score_column not in rows.columns:
        return pd.Series(True, index=rows.index)
    scores = pd.to_numeric(rows[model.score_column], errors="coerce").astype("float64")
    bad = rows[model.score_column].notna() & (scores.isna() | (scores < 0) | (scores > 1))
    if bad.any():
        first = rows.loc[bad, model.score_column].iloc[0]
        raise BatchRejected(
            f"column {model.score_column!r} holds {int(bad.sum())} values outside [0, 1]"
            f" (first: {first!r})",
            hint="the served score must be the positive class probability; a raw margin or a"
            " percentage is a serving bug (check the scaler/calibration in production)",
        )
    rows[model.score_column] = scores
    needs = scores.isna()
    if model.prediction_column in rows.columns:
        needs |= rows[model.prediction_column].isna()
    return needs
