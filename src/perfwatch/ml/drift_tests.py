"""The drift tests teams already run, as Alibi Detect offers them, from permissive
libraries (scipy, scikit-learn, LightGBM): Alibi Detect itself is under the Business
Source License since 0.12, and perfwatch does not depend on it.

Per feature and chunk, against the version's reference rows:
- `ks` (continuous): the two-sample Kolmogorov-Smirnov test, statistic and p-value;
- `chi2` (categorical): the chi-squared test of the chunk's category counts against the
  reference's, statistic and p-value;
- `wasserstein` (continuous): the earth mover's distance in units of the reference's
  standard deviation, with nannyml's rule for a threshold: the mean plus 3 standard
  deviations of the distances of the reference's own chunks.
The p-values of a chunk's features are corrected together for false discoveries
(Benjamini-Hochberg, ml.two_sample): a feature alerts when its corrected p-value is
under the model's `level`.

Of all features together, per chunk (a bounded sample of each side, seeded by the chunk):
- `classifier`: LightGBM telling the chunk's rows from the reference's (cross-validated,
  ml.trust), its ROC AUC, and the Mann-Whitney p-value of its out-of-fold scores;
- `mmd`: the maximum mean discrepancy with a Gaussian kernel (median heuristic) on the
  features standardised by the reference, and its permutation p-value.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfwatch.ingest.contract import Contract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from perfwatch.ml.chunk_metrics import Chunks

WASSERSTEIN_SIGMAS = 3.0


@dataclass(frozen=True)
class Tested:
    """One feature's (or all features') figure on one chunk."""

    value: float  # the statistic, distance or ROC AUC
    p_value: float | None  # None for a distance judged by a threshold
    threshold: float | None  # the distance's, from the reference chunks


def univariate(
    method: str,
    reference: "pd.Series",
    reference_chunks: "np.ndarray",
    values: "pd.Series",
    chunks: "Chunks",
) -> list[Tested]:
    """A feature's test on every chunk (rows in `values` grouped by `chunks`).
    `reference_chunks`: each reference row's chunk, for a distance's threshold."""
    import numpy as np

    seen = reference.dropna()
    groups = [values.iloc[chunks.order[a:b]].dropna() for a, b in _spans(chunks)]
    if method == "ks":
        return [_ks(seen.to_numpy("float64"), g.to_numpy("float64")) for g in groups]
    if method == "chi2":
        return [_chi2(seen.astype(str), g.astype(str)) for g in groups]
    if method == "wasserstein":
        numbers = seen.to_numpy("float64")
        scale = float(np.std(numbers)) or 1.0
        own = [
            _wasserstein(numbers, reference[reference_chunks == c].dropna().to_numpy("float64"))
            for c in np.unique(reference_chunks)
        ]
        threshold = float(np.mean(own) + WASSERSTEIN_SIGMAS * np.std(own)) / scale
        return [
            Tested(_wasserstein(numbers, g.to_numpy("float64")) / scale, None, threshold)
            for g in groups
        ]
    raise ValueError(f"unknown univariate drift method {method!r}")


def _spans(chunks: "Chunks") -> list[tuple[int, int]]:
    return list(zip(chunks.offsets[:-1].tolist(), chunks.offsets[1:].tolist(), strict=True))


def _ks(reference: "np.ndarray", values: "np.ndarray") -> Tested:
    from scipy.stats import ks_2samp

    if not len(values) or not len(reference):
        return Tested(float("nan"), None, None)
    result = ks_2samp(reference, values)
    return Tested(float(result.statistic), float(result.pvalue), None)


def _chi2(reference: "pd.Series", values: "pd.Series") -> Tested:
    from scipy.stats import chi2_contingency

    from perfwatch.ml.two_sample import contingency

    if not len(values) or not len(reference):
        return Tested(float("nan"), None, None)
    table = contingency(reference, values)
    if table.shape[1] < 2:
        return Tested(0.0, 1.0, None)
    result = chi2_contingency(table)
    return Tested(float(result.statistic), float(result.pvalue), None)


def _wasserstein(reference: "np.ndarray", values: "np.ndarray") -> float:
    from scipy.stats import wasserstein_distance

    if not len(values) or not len(reference):
        return float("nan")
    return float(wasserstein_distance(reference, values))


def multivariate(
    method: str,
    contract: Contract,
    reference: "pd.DataFrame",
    rows: "pd.DataFrame",
    chunks: "Chunks",
    *,
    sample: int,
    permutations: int,
) -> list[Tested]:
    """All features' test on every chunk, each seeded by its chunk's start."""
    tested = []
    for (a, b), start in zip(_spans(chunks), chunks.starts_ns.tolist(), strict=True):
        chunk = rows.iloc[chunks.order[a:b]]
        seed = int(start // 1_000_000_000) % 2**31
        if method == "classifier":
            tested.append(_classifier(contract, reference, chunk, sample, seed))
        elif method == "mmd":
            tested.append(_mmd(contract, reference, chunk, sample, permutations, seed))
        else:
            raise ValueError(f"unknown multivariate drift method {method!r}")
    return tested


def _classifier(
    contract: Contract, reference: "pd.DataFrame", chunk: "pd.DataFrame", sample: int, seed: int
) -> Tested:
    import numpy as np
    from scipy.stats import mannwhitneyu

    from perfwatch.ml.trust import encoded, told_apart
    from perfwatch.ml.trust import sample as draw

    rng = np.random.default_rng(seed)
    ours, theirs = draw(reference, rng, sample), draw(chunk, rng, sample)
    told = np.r_[np.zeros(len(ours)), np.ones(len(theirs))]
    scores, _ = told_apart(contract, encoded(contract, ours, theirs), told, rng, seed)
    result = mannwhitneyu(scores[told == 1], scores[told == 0], alternative="greater")
    auc = float(result.statistic) / (len(theirs) * len(ours))
    return Tested(auc, float(result.pvalue), None)


def _mmd(
    contract: Contract,
    reference: "pd.DataFrame",
    chunk: "pd.DataFrame",
    sample: int,
    permutations: int,
    seed: int,
) -> Tested:
    import numpy as np

    from perfwatch.ml.trust import encoded
    from perfwatch.ml.trust import sample as draw

    rng = np.random.default_rng(seed)
    ours, theirs = draw(reference, rng, sample), draw(chunk, rng, sample)
    both = _standardised(contract, encoded(contract, ours, theirs), len(ours))
    squared = np.sum(both**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * both @ both.T, 0.0)
    bandwidth = float(np.median(distances[np.triu_indices(len(both), 1)])) or 1.0
    kernel = np.exp(-distances / bandwidth)
    first = np.r_[np.ones(len(ours), bool), np.zeros(len(theirs), bool)]
    observed = _mmd_of(kernel, first)
    drawn = [_mmd_of(kernel, rng.permutation(first)) for _ in range(permutations)]
    p_value = (1 + sum(d >= observed for d in drawn)) / (1 + permutations)
    return Tested(observed, float(p_value), None)


def _standardised(contract: Contract, matrix: "np.ndarray", reference_rows: int) -> "np.ndarray":
    """Numbers in units of the reference's spread (missing: its mean), each category a
    column of its own (one-hot): the kernel's distances weigh every feature alike."""
    import numpy as np

    columns = []
    for index, rule in enumerate(contract.columns):
        values = matrix[:, index]
        if rule.kind == "categorical":
            codes = np.nan_to_num(values, nan=-1.0)
            columns += [(codes == code).astype(float) for code in np.unique(codes)]
            continue
        reference = values[:reference_rows]
        centre = float(np.nanmean(reference)) if np.isfinite(reference).any() else 0.0
        spread = float(np.nanstd(reference)) if np.isfinite(reference).any() else 0.0
        filled = np.where(np.isnan(values), centre, values)
        columns.append((filled - centre) / (spread or 1.0))
    return np.column_stack(columns)


def _mmd_of(kernel: "np.ndarray", first: "np.ndarray") -> float:
    """The (biased) squared MMD between the rows marked `first` and the others."""
    second = ~first
    return float(
        kernel[first][:, first].mean()
        + kernel[second][:, second].mean()
        - 2 * kernel[first][:, second].mean()
    )
