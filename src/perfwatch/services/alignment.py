"""Misalignment before deployment: a production sample compared with the data the model
learnt from and the reference it is judged against, before poor production performance
says so (`perfwatch check MODEL --sample FILE`, `perfwatch register ... --sample FILE`).

Per feature a two-sample test and a distance (ml.two_sample), the share of the sample
outside the training support, the training data's time coverage against the sample's,
the positive rate of training against reference, and CBPE's estimate of each metric on
the sample against the reference's realized value. The verdict is domain.alignment's.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.config import ModelSettings
from perfwatch.domain.alignment import Coverage, Expected, FeatureShift, verdict

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from perfwatch.store.tables import ModelVersion


@dataclass(frozen=True)
class Alignment:
    compared_with: str  # training data | reference (when no training data is named)
    rows: int  # of the sample
    features: list[FeatureShift]
    outside: float  # share of sample rows with any value outside the training support
    coverage: Coverage | None  # None: no timestamp in the training data
    positive_rates: tuple[float | None, float]  # training (None: no target), reference
    expected: list[Expected]
    verdict: str  # aligned | review | misaligned
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        coverage = None
        if self.coverage is not None:
            coverage = {
                key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in asdict(self.coverage).items()
            } | {"gap_days": round(self.coverage.gap_days, 2)}
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "compared_with": self.compared_with,
            "rows": self.rows,
            "features": [asdict(f) | {"shifted": f.shifted} for f in self.features],
            "outside_support": self.outside,
            "coverage": coverage,
            "positive_rate": {
                "training": self.positive_rates[0],
                "reference": self.positive_rates[1],
            },
            "expected": [asdict(e) for e in self.expected],
        }


def align(
    model: ModelSettings,
    sample: "pd.DataFrame",
    reference: "pd.DataFrame",
    training: "pd.DataFrame | None",
) -> Alignment:
    """The sample (scored, as a cycle stores it) against the training data (else the
    reference) and the reference (scored, with its target)."""
    import numpy as np

    from perfwatch.ml.two_sample import outside_support

    base = training if training is not None else reference
    features = feature_shifts(model, base, sample)
    masks = [
        outside_support(base[f], sample[f], categorical=f in model.categorical)
        for f in model.features
    ]
    outside = float(np.logical_or.reduce(masks).mean()) if len(sample) else 0.0
    coverage = _coverage(model.timestamp_column, base, sample)
    rates = (
        _positive_rate(training, model.target) if training is not None else None,
        _positive_rate(reference, model.target) or 0.0,
    )
    expected = _expected(model, reference, sample)
    found, reasons = verdict(features, outside, coverage, rates, expected)
    return Alignment(
        compared_with="training data" if training is not None else "reference",
        rows=len(sample),
        features=features,
        outside=outside,
        coverage=coverage,
        positive_rates=rates,
        expected=expected,
        verdict=found,
        reasons=reasons,
    )


def feature_shifts(
    model: ModelSettings, base: "pd.DataFrame", sample: "pd.DataFrame"
) -> list[FeatureShift]:
    """Each feature of the sample against the base rows: its two-sample test (p-values
    corrected across the features), distance and share outside the base's support."""
    from perfwatch.ml.two_sample import compare, false_discovery

    compared = {
        f: compare(base[f], sample[f], categorical=f in model.categorical) for f in model.features
    }
    adjusted = false_discovery([c.p_value for c in compared.values()])
    return [
        FeatureShift(f, c.test, c.statistic, c.p_value, p, c.jensen_shannon, c.outside)
        for (f, c), p in zip(compared.items(), adjusted, strict=True)
    ]


def _positive_rate(rows: "pd.DataFrame", target: str) -> float | None:
    import pandas as pd

    if target not in rows.columns:
        return None
    values = pd.to_numeric(rows[target], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _coverage(timestamp: str, base: "pd.DataFrame", sample: "pd.DataFrame") -> Coverage | None:
    import pandas as pd

    if timestamp not in base.columns or not len(sample):
        return None
    learnt = pd.to_datetime(base[timestamp], utc=True, errors="coerce").dropna()
    seen = pd.to_datetime(sample[timestamp], utc=True)
    if not len(learnt):
        return None
    hours = set(learnt.dt.hour.unique())
    return Coverage(
        training_start=learnt.min().floor("us").to_pydatetime(),
        training_end=learnt.max().floor("us").to_pydatetime(),
        sample_start=seen.min().floor("us").to_pydatetime(),
        sample_end=seen.max().floor("us").to_pydatetime(),
        unseen_hours=float((~seen.dt.hour.isin(hours)).mean()),
    )


def _expected(
    model: ModelSettings, reference: "pd.DataFrame", sample: "pd.DataFrame"
) -> list[Expected]:
    """CBPE fitted on the reference (as registering does), estimating the whole sample as
    one chunk, against each metric's reference value and threshold."""
    import numpy as np

    from perfwatch.domain.thresholds import ReferencePerformance, threshold_for
    from perfwatch.ml import cbpe
    from perfwatch.ml.chunk_metrics import Chunks, Fitted, estimate_chunks
    from perfwatch.services.registry import cbpe_columns

    estimator, figures = cbpe.fit(
        reference, columns=cbpe_columns(model), metrics=model.metrics, period=model.chunking
    )
    one_chunk = Chunks.of(np.zeros(len(sample), dtype="int64"))
    estimated = estimate_chunks(
        Fitted.of(estimator),
        sample[model.score_column].to_numpy("float64"),
        sample[model.prediction_column].to_numpy("float64"),
        one_chunk,
    )
    return [
        Expected(
            metric=figure.metric,
            estimated=float(estimated[figure.metric][0][0]),
            upper=float(estimated[figure.metric][3][0]),
            reference=figure.value,
            threshold=threshold_for(
                model.threshold_rule(figure.metric),
                ReferencePerformance(figure.value, figure.band_lower),
            ),
        )
        for figure in figures
    ]


def record_check(engine: "Engine", version: "ModelVersion", sample: Path, found: Alignment) -> None:
    """Keep a check with the version it was made for (the report shows it)."""
    import json

    from perfwatch.files import sha256_file
    from perfwatch.store.db import transaction
    from perfwatch.store.tables import AlignmentCheck

    assert version.id is not None
    with transaction(engine) as session:
        session.add(
            AlignmentCheck(
                model_id=version.model_id,
                version_id=version.id,
                sample_name=sample.name,
                sample_sha256=sha256_file(sample),
                rows=found.rows,
                verdict=found.verdict,
                figures=json.dumps(found.to_json()),
            )
        )
