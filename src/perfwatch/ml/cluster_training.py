"""Retraining across a Dask cluster, for training rows beyond one worker's memory.

The rows come as a Dask DataFrame (the model's inputs and the target, partitions spread
over the workers); `lightgbm.dask` trains one booster across the workers that hold them,
and `to_local()` brings it back as a plain LightGBM model in the champion's family: a
bare LightGBM champion gets the local model itself; a pipeline keeps its steps before
LightGBM, fitted on a sample of at most `sample_rows` rows in this process (an encoder,
a scaler: they learn little from more rows, and cannot train across workers), with the
local model as its final step. So the gate, the registry and serving see what a local
retrain would have made.
"""

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from perfwatch.ml.inputs import ModelInputs
from perfwatch.ml.training import build_pipeline, lightgbm_step

if TYPE_CHECKING:
    from collections.abc import Iterator

    import dask.dataframe as dd
    from distributed import Client


def in_task() -> bool:
    """Whether this runs as a task on a Dask worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


@contextmanager
def cluster_client() -> "Iterator[Client]":
    """In a task: a client of its cluster, the task seceded from its worker's threads
    while it waits (that worker's share of a training runs beside it)."""
    from distributed import worker_client

    with worker_client() as client:
        yield client


def train_across(
    champion: Any,
    rows: "dd.DataFrame",
    *,
    inputs: ModelInputs,
    target: str,
    categorical: list[str],
    total_rows: int,
    sample_rows: int,
    client: "Client",
    seed: int = 0,
) -> tuple[Any, ModelInputs]:
    """train_like across the cluster: a challenger of the champion's family trained on
    `rows` (the champion's inputs and the target), and the inputs it takes."""
    from lightgbm.dask import DaskLGBMClassifier
    from sklearn.base import clone

    step = lightgbm_step(champion)
    features = inputs.names
    if step is None:  # like train_like: perfwatch's pipeline, taking the inputs as stored
        inputs = ModelInputs.as_stored(features, categorical)
        champion = build_pipeline(features=features, categorical=categorical, seed=seed)
        step = "classify"
    workers = len(client.scheduler_info()["workers"])
    rows = rows.repartition(npartitions=max(rows.npartitions, workers))
    given, labels = rows[features], rows[target].astype(int)
    prepare = None
    if step:  # the pipeline's steps before LightGBM learn from a sample, here
        prepare = clone(champion)[:-1]
        share = min(1.0, sample_rows / max(total_rows, 1))
        sample = client.compute(rows.sample(frac=share, random_state=seed)).result()
        prepare.fit(sample[features], sample[target].astype(int))
        meta = prepare.transform(sample[features].head(1)).iloc[:0]
        given = given.map_partitions(prepare.transform, meta=meta)
    params = clone(champion.steps[-1][1] if step else champion).get_params()
    if params.get("random_state") is None:  # seeded when the champion was not, as locally
        params["random_state"] = seed
    params.pop("n_jobs", None)  # lightgbm.dask uses each worker's threads, and says so
    model = DaskLGBMClassifier(client=client, **params)
    model.fit(given, labels)
    local = model.to_local()
    if prepare is None:
        return local, inputs
    challenger = clone(champion)
    challenger.steps = [*prepare.steps, (step, local)]
    return challenger, inputs
