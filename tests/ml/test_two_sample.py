"""Two-sample tests of a feature and the false-discovery correction (ml.two_sample)."""

import numpy as np
import pandas as pd
import pytest

from perfwatch.ml.two_sample import compare, false_discovery, outside_support


def normal(n: int, mean: float = 0.0, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(mean, 1.0, n))


def test_the_same_distribution_is_not_told_apart() -> None:
    found = compare(normal(5000), normal(2000, seed=1), categorical=False)
    assert found.test == "ks" and found.p_value > 0.01 and found.jensen_shannon < 0.1


def test_a_shifted_distribution_is_told_apart_and_measured() -> None:
    small = compare(normal(5000), normal(2000, mean=0.2, seed=1), categorical=False)
    large = compare(normal(5000), normal(2000, mean=2.0, seed=1), categorical=False)
    assert small.p_value < 1e-6 and large.p_value < 1e-6
    assert small.jensen_shannon < 0.2 < 0.5 < large.jensen_shannon, "the distance grows"
    assert large.outside > small.outside


def test_categories_by_chi_squared_and_a_category_never_seen() -> None:
    seen = pd.Series(["L"] * 600 + ["M"] * 300 + ["H"] * 100)
    same = compare(seen, pd.Series(["L"] * 60 + ["M"] * 30 + ["H"] * 10), categorical=True)
    assert same.test == "chi2" and same.p_value > 0.5 and same.outside == 0
    other = compare(seen, pd.Series(["L"] * 20 + ["M"] * 30 + ["X"] * 50), categorical=True)
    assert other.p_value < 1e-6 and other.outside == pytest.approx(0.5)


def test_outside_support_per_row_ignores_missing_values() -> None:
    seen = pd.Series([1.0, 2.0, 3.0])
    assert outside_support(seen, pd.Series([0.5, 2.0, None, 3.5]), categorical=False).tolist() == [
        True,
        False,
        False,
        True,
    ]
    assert outside_support(
        pd.Series(["a"]), pd.Series(["a", "b", None]), categorical=True
    ).tolist() == [
        False,
        True,
        False,
    ]


def test_benjamini_hochberg_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04, 0.5 times 4/rank: 0.04, 0.06, 0.0533, 0.5; then the running
    # minimum from the largest down: 0.04, 0.0533, 0.0533, 0.5
    adjusted = false_discovery([0.01, 0.04, 0.03, 0.5, float("nan")])
    assert adjusted[:4] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(adjusted[4])
