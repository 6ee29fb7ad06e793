"""The trust figures of complete chunks (domain.trust): rows outside the reference's
support, counted for all chunks at once, and a reference-vs-chunk classifier's ROC AUC.

The support is the version's validation contract (ingest.contract): each numeric
feature's reference range widened by its tolerance, each categorical feature's values.
The classifier is LightGBM on a bounded sample of both sides, cross-validated: a small,
fixed cost per chunk (~15 ms), seeded by the chunk so its figure is reproducible.
"""

from typing import TYPE_CHECKING

from perfwatch.domain.trust import Outside
from perfwatch.ingest.contract import ColumnRule, Contract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from perfwatch.ml.chunk_metrics import Chunks

SAMPLE_ROWS = 500  # per side: the AUC's noise at 500 + 500 rows is about 0.02
FOLDS = 2
CLASSIFIER = {  # small and fast: a shift worth naming is easy to tell
    "objective": "binary",
    "num_leaves": 7,
    "learning_rate": 0.2,
    "min_data_in_leaf": 20,
    "max_bin": 63,
    "num_threads": 1,
    "deterministic": True,
    "verbose": -1,
}
ROUNDS = 20
TELLING_SHARE = 0.25  # a feature that gives this share of the classifier's gain is named


def outside_support(
    contract: Contract, rows: "pd.DataFrame", chunks: "Chunks"
) -> tuple["np.ndarray", list[tuple[Outside, ...]]]:
    """Per chunk: the share of rows with any feature outside the support, and each
    feature's rows outside it by side (largest first)."""
    import numpy as np

    sizes = np.maximum(chunks.sizes, 1)
    anywhere = np.zeros(len(rows), dtype=bool)
    found: list[list[Outside]] = [[] for _ in sizes]
    for rule in contract.columns:
        for side, mask in _outside(rule, rows[rule.name]).items():
            anywhere |= mask
            counts = np.bincount(chunks.of_row, weights=mask, minlength=len(sizes))
            for chunk in np.flatnonzero(counts):
                found[chunk].append(Outside(rule.name, side, float(counts[chunk] / sizes[chunk])))
    shares = np.bincount(chunks.of_row, weights=anywhere, minlength=len(sizes)) / sizes
    return shares, [tuple(sorted(f, key=lambda o: -o.share)) for f in found]


def _outside(rule: ColumnRule, values: "pd.Series") -> dict[str, "np.ndarray"]:
    import numpy as np
    import pandas as pd

    if rule.kind == "categorical":
        text = values.astype("string")
        unseen = (text.notna() & ~text.isin(rule.categories)).to_numpy(dtype=bool)
        return {"unseen": unseen}
    if rule.low is None:
        return {}
    low, high = rule.allowed_range()
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return {"above": numbers > high, "below": numbers < low}


def domain_auc(
    contract: Contract, reference: "pd.DataFrame", chunk: "pd.DataFrame", *, seed: int
) -> tuple[float, tuple[str, ...]]:
    """How well LightGBM tells the chunk's rows from the reference's (cross-validated ROC
    AUC on a bounded sample of each), and the features it tells them apart by."""
    import numpy as np
    from scipy.stats import rankdata

    rng = np.random.default_rng(abs(seed))
    ours, theirs = sample(reference, rng), sample(chunk, rng)
    told = np.r_[np.zeros(len(ours)), np.ones(len(theirs))]
    scores, gain = told_apart(contract, encoded(contract, ours, theirs), told, rng, seed)
    ranks = rankdata(scores)
    positives = len(theirs)
    auc = (ranks[told == 1].sum() - positives * (positives + 1) / 2) / (positives * len(ours))
    names = [r.name for r in contract.columns]
    share = gain / gain.sum() if gain.sum() > 0 else gain
    telling = tuple(names[i] for i in np.argsort(-share) if share[i] >= TELLING_SHARE)
    return float(auc), telling


def told_apart(
    contract: Contract,
    features: "np.ndarray",
    told: "np.ndarray",
    rng: "np.random.Generator",
    seed: int,
) -> tuple["np.ndarray", "np.ndarray"]:
    """Cross-validated: each row's out-of-fold probability of being `told` 1 (the
    chunk's, not the reference's), and each feature's total gain in telling them apart."""
    import lightgbm
    import numpy as np

    fold = rng.permutation(len(told)) % FOLDS
    scores, gain = np.empty(len(told)), np.zeros(features.shape[1])
    categorical = [i for i, r in enumerate(contract.columns) if r.kind == "categorical"]
    for k in range(FOLDS):
        train = lightgbm.Dataset(
            features[fold != k], told[fold != k], categorical_feature=categorical
        )
        booster = lightgbm.train(CLASSIFIER | {"seed": abs(seed) % 2**31}, train, ROUNDS)
        scores[fold == k] = booster.predict(features[fold == k])
        gain += booster.feature_importance(importance_type="gain")
    return scores, gain


def sample(
    rows: "pd.DataFrame", rng: "np.random.Generator", size: int = SAMPLE_ROWS
) -> "pd.DataFrame":
    """At most `size` of the rows, drawn without replacement."""
    if len(rows) <= size:
        return rows
    return rows.iloc[rng.choice(len(rows), size, replace=False)]


def encoded(contract: Contract, *frames: "pd.DataFrame") -> "np.ndarray":
    """Both sides as one float matrix in the contract's column order: numbers as
    numbers, a category as its position among the reference's (unseen: one past them)."""
    import numpy as np
    import pandas as pd

    columns = []
    for rule in contract.columns:
        values = pd.concat([f[rule.name] for f in frames], ignore_index=True)
        if rule.kind == "categorical":
            text = values.astype("string")
            codes = pd.Index(rule.categories).get_indexer(text.fillna(""))
            codes = np.where(codes < 0, len(rule.categories), codes).astype(float)
            columns.append(np.where(text.isna().to_numpy(), np.nan, codes))
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            columns.append(numbers.to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns)
