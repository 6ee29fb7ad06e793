"""The drift tests teams already run (ml.drift_tests): each tells a shifted chunk from an
unshifted one, on every chunk at once."""

import numpy as np
import pandas as pd
import pytest

from perfwatch.ingest.contract import derive_contract
from perfwatch.ml.chunk_metrics import Chunks
from perfwatch.ml.drift_tests import multivariate, univariate

DAY = 86_400 * 10**9


def frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    air = rng.normal(300 + shift, 2, n)
    return pd.DataFrame(
        {
            "air": air,
            "process": air + 10 + rng.normal(0, 1, n),
            "kind": rng.choice(["L", "M", "H"], n, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def chunks() -> tuple[pd.DataFrame, Chunks, pd.DataFrame]:
    """A reference of 4 chunks; two production chunks: as the reference, then 3 K warmer."""
    reference = pd.concat([frame(500, seed=s) for s in range(4)], ignore_index=True)
    reference["chunk"] = np.repeat(np.arange(4) * DAY, 500)
    rows = pd.concat([frame(800, seed=10), frame(800, shift=3, seed=11)], ignore_index=True)
    return reference, Chunks.of(np.repeat([10 * DAY, 11 * DAY], 800)), rows


@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_a_continuous_test_passes_the_same_and_flags_the_shift(
    chunks: tuple[pd.DataFrame, Chunks, pd.DataFrame], method: str
) -> None:
    reference, grouped, rows = chunks
    same, warmer = univariate(
        method, reference["air"], reference["chunk"].to_numpy(), rows["air"], grouped
    )
    if method == "ks":
        assert same.p_value is not None and same.p_value > 0.01
        assert warmer.p_value is not None and warmer.p_value < 1e-6
    else:
        assert same.threshold is not None and same.value < same.threshold < warmer.value
    assert warmer.value > same.value


def test_chi_squared_flags_a_changed_mix_of_categories(
    chunks: tuple[pd.DataFrame, Chunks, pd.DataFrame],
) -> None:
    reference, grouped, rows = chunks
    rows = rows.copy()
    rows.loc[800:, "kind"] = "H"  # the second chunk: one kind only
    same, changed = univariate(
        "chi2", reference["kind"], reference["chunk"].to_numpy(), rows["kind"], grouped
    )
    assert same.p_value is not None and same.p_value > 0.01
    assert changed.p_value is not None and changed.p_value < 1e-6


@pytest.mark.parametrize("method", ["classifier", "mmd"])
def test_a_multivariate_test_passes_the_same_and_flags_a_broken_relation(
    chunks: tuple[pd.DataFrame, Chunks, pd.DataFrame], method: str
) -> None:
    """The second chunk keeps each feature's own distribution but breaks the relation of
    process to air temperature: only a test of the features together sees it."""
    reference, grouped, rows = chunks
    rows = rows.copy()
    rows.loc[800:, "air"] = frame(800, seed=12)["air"].to_numpy()
    rows.loc[800:, "process"] = frame(800, seed=13)["process"].to_numpy()
    contract = derive_contract(reference, features=["air", "process", "kind"], categorical=["kind"])
    same, broken = multivariate(
        method, contract, reference, rows, grouped, sample=400, permutations=100
    )
    assert same.p_value is not None and same.p_value > 0.01
    assert broken.p_value is not None and broken.p_value < 0.01
    assert broken.value > same.value
