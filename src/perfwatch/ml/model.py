"""Loading a registered model artifact (only if its hash matches) and scoring rows with it."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.errors import PerfwatchError
from perfwatch.files import verify

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DECISION_THRESHOLD = 0.5  # a served prediction is score >= this, like predict() of sklearn


def load_model(path: Path, sha256: str) -> Any:
    """Load a registered classifier after checking it is still the registered file."""
    verify(path, sha256, "model artifact")
    return read_model(path)


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
