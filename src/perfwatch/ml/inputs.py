"""The inputs a model was trained on, learnt once at registration and applied before every
prediction.

Ingestion stores one form for checking and storing rows: categoricals as text, numbers
as float64. A model may want another: a bare LGBMClassifier trained on pandas `category`
columns refuses text (and must get the categories it learnt, in the order it learnt them,
or its splits point at the wrong values), one trained on integer-coded categories refuses
strings. `learn_inputs` reads that from the artifact and the reference file as the user
wrote it; `ModelInputs.frame` turns stored rows back into it.
"""

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from perfwatch.errors import PerfwatchError

if TYPE_CHECKING:
    import pandas as pd

NUMBER, TEXT, CATEGORY = "number", "text", "category"


@dataclass(frozen=True)
class FeatureInput:
    """One column as the model takes it: a number, text, or a category of fixed categories."""

    name: str
    kind: str  # number | text | category
    categories: list[Any] | None = None  # for a category, in the model's order
    integer: bool = False  # a number the model saw as integers (cast back when whole)


@dataclass(frozen=True)
class ModelInputs:
    """The model's input columns in the order it was trained on, each with its type."""

    features: list[FeatureInput]

    def to_json(self) -> str:
        return json.dumps([asdict(f) for f in self.features], default=_plain)

    @classmethod
    def from_json(cls, text: str | None, names: list[str], categorical: list[str]) -> "ModelInputs":
        """Stored inputs; a version registered before they were stored gets what
        ingestion always gave it (text categoricals, float numbers)."""
        if not text:
            return cls.as_stored(names, categorical)
        return cls([FeatureInput(**f) for f in json.loads(text)])

    @classmethod
    def as_stored(cls, names: list[str], categorical: list[str]) -> "ModelInputs":
        return cls([FeatureInput(n, TEXT if n in categorical else NUMBER) for n in names])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def frame(self, rows: "pd.DataFrame") -> "pd.DataFrame":
        """The model's input frame from rows as perfwatch stores them (or as the user wrote
        them): the model's columns, in its order, in its types. Values a category does not
        know become missing, which LightGBM and sklearn's encoders treat as such."""
        import pandas as pd

        return pd.DataFrame(
            {f.name: _column(rows[f.name], f) for f in self.features}, index=rows.index
        )

    def describe(self) -> str:
        """One line a person can check: `rpm number, product_type category [L, M, H]`."""
        parts = []
        for f in self.features:
            if f.kind == CATEGORY:
                shown = ", ".join(map(str, (f.categories or [])[:6]))
                more = ", ..." if len(f.categories or []) > 6 else ""
                parts.append(f"{f.name} category [{shown}{more}]")
            else:
                parts.append(f"{f.name} {'integer' if f.integer else f.kind}")
        return ", ".join(parts)


def _column(values: "pd.Series", feature: FeatureInput) -> "pd.Series":
    import pandas as pd

    if feature.kind == NUMBER:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        whole = numbers.notna().all() and (numbers == numbers.round()).all()
        return numbers.astype("int64") if feature.integer and whole else numbers
    if feature.kind == CATEGORY:
        categories = feature.categories or []
        values = _as_categories_are(values, categories)
        known = values.where(values.isin(categories))  # unknown values: missing
        return pd.Series(pd.Categorical(known, categories=categories), index=values.index)
    return values if values.dtype == "str" else values.astype("str")


def _as_categories_are(values: "pd.Series", categories: list[Any]) -> "pd.Series":
    """Stored text in the type of the model's categories: "True" -> True for booleans
    (ingestion stores them as Python spells them), "2" -> 2 for numbers."""
    import pandas as pd

    if categories and all(isinstance(c, bool) for c in categories):
        spelled = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
        return values.astype("str").str.lower().map(spelled)
    if categories and all(isinstance(c, int | float) for c in categories):
        return pd.to_numeric(values, errors="coerce")  # stored as text: "2" -> 2
    text = values.astype("str")  # pandas' text (missing stays missing)
    if all(isinstance(c, str) for c in categories):
        return text
    return text.map({str(c): c for c in categories})  # mixed: 3 and "L" known as "3", "L"


def check_fed_as_written(
    classifier: Any, written: "pd.DataFrame", fed: "pd.DataFrame", inputs: ModelInputs
) -> None:
    """Refuse inputs that would make the model score the reference otherwise than it does
    as the user wrote it (a value perfwatch maps to missing, a category in another
    place): every score, estimate and skew check would be quietly wrong. A reference the
    model cannot take as written (a CSV, for a model on `category` columns) is not
    compared."""
    import numpy as np

    try:
        with_written = classifier.predict_proba(written[inputs.names])[:, 1]
    except Exception:  # the model refuses the file as written: nothing to compare with
        return
    given = inputs.frame(fed)
    with_fed = classifier.predict_proba(given)[:, 1]
    differs = np.abs(with_written - with_fed) > 1e-6
    if not differs.any():
        return
    lost = [
        f"{f.name} ({int(n):,} values became missing)"
        for f in inputs.features
        if f.kind == CATEGORY
        and (n := (given[f.name].isna().to_numpy() & written[f.name].notna().to_numpy()).sum())
    ]
    raise PerfwatchError(
        f"perfwatch would feed the model otherwise than its reference file does: its scores"
        f" differ on {int(differs.sum()):,} of {len(differs):,} reference rows (largest"
        f" {float(np.abs(with_written - with_fed).max()):.3f}); the inputs it would give:"
        f" {inputs.describe()}" + (f"; {', '.join(lost)}" if lost else ""),
        hint="write the reference with the dtypes the model was trained on (Parquet keeps"
        " `category` columns) and list those columns under 'categorical'; if it still"
        " fails, report it with the model and the reference: it is a perfwatch bug",
    )


def _plain(value: Any) -> Any:
    """numpy scalars among a category's values, as JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)


def learn_inputs(
    classifier: Any, written: "pd.DataFrame", *, features: list[str], categorical: list[str]
) -> ModelInputs:
    """What the model takes, read from the reference as the user wrote it (`written`: its
    columns in their own dtypes) and from the artifact: a bare LightGBM model knows the
    categories of each `category` column it was trained on."""
    import pandas as pd

    learnt = _lightgbm_categories(classifier)
    order = _trained_order(classifier, features)
    kinds: dict[str, FeatureInput] = {}
    for name in order:
        dtype = written[name].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            kinds[name] = FeatureInput(name, CATEGORY, _values(dtype.categories))
        elif name in categorical and not pd.api.types.is_numeric_dtype(dtype):
            kinds[name] = FeatureInput(name, TEXT)
        else:
            integer = pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
            kinds[name] = FeatureInput(name, NUMBER, integer=integer)
    if learnt is not None:
        kinds = _with_learnt_categories(kinds, order, learnt, categorical)
    return ModelInputs([kinds[name] for name in order])


def _trained_order(classifier: Any, features: list[str]) -> list[str]:
    """The column order the model was fitted with, when it kept it and it names exactly the
    configured features; else the config's order."""
    names = getattr(classifier, "feature_names_in_", None)
    if names is None:
        names = getattr(classifier, "feature_name_", None)
    if names is not None and sorted(map(str, names)) == sorted(features):
        return [str(n) for n in names]
    return list(features)


def _lightgbm_categories(classifier: Any) -> list[list[Any]] | None:
    """The categories of each pandas `category` column a bare LightGBM model was trained
    on, in column order (LightGBM keeps them to map values to the codes it split on)."""
    booster = getattr(classifier, "booster_", None) if _is_lightgbm(classifier) else None
    learnt = getattr(booster, "pandas_categorical", None)
    return [_values(c) for c in learnt] if learnt else None


def _is_lightgbm(classifier: Any) -> bool:
    return type(classifier).__module__.startswith("lightgbm")


def _with_learnt_categories(
    kinds: dict[str, FeatureInput],
    order: list[str],
    learnt: list[list[Any]],
    categorical: list[str],
) -> dict[str, FeatureInput]:
    """Give the learnt categories to the model's category columns, in its column order.
    Those are the reference's `category` columns or, when the reference lost the dtype
    (a CSV), the columns the config calls categorical."""
    columns = [n for n in order if kinds[n].kind == CATEGORY]
    if len(columns) != len(learnt):
        columns = [n for n in order if n in categorical]
    if len(columns) != len(learnt):
        raise PerfwatchError(
            f"the model was trained on {len(learnt)} category column(s), but the config"
            f" declares {len(columns)} categorical feature(s) ({', '.join(columns) or 'none'})",
            hint="list exactly the columns the model was trained on as pandas 'category'"
            " under 'categorical'",
        )
    for name, categories in zip(columns, learnt, strict=True):
        kinds[name] = FeatureInput(name, CATEGORY, categories)
    return kinds


def _values(categories: Any) -> list[Any]:
    return [c.item() if hasattr(c, "item") else c for c in list(categories)]
