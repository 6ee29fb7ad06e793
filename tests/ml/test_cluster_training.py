"""A retrain across a Dask cluster (lightgbm.dask, a LocalCluster of two worker processes)
makes the challenger a local fit of the same rows and seed would make: the same family,
and a gate metric within 0.01."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from perfwatch.ml.cluster_training import in_task, train_across
from perfwatch.ml.inputs import ModelInputs, learn_inputs
from perfwatch.ml.model import score
from perfwatch.ml.training import train, train_like
from perfwatch.simulate.fleet import CATEGORICAL, FEATURES, TARGET, simulate_days

pytestmark = pytest.mark.slow  # a cluster of processes: seconds to start


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def days(count: int, seed: int) -> pd.DataFrame:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return simulate_days(start=start, days=count, runs_per_day=800, machines=10, seed=seed)


def both_fits(champion: Any, inputs: ModelInputs, client: Any) -> tuple[float, float]:
    """The ROC AUC on later rows of a local and a cluster fit of the same rows, seed 0."""
    import dask.dataframe as dd

    rows, later = days(30, seed=3), days(10, seed=4)
    frame = pd.concat([inputs.frame(rows), rows[[TARGET]]], axis=1)
    common = {"inputs": inputs, "target": TARGET, "categorical": CATEGORICAL}
    local, _ = train_like(champion, frame, **common)
    across, taken = train_across(
        champion,
        dd.from_pandas(frame, npartitions=4),
        **common,
        total_rows=len(frame),
        sample_rows=len(frame) // 2,
        client=client,
    )
    assert type(across) is type(local) and taken == inputs, "the champion's family"
    if isinstance(across, Pipeline):
        assert isinstance(across.steps[-1][1], LGBMClassifier), "to_local(), in the pipeline"
    labels = later[TARGET]
    return (
        roc_auc_score(labels, score(local, later, inputs)),
        roc_auc_score(labels, score(across, later, inputs)),
    )


def test_perfwatchs_pipeline_across_the_cluster_equals_a_local_fit_within_001(
    client: Any,
) -> None:
    history = days(20, seed=1)
    champion = train(history, features=FEATURES, categorical=CATEGORICAL, target=TARGET)
    inputs = ModelInputs.as_stored(FEATURES, CATEGORICAL)
    local, across = both_fits(champion, inputs, client)
    assert local > 0.85, "a model worth retraining"
    assert abs(local - across) <= 0.01, (local, across)


def test_a_bare_lightgbm_model_on_category_columns_stays_one_across_the_cluster(
    client: Any,
) -> None:
    history = days(20, seed=1)
    given = history[FEATURES].astype({c: "category" for c in CATEGORICAL})
    champion = LGBMClassifier(n_estimators=100, verbose=-1).fit(given, history[TARGET])
    inputs = learn_inputs(champion, given, features=FEATURES, categorical=CATEGORICAL)
    local, across = both_fits(champion, inputs, client)
    assert local > 0.85
    assert abs(local - across) <= 0.01, (local, across)


def test_outside_a_task_there_is_no_cluster_to_train_on() -> None:
    assert not in_task()
