"""Two-sample tests of one feature, and the false-discovery correction across features:
are these values drawn like those? From scipy, nothing of our own but the binning.

A test's p-value answers "could this be chance?" and, on tens of thousands of rows,
says no to shifts too small to matter; the Jensen-Shannon distance says how large a
shift is (0: the same distribution, 1: disjoint). A shift worth acting on needs both.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BINS = 20  # quantile bins of the first sample, for a continuous feature's distance


@dataclass(frozen=True)
class Compared:
    test: str  # ks (continuous) | chi2 (categorical)
    statistic: float
    p_value: float
    jensen_shannon: float  # base 2: in [0, 1]
    outside: float  # share of the second sample outside the first's support


def compare(first: "pd.Series", second: "pd.Series", *, categorical: bool) -> Compared:
    """The second sample's values against the first's (missing values left out)."""
    outside = outside_support(first, second, categorical=categorical)
    share = float(outside.mean()) if len(outside) else 0.0
    first, second = first.dropna(), second.dropna()
    if not len(first) or not len(second):
        nan = float("nan")
        return Compared("chi2" if categorical else "ks", nan, nan, nan, share)
    if categorical:
        return Compared(*_categorical(first.astype(str), second.astype(str)), share)
    return Compared(*_continuous(first.to_numpy("float64"), second.to_numpy("float64")), share)


def _continuous(first: "np.ndarray", second: "np.ndarray") -> tuple[str, float, float, float]:
    import numpy as np
    from scipy.stats import ks_2samp

    result = ks_2samp(first, second)
    edges = np.unique(np.quantile(first, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = [
        np.bincount(np.searchsorted(edges, v), minlength=len(edges) + 1) for v in (first, second)
    ]
    return "ks", float(result.statistic), float(result.pvalue), _js(*counts)


def contingency(first: "pd.Series", second: "pd.Series") -> "np.ndarray":
    """Each sample's count of every category either has: two rows, a column a category."""
    import numpy as np

    seen, counts = first.value_counts(), second.value_counts()
    categories = seen.index.union(counts.index)
    return np.vstack(
        [
            seen.reindex(categories, fill_value=0).to_numpy(),
            counts.reindex(categories, fill_value=0).to_numpy(),
        ]
    )


def _categorical(first: "pd.Series", second: "pd.Series") -> tuple[str, float, float, float]:
    from scipy.stats import chi2_contingency

    table = contingency(first, second)
    if table.shape[1] < 2:  # one category in both: nothing to test
        return "chi2", 0.0, 1.0, 0.0
    result = chi2_contingency(table)
    return "chi2", float(result.statistic), float(result.pvalue), _js(table[0], table[1])


def outside_support(first: "pd.Series", second: "pd.Series", *, categorical: bool) -> "np.ndarray":
    """Which of the second sample's values lie outside the first's support: a category
    it never had, a number beyond its range (a missing value is not outside)."""
    seen = first.dropna()
    if categorical:
        return (second.notna() & ~second.astype(str).isin(set(seen.astype(str)))).to_numpy()
    values = second.to_numpy(dtype="float64")
    if not len(seen):
        return values == values  # nothing seen: every number is outside
    return (values < seen.min()) | (values > seen.max())


def _js(first: "np.ndarray", second: "np.ndarray") -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(first / first.sum(), second / second.sum(), base=2))


def false_discovery(p_values: "list[float]") -> list[float]:
    """Benjamini-Hochberg adjusted p-values: a feature is flagged when its adjusted value is
    under the level, and at most that share of flagged features is expected to be false
    (testing 20 features at 0.05 alone would flag one a check by chance). NaN stays NaN."""
    import numpy as np
    from scipy.stats import false_discovery_control

    values = np.asarray(p_values, dtype="float64")
    adjusted = np.full(len(values), np.nan)
    known = ~np.isnan(values)
    if known.any():
        adjusted[known] = false_discovery_control(values[known], method="bh")
    return [float(v) for v in adjusted]
