"""Registering model versions and loading the champion a cycle works with.

A version is self-contained under `<data_dir>/models/<model>/v<N>/`: the model artifact,
the scored reference set and the CBPE estimator fitted on it, each with its sha256.
The training data stays where it is, recorded by path and hash.
"""

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.thresholds import ReferencePerformance, threshold_for
from perfwatch.errors import ConfigError, PerfwatchError
from perfwatch.files import (
    atomic_path,
    copy_atomically,
    in_data_dir,
    sha256_file,
    verify,
    write_atomically,
)
from perfwatch.ingest.contract import Contract
from perfwatch.ml.inputs import ModelInputs
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ModelVersion, ReferenceMetric

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.ml.cbpe import Columns
    from perfwatch.ml.chunk_drift import FittedDrift
    from perfwatch.ml.chunk_metrics import Fitted

log = logging.getLogger(__name__)


@dataclass
class Champion:
    """What a cycle needs of the serving version, loaded and verified."""

    version: ModelVersion
    fitted: "Fitted"  # CBPE as fitted at registration, applied without nannyml
    contract: Contract
    inputs: ModelInputs  # what the classifier takes: dtypes, categories, column order
    reference: dict[str, ReferenceMetric]
    data_dir: Path  # paths in the store are relative to it
    bars: dict[str, float | None]  # per metric: the threshold its estimates never go under

    def threshold(self, model: ModelSettings, metric: str) -> float | None:
        """The version's own threshold for the metric (from its reference)."""
        return threshold_of(model, metric, self.reference)

    @cached_property
    def estimator(self) -> Any:
        """nannyml's fitted CBPE (hash checked), loaded only to verify the fast path."""
        return _estimator(self.data_dir, self.version)

    @cached_property
    def model(self) -> Any:
        """The classifier, loaded (hash checked) only when a row needs scoring."""
        from perfwatch.ml.model import load_model

        return load_model(self.data_dir / self.version.artifact_path, self.version.artifact_sha256)

    @cached_property
    def reference_rows(self) -> "pd.DataFrame":
        """The reference set as registered: scored, with its chunk column (hash checked)."""
        return _reference_rows(self.data_dir, self.version)


def model_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / "models" / name


def register_version(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    *,
    artifact: Path,
    reference: Path,
    training_data: Path | None,
    source: str,
    champion: bool = True,
    inputs: ModelInputs | None = None,
) -> ModelVersion:
    """Verify and store a new version, fit CBPE on its reference, and make it the champion
    (or keep it as a candidate). `inputs`: what the model takes, when known (a challenger
    takes its champion's); else learnt from the artifact and the reference file."""
    from perfwatch.ml import cbpe
    from perfwatch.ml.chunk_metrics import Fitted

    for path, what in (
        (artifact, "model file"),
        (reference, "reference set"),
        (training_data, "training data"),
    ):
        if path is not None and not path.is_file():
            raise PerfwatchError(
                f"{what} {path} does not exist",
                hint="check the path (relative paths are relative to the config)",
            )
    _, rows, contract, inputs = load_candidate(model, artifact, reference, inputs)
    estimator, figures = cbpe.fit(
        rows, columns=cbpe_columns(model), metrics=model.metrics, period=model.chunking
    )
    drift = _fit_drift(model, rows)

    with transaction(engine) as session:
        record = queries.get_or_create_model(session=session, name=model.name)
        assert record.id is not None
        number = queries.next_version_number(session=session, model_id=record.id)
    folder = model_dir(settings, model.name) / f"v{number}"
    copy_atomically(artifact, folder / "model.joblib")
    with atomic_path(folder / "reference.parquet") as temporary:
        rows.to_parquet(temporary)
    write_atomically(folder / "cbpe.pkl", cbpe.dumps(estimator))

    with transaction(engine) as session:
        assert record.id is not None
        if champion:
            queries.retire_champion(session=session, model_id=record.id)
        version = ModelVersion(
            model_id=record.id,
            version=number,
            status="champion" if champion else "candidate",
            source=source,
            artifact_path=in_data_dir(settings.data_dir, folder / "model.joblib"),
            artifact_sha256=sha256_file(folder / "model.joblib"),
            reference_path=in_data_dir(settings.data_dir, folder / "reference.parquet"),
            reference_sha256=sha256_file(folder / "reference.parquet"),
            training_path=str(training_data) if training_data else None,
            training_sha256=sha256_file(training_data) if training_data else None,
            estimator_path=in_data_dir(settings.data_dir, folder / "cbpe.pkl"),
            estimator_sha256=sha256_file(folder / "cbpe.pkl"),
            contract=contract.to_json(),
            inputs=inputs.to_json(),
            fitted=Fitted.of(estimator).to_json(),
            fitted_drift=drift.to_json(),
        )
        session.add(version)
        session.flush()
        assert version.id is not None
        session.add_all(
            [
                ReferenceMetric(
                    version_id=version.id,
                    metric=f.metric,
                    value=f.value,
                    band_lower=f.band_lower,
                    band_upper=f.band_upper,
                )
                for f in figures
            ]
        )
    if champion:  # the serving hand-off: one path that always holds the champion
        copy_atomically(
            folder / "model.joblib", model_dir(settings, model.name) / "champion.joblib"
        )
    log.info("%s: registered version %d (%s, %s)", model.name, number, source, version.status)
    return version


def load_candidate(
    model: ModelSettings, artifact: Path, reference: Path, inputs: ModelInputs | None = None
) -> tuple[Any, "pd.DataFrame", Contract, ModelInputs]:
    """A model file and its reference, checked as a cycle will use them: the classifier, the
    reference scored by it (in the inputs it was trained on), the validation contract and
    those inputs. Every problem is an error that says what to fix."""
    from perfwatch.errors import BatchRejected
    from perfwatch.ingest.batch import read_arrow
    from perfwatch.ingest.rows import read_reference
    from perfwatch.ml.inputs import check_fed_as_written, learn_inputs
    from perfwatch.ml.model import check_classifier, fill_scores, quiet_sklearn, read_model

    classifier = read_model(artifact)
    check_classifier(classifier, artifact)
    try:
        rows, contract = read_reference(reference, model=model)
    except BatchRejected as exc:
        hint = exc.hint
        if "holds text where numbers are expected" in exc.message:
            hint = (
                "a feature of text values is categorical: list it under 'categorical' in the"
                " model's config (or fix the reference if the column should be numeric)"
            )
        raise PerfwatchError(f"reference set {reference}: {exc.message}", hint=hint) from None
    if inputs is None:  # as the user wrote it: a `category` column stays one
        written = read_arrow(reference, model.read).select(model.features).to_pandas()
        inputs = learn_inputs(
            classifier, written, features=model.features, categorical=model.categorical
        )
        with quiet_sklearn():
            check_fed_as_written(classifier, written, rows, inputs)
    try:
        fill_scores(
            lambda: classifier,
            rows,
            inputs=inputs,
            score_column=model.score_column,
            prediction_column=model.prediction_column,
            threshold=model.decision_threshold,
        )
    except PerfwatchError:
        raise
    except Exception as exc:  # the model refuses the inputs a cycle would give it
        raise PerfwatchError(
            f"the model in {artifact.name} cannot score the reference set as perfwatch would"
            f" feed it ({inputs.describe()}): {type(exc).__name__}: {exc}",
            hint="list every column the model was trained on under 'features' and its"
            " categorical ones under 'categorical'; a model trained on pandas 'category'"
            " columns needs a reference file that keeps them (Parquet)",
        ) from None
    return classifier, rows, contract, inputs


def ensure_initial_version(engine: Engine, settings: Settings, model: ModelSettings) -> None:
    """Register `initial_model` as version 1 the first time a model is seen."""
    with transaction(engine) as session:
        record = queries.get_or_create_model(session=session, name=model.name)
        assert record.id is not None
        if queries.champion(session=session, model_id=record.id) is not None:
            return
    if model.initial_model is None or model.reference is None:
        raise ConfigError(
            f"model {model.name!r} has no version yet and the config names no initial_model"
            " and reference",
            hint=f"set initial_model and reference for {model.name!r}, or run"
            f" `perfwatch register {model.name} --model F --reference R`",
        )
    register_version(
        engine,
        settings,
        model,
        artifact=model.initial_model,
        reference=model.reference,
        training_data=model.training_data,
        source="initial_model",
    )


def load_champion(engine: Engine, settings: Settings, model: ModelSettings) -> Champion:
    """The champion's fitted figures, its artifact checked (loaded only when a row needs
    scoring: a cycle of scored rows imports neither nannyml nor the model's library)."""

    with transaction(engine) as session:
        record = queries.find_model(session=session, name=model.name)
        version = record and record.id and queries.champion(session=session, model_id=record.id)
        if not version:
            raise PerfwatchError(
                f"model {model.name!r} has no champion version",
                hint=f"run `perfwatch register {model.name} ...`",
            )
        assert version.id is not None
        reference = queries.reference_metrics(session=session, version_id=version.id)
        # the bar: version 1's thresholds (or the version `rebaseline` chose), unless the
        # config lets the bar follow every promotion
        bar_reference = reference
        bar_version = queries.bar_version(session=session, model_id=version.model_id)
        if not model.rebaseline and bar_version is not None and bar_version.id is not None:
            bar_reference = queries.reference_metrics(session=session, version_id=bar_version.id)
    # checked now, even when every row arrives scored and the model is never unpickled
    verify(settings.data_dir / version.artifact_path, version.artifact_sha256, "model artifact")
    return Champion(
        version=version,
        fitted=_fitted(engine, settings.data_dir, version),
        contract=Contract.from_json(version.contract),
        inputs=ModelInputs.from_json(version.inputs, model.features, model.categorical),
        reference=reference,
        data_dir=settings.data_dir,
        bars=bars(model, bar_reference),
    )


def _fitted(engine: Engine, data_dir: Path, version: ModelVersion) -> "Fitted":
    """What nannyml fitted for the version, as numbers; a version registered before they
    were stored gets them once from its pickled estimator (this imports nannyml), and
    keeps them."""
    from perfwatch.ml.chunk_metrics import Fitted

    if version.fitted:
        return Fitted.from_json(version.fitted)
    fitted = Fitted.of(_estimator(data_dir, version))
    with transaction(engine) as session:
        version.fitted = fitted.to_json()
        session.add(version)
    return fitted


def fitted_drift(engine: Engine, model: ModelSettings, champion: Champion) -> "FittedDrift":
    """The version's drift calculators as fitted on its reference for the model's features
    and chunking. Fitted at registration; fitted again (this imports nannyml), and kept, for
    a version registered before they were stored or when the config has changed them."""
    from perfwatch.ml.chunk_drift import FittedDrift, fitted_for

    version = champion.version
    if version.fitted_drift:
        stored = FittedDrift.from_json(version.fitted_drift)
        if stored.fitted_for == fitted_for(
            model.features, model.categorical, model.chunking.describe()
        ):
            return stored
    fitted = _fit_drift(model, champion.reference_rows)
    with transaction(engine) as session:
        version.fitted_drift = fitted.to_json()
        session.add(version)
    return fitted


def _fit_drift(model: ModelSettings, reference: "pd.DataFrame") -> "FittedDrift":
    from perfwatch.ml import drift

    return drift.fitted(
        reference,
        features=model.features,
        categorical=model.categorical,
        timestamp=model.timestamp_column,
        period=model.chunking,
    )


def _reference_rows(data_dir: Path, version: ModelVersion) -> "pd.DataFrame":
    """The reference set as registered: scored, with its chunk column (hash checked)."""
    import pandas as pd

    path = data_dir / version.reference_path
    verify(path, version.reference_sha256, "reference set")
    return pd.read_parquet(path)


def _estimator(data_dir: Path, version: ModelVersion) -> Any:
    from perfwatch.ml import cbpe

    path = data_dir / version.estimator_path
    verify(path, version.estimator_sha256, "CBPE estimator")
    return cbpe.loads(path.read_bytes())


def bars(model: ModelSettings, reference: dict[str, ReferenceMetric]) -> dict[str, float | None]:
    """Per metric, the threshold in force at the bar version (None for a metric it was
    not measured on)."""
    return {metric: threshold_of(model, metric, reference) for metric in model.metrics}


def threshold_of(
    model: ModelSettings, metric: str, reference: dict[str, ReferenceMetric]
) -> float | None:
    """A metric's threshold by the config's rule on a version's reference figures."""
    found = reference.get(metric)
    if found is None:
        return None
    return threshold_for(
        model.threshold_rule(metric), ReferencePerformance(found.value, found.band_lower)
    )


def cbpe_columns(model: ModelSettings) -> "Columns":
    from perfwatch.ml.cbpe import Columns

    return Columns(
        score=model.score_column,
        prediction=model.prediction_column,
        target=model.target,
        timestamp=model.timestamp_column,
    )
