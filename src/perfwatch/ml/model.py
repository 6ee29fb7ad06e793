"""Loading a registered model artifact (only if its hash matches) and scoring rows with it."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.errors import PerfwatchError
from perfwatch.files import verify

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DECISION_THRESHOLD = 0.5  # a served prediction is score >= this, like predict() of sklearn
SKEW_SAMPLE = 500  # served rows re-scored per cycle
_loaded: dict[tuple[str, str], Any] = {}  # (path, sha256) -> the unpickled classifier


def load_model(path: Path, sha256: str) -> Any:
    """A registered classifier, after checking it is still the registered file (unpickled
    once per process: the hash check each time is what keeps that safe)."""
    verify(path, sha256, "model artifact")
    key = (str(path), sha256)
    if key not in _loaded:
        _loaded[key] = read_model(path)
    return _loaded[key]


def read_model(path: Path) -> Any:
    """Unpickle a joblib/pickle file; a file that is no pickle gets a clear error."""
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling fails in many ways: truncated, text, wrong Python
        raise PerfwatchError(
            f"cannot load the model file {path}: {type(exc).__name__}: {exc}",
            hint="perfwatch loads a joblib/pickle file of an sklearn-compatible classifier,"
            " written with the library versions in constraints.txt",
        ) from None


def check_classifier(model: Any, path: Path) -> None:
    if not callable(getattr(model, "predict_proba", None)):
        raise PerfwatchError(
            f"{path} holds a {type(model).__name__}, which has no predict_proba",
            hint="register an sklearn-compatible binary classifier (a Pipeline"
            " ending in LightGBM, usually)",
        )


def score(model: Any, features: "pd.DataFrame") -> "np.ndarray":
    """The positive-class probability for each row."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's feature-name chatter
        proba = model.predict_proba(features)
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise PerfwatchError(
            f"the model returned probabilities of shape {proba.shape}",
            hint="perfwatch monitors binary classifiers: two classes",
        )
    return proba[:, 1]


def predict(scores: "np.ndarray") -> "np.ndarray":
    return (scores >= DECISION_THRESHOLD).astype("int64")


def fill_scores(
    model: Callable[[], Any],
    rows: "pd.DataFrame",
    *,
    features: list[str],
    score_column: str,
    prediction_column: str,
    missing: "pd.Series | None" = None,
) -> int:
    """Score the rows that lack a served score (all rows when `missing` is None); count them.

    `model` is called for the classifier only when some row needs scoring: loading and
    hash-checking the artifact is skipped when the server logged every score.
    """
    import pandas as pd

    todo = pd.Series(True, index=rows.index) if missing is None else missing
    if not todo.any() and score_column in rows.columns and prediction_column in rows.columns:
        rows[prediction_column] = rows[prediction_column].astype("int64")
        return 0
    if score_column not in rows.columns:
        rows[score_column] = float("nan")
    if prediction_column not in rows.columns:
        rows[prediction_column] = pd.NA
    if todo.any():
        scores = score(model(), rows.loc[todo, features])
        rows.loc[todo, score_column] = scores
        rows.loc[todo, prediction_column] = predict(scores)
    rows[score_column] = rows[score_column].astype("float64")
    rows[prediction_column] = rows[prediction_column].astype("int64")
    return int(todo.sum())


@dataclass(frozen=True)
class SkewCheck:
    """Served scores re-scored by the champion: how many, how many disagreed, by how much."""

    checked: int
    mismatched: int
    largest: float


def check_skew(
    model: Callable[[], Any],
    rows: "pd.DataFrame",
    *,
    served: "pd.Series",
    features: list[str],
    score_column: str,
    tolerance: float,
) -> SkewCheck | None:
    """Re-score an evenly spaced sample of the rows that came with a served score (None
    when none did): the same artifact on the same inputs gives the same score, unless
    serving prepares the inputs differently (training-serving skew)."""
    import numpy as np

    positions = np.flatnonzero(served.to_numpy())
    if not len(positions):
        return None
    sample = positions[
        np.linspace(0, len(positions) - 1, min(SKEW_SAMPLE, len(positions))).astype(int)
    ]
    picked = rows.iloc[sample]
    differences = np.abs(score(model(), picked[features]) - picked[score_column].to_numpy(float))
    return SkewCheck(
        checked=len(sample),
        mismatched=int((differences > tolerance).sum()),
        largest=float(differences.max()),
    )
