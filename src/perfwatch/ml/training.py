"""Training the LightGBM pipeline perfwatch ships (demo, tests, and later retraining)."""

from typing import TYPE_CHECKING, Any

from perfwatch import faults, stopping

if TYPE_CHECKING:
    import pandas as pd

LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.9,
    "verbose": -1,
    "n_jobs": 2,
}


def build_pipeline(
    *,
    features: list[str],
    categorical: list[str],
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> Any:
    """Categoricals ordinal-encoded (unknowns become -1), then LightGBM; DataFrames throughout.

    LightGBM 4.5 breaks on numpy input with scikit-learn >= 1.8, so the encoder hands it
    a DataFrame (set_output) whatever scikit-learn we run on.
    """
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    classifier = LGBMClassifier(random_state=seed, **(params or LGBM_PARAMS))
    return Pipeline([("encode", encoder), ("classify", classifier)])


def train(
    frame: "pd.DataFrame",
    *,
    features: list[str],
    categorical: list[str],
    target: str,
    seed: int = 0,
) -> Any:
    pipeline = build_pipeline(features=features, categorical=categorical, seed=seed)
    pipeline.fit(frame[features], frame[target].astype(int), classify__callbacks=[_stop_check])
    return pipeline


def _stop_check(_env: Any) -> None:
    """After each boosting round: a warm stop does not wait for the whole fit."""
    faults.boosting_delay()
    stopping.check("the next boosting round")
