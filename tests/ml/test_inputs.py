"""The inputs a model takes, learnt from the artifact and the reference as written."""

import lightgbm
import numpy as np
import pandas as pd
import pytest

from perfwatch.errors import PerfwatchError
from perfwatch.ml.inputs import (
    CATEGORY,
    NUMBER,
    TEXT,
    FeatureInput,
    ModelInputs,
    check_fed_as_written,
    learn_inputs,
)

FEATURES = ["rpm", "variant"]


def frame(variant: pd.Series) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"rpm": rng.normal(1500, 100, len(variant)), "variant": variant})


def fitted(x: pd.DataFrame) -> lightgbm.LGBMClassifier:
    y = (x["rpm"] > 1500).astype(int)
    return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)


def test_a_bare_lightgbm_gets_the_categories_it_learnt_even_from_a_csv_reference() -> None:
    trained = frame(pd.Series(pd.Categorical(["b", "a", "c"] * 40, categories=["c", "b", "a"])))
    model = fitted(trained)
    written = frame(pd.Series(["a", "b"] * 10))  # a CSV reference: the dtype is lost
    inputs = learn_inputs(model, written, features=FEATURES, categorical=["variant"])
    assert inputs.features == [
        FeatureInput("rpm", NUMBER),
        FeatureInput("variant", CATEGORY, ["c", "b", "a"]),
    ]
    stored = written.assign(variant=["a", "zz"] * 10)  # as ingestion stores it: text
    given = inputs.frame(stored)
    assert list(given["variant"].cat.categories) == ["c", "b", "a"]
    assert given["variant"].isna().tolist() == [False, True] * 10  # unknown: missing
    model.predict_proba(given)


def test_a_model_trained_on_category_columns_the_config_does_not_match_is_refused() -> None:
    model = fitted(frame(pd.Series(pd.Categorical(["a", "b"] * 30))))
    written = frame(pd.Series(["a", "b"] * 10))
    with pytest.raises(PerfwatchError, match="trained on 1 category column") as caught:
        learn_inputs(model, written, features=FEATURES, categorical=[])
    assert "categorical" in caught.value.hint


def test_integer_codes_stay_numbers_and_text_stays_text() -> None:
    written = frame(pd.Series([0, 1, 2] * 10))
    inputs = learn_inputs(object(), written, features=FEATURES, categorical=["variant"])
    assert inputs.features[1] == FeatureInput("variant", NUMBER, integer=True)
    stored = written.assign(variant=written["variant"].astype(str))  # "0", "1", "2"
    assert inputs.frame(stored)["variant"].dtype == np.int64
    texts = learn_inputs(
        object(), frame(pd.Series(["L", "M"] * 10)), features=FEATURES, categorical=["variant"]
    )
    assert texts.features[1] == FeatureInput("variant", TEXT)


def test_the_trained_column_order_is_kept_and_inputs_round_trip() -> None:
    model = fitted(frame(pd.Series(pd.Categorical(["a", "b"] * 30)))[["variant", "rpm"]])
    written = frame(pd.Series(pd.Categorical(["a", "b"] * 10)))
    inputs = learn_inputs(model, written, features=FEATURES, categorical=["variant"])
    assert inputs.names == ["variant", "rpm"]
    assert ModelInputs.from_json(inputs.to_json(), FEATURES, ["variant"]) == inputs
    assert ModelInputs.from_json(None, FEATURES, ["variant"]) == ModelInputs.as_stored(
        FEATURES, ["variant"]
    )


@pytest.mark.parametrize(
    ("categories", "stored", "expected"),
    [  # ingestion spells booleans as Python does; mixed categories are known by their text
        ([False, True], ["True", "False", "true", None], [True, False, True, None]),
        ([3, "L"], ["3", "L", "zz", None], [3, "L", None, None]),
    ],
)
def test_stored_text_becomes_the_categories_the_model_learnt(
    categories: list[object], stored: list[str | None], expected: list[object]
) -> None:
    trained = frame(pd.Series(pd.Categorical([categories[0], categories[1]] * 30, categories)))
    model = fitted(trained)
    inputs = learn_inputs(model, trained, features=FEATURES, categorical=["variant"])
    assert inputs.features[1] == FeatureInput("variant", CATEGORY, categories)
    given = inputs.frame(trained.head(4).assign(variant=stored))
    assert [None if pd.isna(v) else v for v in given["variant"]] == expected
    as_trained = trained.head(4).assign(variant=pd.Categorical(expected, categories=categories))
    assert np.array_equal(model.predict_proba(given), model.predict_proba(as_trained))


def test_inputs_that_would_score_the_reference_otherwise_are_refused() -> None:
    """The guard at registration: fed as perfwatch would feed it, the model must score its
    reference as it does the file as written (here: categories missing from what was
    learnt, as a wrong learning would give)."""
    trained = frame(pd.Series(pd.Categorical(["a", "b", "c"] * 40, categories=["a", "b", "c"])))
    failed = (trained["variant"] == "a") | (trained["rpm"] > 1600)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(trained, failed)
    right = learn_inputs(model, trained, features=FEATURES, categorical=["variant"])
    check_fed_as_written(model, trained, trained, right)
    wrong = ModelInputs([FeatureInput("rpm", NUMBER), FeatureInput("variant", CATEGORY, ["b"])])
    with pytest.raises(PerfwatchError, match="differ on") as caught:
        check_fed_as_written(model, trained, trained, wrong)
    assert "variant (80 values became missing)" in caught.value.message
