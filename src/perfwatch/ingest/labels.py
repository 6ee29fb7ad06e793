"""Delayed-label files: id + 0/1 target (+ an optional label time), read and checked alone.

A file that breaks a hard rule (unreadable, no id or target column, a missing, text or
non-binary target) is rejected whole with a reason: half of a maintenance log applied
is worse than none, and the producer can fix and re-send it.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.errors import BatchRejected
from perfwatch.ingest.batch import read_arrow
from perfwatch.ingest.rows import (
    as_numbers,
    as_text,
    as_timestamps,
    require_columns,
    require_values,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from perfwatch.config import ModelSettings


def read_labels(path: Path, *, model: "ModelSettings") -> "pa.Table":
    """Read one label file: columns id (text), target (int64 0/1), label time (if given)."""
    import pyarrow as pa

    table = read_arrow(path, model.read)
    require_columns(
        table,
        [model.id_column, model.target],
        hint=f"a label file needs the row id {model.id_column!r} and the target"
        f" {model.target!r} (and optionally the label time {model.label_time_column!r})",
    )
    require_values(table, model.id_column, "id")
    columns = {
        model.id_column: as_text(table.column(model.id_column), model.id_column),
        model.target: _targets(table, model.target),
    }
    if model.label_time_column in table.column_names:
        columns[model.label_time_column] = as_timestamps(
            table.column(model.label_time_column), model.label_time_column, model.read
        )
    return pa.table(columns)


def _targets(table: "pa.Table", name: str) -> "pa.ChunkedArray":
    """0/1 as int64; booleans count as 0/1; anything else rejects the file."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(name)
    require_values(table, name, "target")
    if pa.types.is_boolean(values.type):
        return values.cast(pa.int64())
    numbers = as_numbers(values, name)  # rejects text that is not a number
    binary = pc.is_in(numbers, value_set=pa.array([0.0, 1.0]))
    if not pc.all(binary).as_py():
        others = pc.unique(numbers.filter(pc.invert(binary))).to_pylist()
        raise BatchRejected(
            f"column {name!r} holds {len(numbers) - pc.sum(binary).as_py()} targets other"
            f" than 0 and 1 (e.g. {', '.join(map(repr, sorted(others)[:3]))})",
            hint="encode the positive class (failure) as 1 and the negative as 0",
        )
    return numbers.cast(pa.int64())


def first_targets(
    ids: "pa.ChunkedArray", targets: "pa.ChunkedArray"
) -> tuple["np.ndarray", "np.ndarray"]:
    """Masks over a cycle's labels: the first label of each id, and later labels that
    contradict it (repeats of the same value are neither)."""
    from perfwatch.ingest.rows import first_occurrences

    first = first_occurrences(ids)
    if first.all():  # the usual case: nothing to compare
        return first, ~first
    id_values, target_values = ids.to_pandas(), targets.to_pandas()
    firsts = target_values[first].set_axis(id_values[first])
    contradicts = ~first & (id_values.map(firsts).to_numpy() != target_values.to_numpy())
    return first, contradicts
