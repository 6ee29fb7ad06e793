"""Production batches (and reference sets): each file is read and checked alone, the rows
of a cycle are worked on together.

The hard rules are checked per file at the Arrow level (column names, null counts,
types, the range of served scores), which is cheap and keeps every rejection
attributable to its file. The row work (types, chunks, duplicated ids) then runs once
on all the files of a cycle, so a backlog of many small files costs about what one big
file does.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.domain.chunks import CHUNK_COLUMN, Chunking, RowChunks
from perfwatch.errors import BatchRejected
from perfwatch.ingest.batch import Part, assign_chunks, assign_row_chunks, read_arrow
from perfwatch.ingest.contract import Contract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from perfwatch.config import ModelSettings, ReadSettings

BATCH_COLUMN = "__batch"  # which file of the cycle a row came from (its position)
UTC_NS = ("ns", "UTC")


def read_batch(path: Path, *, model: "ModelSettings", part: Part | None = None) -> "pa.Table":
    """Read one production file (or a part of it) and apply the hard rules; return its
    typed columns."""
    table = read_arrow(path, model.read, part)
    require_columns(
        table,
        [model.id_column, model.timestamp_column, *model.features],
        hint=f"every batch needs {model.id_column!r}, {model.timestamp_column!r} and the"
        " model's features; fix the producer or the model's 'features' in the config",
    )
    require_values(table, model.id_column, "id")
    return _typed(
        table, model, {model.id_column: as_text(table.column(model.id_column), model.id_column)}
    )


def read_reference(path: Path, *, model: "ModelSettings") -> tuple["pd.DataFrame", Contract]:
    """Read a labeled reference set under the same rules as batches, plus a binary target
    with both classes; learn the validation contract from it."""
    from perfwatch.ingest.contract import derive_contract

    table = read_arrow(path, model.read)
    require_columns(
        table,
        [model.timestamp_column, model.target, *model.features],
        hint="the reference is labeled production-like data: it needs the features, the"
        " target and the timestamp column",
    )
    rows = _typed(
        table, model, {model.target: as_numbers(table.column(model.target), model.target)}
    ).to_pandas()
    targets = set(rows[model.target].dropna().unique().tolist())
    if not targets <= {0, 1} or len(targets) < 2 or rows[model.target].isna().any():
        raise BatchRejected(
            f"the reference target {model.target!r} must hold 0 and 1 only, both present"
            f" (found {sorted(map(str, targets))[:5]})",
            hint="encode the positive class (failure) as 1",
        )
    rows[model.target] = rows[model.target].astype("int64")
    assign_chunks(rows, model.timestamp_column, model.chunking)
    return rows, derive_contract(rows, features=model.features, categorical=model.categorical)


def require_columns(table: "pa.Table", required: list[str], *, hint: str) -> None:
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise BatchRejected(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}",
            hint=hint,
        )


def require_values(table: "pa.Table", column: str, what: str) -> None:
    if table.column(column).null_count:
        raise BatchRejected(
            f"{table.column(column).null_count} rows have no {what} ({column!r} is empty)",
            hint=f"every row needs a {what}; fix the producer",
        )


def _typed(
    table: "pa.Table", model: "ModelSettings", columns: dict[str, "pa.ChunkedArray"]
) -> "pa.Table":
    """Timestamps, features and served outputs in their final types, added to `columns`.

    The one place the typing rules live, for batches and reference sets alike.
    """
    import pyarrow as pa

    require_values(table, model.timestamp_column, "timestamp")
    columns[model.timestamp_column] = as_timestamps(
        table.column(model.timestamp_column), model.timestamp_column, model.read
    )
    for name in model.features:
        values = table.column(name)
        columns[name] = (
            as_text(values, name) if name in model.categorical else as_numbers(values, name)
        )
    if model.score_column in table.column_names:
        columns[model.score_column] = as_scores(
            table.column(model.score_column), model.score_column
        )
    if model.prediction_column in table.column_names:
        columns[model.prediction_column] = as_numbers(
            table.column(model.prediction_column), model.prediction_column
        )
    return pa.table(columns)  # extra columns are accepted and ignored


def _cast(values: "pa.ChunkedArray", to: "pa.DataType") -> "pa.ChunkedArray | None":
    """The values as `to`, or None where Arrow cannot cast them."""
    import pyarrow as pa

    try:
        return values if values.type == to else values.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def as_text(values: "pa.ChunkedArray", name: str) -> "pa.ChunkedArray":
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(values.type):
        # Python's spelling: a CSV reader takes the True/False pandas writes for booleans,
        # while the reference may hold them as text; Arrow's own cast says "true"
        return pc.if_else(values, "True", "False")
    text = _cast(values, pa.string())
    if text is None:
        raise BatchRejected(
            f"column {name!r} holds {values.type} values, not text or numbers",
            hint=f"write {name!r} as a plain column of labels (strings)",
        )
    return text


def as_numbers(values: "pa.ChunkedArray", name: str) -> "pa.ChunkedArray":
    """float64; text that does not parse as a number rejects the batch."""
    import pyarrow as pa

    numbers = _cast(values, pa.float64())
    if numbers is not None:
        return numbers
    import pandas as pd

    raw = values.to_pandas()
    parsed = pd.to_numeric(raw.astype("string"), errors="coerce")
    bad = (raw.notna() & parsed.isna()).to_numpy()
    if not bad.any():
        return pa.chunked_array(
            [pa.array(parsed.to_numpy(dtype="float64", na_value=float("nan")), from_pandas=True)]
        )
    first = int(bad.nonzero()[0][0])
    example = str(raw.iloc[first])
    comma = re.fullmatch(r"-?\d*,\d+", example.strip()) is not None
    raise BatchRejected(
        f"column {name!r} holds text where numbers are expected"
        f" ({int(bad.sum())} rows, first at row {first + 1}: {example!r})",
        hint="the numbers are written with a decimal comma: set decimal = ',' (and delimiter"
        " = ';' if fields are separated so) under [models.read] for this model"
        if comma
        else f"fix the producer so {name!r} is numeric, then drop the corrected"
        " file into the inbox again",
    )


def as_timestamps(
    values: "pa.ChunkedArray", name: str, read: "ReadSettings | None" = None
) -> "pa.ChunkedArray":
    """UTC timestamps; values without a zone are taken as UTC (documented in the README).
    Text is ISO 8601 unless `read.timestamp_format` says otherwise; numbers are epochs
    in `read.timestamp_unit`."""
    import pyarrow as pa

    target = pa.timestamp(*UTC_NS)
    if values.type == target:
        return values
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return values.cast(target)
    import pandas as pd

    unit = read.timestamp_unit if read else None
    numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    try:
        if numeric and unit:
            parsed = pd.to_datetime(values.to_pandas(), unit=unit, utc=True)
        else:
            written = read.timestamp_format if read and read.timestamp_format else "ISO8601"
            parsed = pd.to_datetime(values.to_pandas().astype(str), utc=True, format=written)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BatchRejected(
            f"column {name!r} holds values that are not timestamps: {exc}",
            hint="numbers look like epochs: set timestamp_unit = 's' (or 'ms') under [models.read]"
            if numeric
            else "write ISO 8601 timestamps, ideally with a UTC offset, or give their format"
            ' under [models.read], e.g. timestamp_format = "%d/%m/%Y %H:%M"',
        ) from None
    if numeric and unit:
        _check_epoch_unit(parsed, name, unit)
    return pa.chunked_array([pa.array(parsed.astype("datetime64[ns, UTC]"), type=target)])


EPOCH_FLOOR = "1980-01-01"  # epochs before it are read in too big a unit (seconds as ms)


def _check_epoch_unit(parsed: "pd.Series", name: str, unit: str) -> None:
    """Epoch numbers read in a bigger unit than they were written in land in 1970, where
    no production data is: refused, naming the unit to try."""
    import pandas as pd

    earliest = parsed.min()
    if pd.isna(earliest) or earliest >= pd.Timestamp(EPOCH_FLOOR, tz="UTC"):
        return
    others = ", ".join(repr(u) for u in ("s", "ms", "us", "ns") if u != unit)
    raise BatchRejected(
        f"column {name!r} read as epoch {unit} puts rows in {earliest:%Y-%m-%d}"
        f" (before {EPOCH_FLOOR[:4]}): the numbers are likely in another unit",
        hint=f"set timestamp_unit under [models.read] to the unit they are written in"
        f" ({others}; today's epoch has 10 digits in seconds, 13 in milliseconds)",
    )


def as_scores(values: "pa.ChunkedArray", name: str) -> "pa.ChunkedArray":
    """The served probability: numbers in [0, 1], or missing (then perfwatch scores the row)."""
    import pyarrow.compute as pc

    scores = as_numbers(values, name)
    low, high = pc.min_max(scores).values()
    if low.is_valid and (low.as_py() < 0 or high.as_py() > 1):
        outside = pc.or_(pc.less(scores, 0), pc.greater(scores, 1))
        first = scores.filter(outside)[0].as_py()
        raise BatchRejected(
            f"column {name!r} holds {pc.sum(outside).as_py()} values outside [0, 1]"
            f" (first: {first!r})",
            hint="the served score must be the positive class probability; a raw margin or a"
            " percentage is a serving bug (check the scaler/calibration in production)",
        )
    return scores


@dataclass
class CycleRows:
    """The rows of every accepted file of a cycle, ready to score, store and estimate."""

    rows: "pd.DataFrame"  # with BATCH_COLUMN and CHUNK_COLUMN
    needs_scores: "pd.Series"  # rows without a served score (perfwatch scores them)
    repeated: "pd.DataFrame"  # BATCH_COLUMN, CHUNK_COLUMN of rows dropped as repeated ids


def combine(
    tables: list["pa.Table"],
    *,
    model: "ModelSettings",
    chunking: Chunking,
    tail: tuple[int, int] | None = None,
) -> CycleRows:
    """Concatenate the files' rows (in file order), drop repeated ids, assign chunks (row
    chunks continue the open one, `tail`: its start ns and rows)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    tagged = [
        table.append_column(BATCH_COLUMN, pa.array(np.full(table.num_rows, index, np.int32)))
        for index, table in enumerate(tables)
    ]
    table = pa.concat_tables(tagged, promote_options="permissive")
    repeated = ~first_occurrences(table.column(model.id_column))
    rows = table.to_pandas()
    needs = pd.Series(True, index=rows.index)
    if model.score_column in rows.columns:
        needs = rows[model.score_column].isna()
    keep = ~repeated
    if isinstance(chunking, RowChunks):  # only the kept rows take places in the chunks
        kept = rows.loc[keep, [model.id_column, model.timestamp_column]].copy()
        assign_row_chunks(kept, model.timestamp_column, chunking.size, tail)
        rows[CHUNK_COLUMN] = np.int64(0)
        rows.loc[keep, CHUNK_COLUMN] = kept[CHUNK_COLUMN]
        if repeated.any():  # a repeat counts in the chunk of its id's first row
            first = kept.drop_duplicates(model.id_column).set_index(model.id_column)
            repeats = rows.loc[repeated, model.id_column]
            rows.loc[repeated, CHUNK_COLUMN] = repeats.map(first[CHUNK_COLUMN]).to_numpy()
    else:
        assign_chunks(rows, model.timestamp_column, chunking)
    dropped = rows.loc[repeated, [BATCH_COLUMN, CHUNK_COLUMN]]
    return CycleRows(
        rows=rows.loc[keep].reset_index(drop=True),
        needs_scores=needs[keep].reset_index(drop=True),
        repeated=dropped,
    )


def first_occurrences(ids: "pa.ChunkedArray") -> "np.ndarray":
    """True where an id appears for the first time (in row order).

    Arrow numbers the distinct values in order of first appearance, so a row is a first
    occurrence exactly when its code exceeds every code before it: one hash pass and one
    scan. The file's chunks are encoded as they are (they share one dictionary): joining
    them first copies every id and made this three times slower on a million.
    """
    import numpy as np
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(ids).chunks
    codes = np.concatenate([c.indices.to_numpy() for c in encoded] or [np.zeros(0, np.int64)])
    before = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
    return codes > before
