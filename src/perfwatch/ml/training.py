"""Training the LightGBM pipeline perfwatch ships (demo, tests, and later retraining)."""

from typing import TYPE_CHECKING, Any

from perfwatch import faults, stopping

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.ml.inputs import ModelInputs

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


def train_like(
    champion: Any,
    frame: "pd.DataFrame",
    *,
    inputs: "ModelInputs",
    target: str,
    categorical: list[str],
    seed: int = 0,
) -> tuple[Any, "ModelInputs"]:
    """A challenger of the champion's family, and the inputs it takes.

    A champion that is (or ends in) a LightGBM model is cloned: the same estimator or
    pipeline with the same parameters, refitted on `frame` given in the champion's input
    types, so the challenger takes exactly what the champion took (a bare LGBMClassifier
    on `category` columns stays one). Any other champion gets perfwatch's pipeline, which
    takes the inputs as stored. Seeded when the champion was not.
    """
    from sklearn.base import clone

    from perfwatch.ml.inputs import ModelInputs

    step = lightgbm_step(champion)
    if step is None:
        stored = ModelInputs.as_stored(inputs.names, categorical)
        return train(frame, features=inputs.names, categorical=categorical, target=target), stored
    challenger = clone(champion)
    prefix = f"{step}__" if step else ""
    if challenger.get_params().get(f"{prefix}random_state") is None:
        challenger.set_params(**{f"{prefix}random_state": seed})
    from perfwatch.ml.model import quiet_sklearn

    with quiet_sklearn():
        challenger.fit(
            inputs.frame(frame), frame[target].astype(int), **{f"{prefix}callbacks": [_stop_check]}
        )
    return challenger, inputs


def lightgbm_step(classifier: Any) -> str | None:
    """'' for a bare LightGBM model, the final step's name for a pipeline ending in one,
    None for anything else."""
    steps = getattr(classifier, "steps", None)
    final = steps[-1][1] if steps else classifier
    if not type(final).__module__.startswith("lightgbm"):
        return None
    return steps[-1][0] if steps else ""


def _stop_check(_env: Any) -> None:
    """After each boosting round: a warm stop does not wait for the whole fit."""
    faults.boosting_delay()
    stopping.check("the next boosting round")
