"""Loading a registered model artifact (only if its hash matches) and scoring rows with it."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.errors import PerfwatchError
from perfwatch.files import verify
from perfwatch.recent import Recent

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from perfwatch.ml.inputs import ModelInputs

DECISION_THRESHOLD = 0.5  # a served prediction is score >= this, like predict() of sklearn
SKEW_SAMPLE = 500  # served rows re-scored per cycle
_loaded: Recent[Any] = Recent()  # (path, sha256) -> the unpickled classifier, the newest few


def load_model(path: Path, sha256: str) -> Any:
    """A registered classifier, after checking it is still the registered file (unpickled
    once per process: the hash check each time is what keeps that safe)."""
    verify(path, sha256, "model artifact")
    return _loaded.get((str(path), sha256), lambda: read_model(path))


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


@contextmanager
def quiet_sklearn() -> Iterator[None]:
    """Mute what every prediction of a user's pipeline would print: sklearn's feature-name
    chatter, and the FutureWarning LightGBM 4.5 triggers in scikit-learn 1.7 whenever a
    pipeline hands it numpy arrays ('force_all_finite' was renamed)."""
    import warnings

    # also for good, not only in the block: catch_warnings swaps the process's filters and
    # is not thread-safe, so another thread's block (a Dask client's, a daemon's other
    # cycles) can put back filters without this one while the model predicts
    warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)
        yield


def score(model: Any, rows: "pd.DataFrame", inputs: "ModelInputs") -> "np.ndarray":
    """The positive-class probability for each row, the rows given to the model in the
    types it was trained on."""
    with quiet_sklearn():
        proba = model.predict_proba(inputs.frame(rows))
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise PerfwatchError(
            f"the model returned probabilities of shape {proba.shape}",
            hint="perfwatch monitors binary classifiers: two classes",
        )
    return proba[:, 1]


def predict(scores: "np.ndarray", threshold: float = DECISION_THRESHOLD) -> "np.ndarray":
    return (scores >= threshold).astype("int64")


def fill_scores(
    model: Callable[[], Any],
    rows: "pd.DataFrame",
    *,
    inputs: "ModelInputs",
    score_column: str,
    prediction_column: str,
    threshold: float = DECISION_THRESHOLD,
) -> int:
    """Score the rows that lack a served score, and predict where no prediction was served
    (score >= `threshold`); return how many rows were scored.

    `model` is called for the classifier only when some row needs scoring: loading and
    hash-checking the artifact is skipped when the server logged every score.
    """
    import pandas as pd

    if score_column not in rows.columns:
        rows[score_column] = float("nan")
    if prediction_column not in rows.columns:
        rows[prediction_column] = pd.NA
    todo = rows[score_column].isna()
    if todo.any():
        rows.loc[todo, score_column] = score(model(), rows.loc[todo], inputs)
    rows[score_column] = rows[score_column].astype("float64")
    unpredicted = rows[prediction_column].isna() | todo
    if unpredicted.any():
        rows.loc[unpredicted, prediction_column] = predict(
            rows.loc[unpredicted, score_column].to_numpy(), threshold
        )
    rows[prediction_column] = rows[prediction_column].astype("int64")
    return int(todo.sum())


@dataclass(frozen=True)
class SkewCheck:
    """Served scores re-scored by the champion: how many, how many disagreed, by how much."""

    checked: int
    mismatched: int
    largest: float


@dataclass(frozen=True)
class SkewFailed:
    """The champion could not re-score the served rows: the check, not the rows, failed."""

    error: str


Skew = SkewCheck | SkewFailed  # what a cycle learnt of training-serving skew


def check_skew(
    model: Callable[[], Any],
    rows: "pd.DataFrame",
    *,
    served: "pd.Series",
    inputs: "ModelInputs",
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
    differences = np.abs(score(model(), picked, inputs) - picked[score_column].to_numpy(float))
    return SkewCheck(
        checked=len(sample),
        mismatched=int((differences > tolerance).sum()),
        largest=float(differences.max()),
    )
