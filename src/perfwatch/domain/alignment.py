"""Is a model's training aligned with where it is deployed? The verdict on a production
sample compared, before deployment, with the training data and the reference set.

Each rule says what a person should look at; `misaligned` means the model should not
go out as it is (`perfwatch check` exits 1), `review` that something differs enough to
be looked at before it does.
"""

from dataclasses import dataclass
from datetime import datetime

from perfwatch.domain.drift import JS_FLOOR

LEVEL = 0.05  # of the false-discovery-corrected tests
JS_MISALIGNED = 0.5  # a feature this far from its training values is another population
SHIFTED_SHARE = 0.5  # of the features shifted: the sample is another population
OUTSIDE_REVIEW = 0.01  # of the sample's rows with a value the training data never had
OUTSIDE_MISALIGNED = 0.10
DROP_REVIEW = 0.03  # expected metric below the reference's by this much (and its band)
PRIOR_RATIO = 1.5  # positive rate of training against reference, either way
GAP_REVIEW_DAYS = 365  # the sample starts this long after the training data ends
UNSEEN_HOURS_REVIEW = 0.10  # of the sample's rows at hours of day training never had


@dataclass(frozen=True)
class FeatureShift:
    feature: str
    test: str  # ks | chi2
    statistic: float
    p_value: float
    p_adjusted: float  # Benjamini-Hochberg across the model's features
    jensen_shannon: float
    outside: float  # share of sample rows with a value outside the training support

    @property
    def shifted(self) -> bool:
        """Unlikely by chance and large enough to matter (see ml.two_sample)."""
        return self.p_adjusted < LEVEL and self.jensen_shannon >= JS_FLOOR


@dataclass(frozen=True)
class Coverage:
    """The time the training data covers against the sample's."""

    training_start: datetime
    training_end: datetime
    sample_start: datetime
    sample_end: datetime
    unseen_hours: float  # share of sample rows at hours of day the training data never had

    @property
    def gap_days(self) -> float:
        return (self.sample_start - self.training_end).total_seconds() / 86400


@dataclass(frozen=True)
class Expected:
    """CBPE's estimate of a metric on the sample against its realized reference value."""

    metric: str
    estimated: float
    upper: float  # of the estimate's sampling band (3 sampling errors)
    reference: float
    threshold: float | None


def verdict(
    features: list[FeatureShift],
    outside: float,
    coverage: Coverage | None,
    positive_rates: tuple[float | None, float],
    expected: list[Expected],
) -> tuple[str, list[str]]:
    """aligned | review | misaligned, with every reason found (most serious first)."""
    misaligned: list[str] = []
    review: list[str] = []
    _features(features, misaligned, review)
    if outside >= OUTSIDE_REVIEW:
        (misaligned if outside >= OUTSIDE_MISALIGNED else review).append(
            f"{outside:.1%} of the sample's rows have a value the training data never had"
        )
    for figure in expected:
        said = (
            f"expect {figure.metric} about {figure.estimated:.3f} in production,"
            f" {figure.reference:.3f} on the reference"
        )
        if figure.threshold is not None and figure.estimated < figure.threshold:
            misaligned.append(f"{said}: under its threshold {figure.threshold:.3f}")
        elif figure.reference - figure.estimated >= DROP_REVIEW and figure.upper < figure.reference:
            review.append(said)  # beyond what a sample this size varies by
    _priors(positive_rates, review)
    if coverage is not None:
        _coverage(coverage, review)
    if misaligned:
        return "misaligned", misaligned + review
    return ("review", review) if review else ("aligned", [])


def _features(features: list[FeatureShift], misaligned: list[str], review: list[str]) -> None:
    shifted = [f for f in features if f.shifted]
    if not shifted:
        return
    named = ", ".join(f"{f.feature} (JS {f.jensen_shannon:.2f})" for f in shifted)
    far = [f for f in shifted if f.jensen_shannon >= JS_MISALIGNED]
    if far or len(shifted) >= SHIFTED_SHARE * len(features):
        misaligned.append(f"{len(shifted)} of {len(features)} features shifted: {named}")
    else:
        review.append(f"{len(shifted)} of {len(features)} features shifted: {named}")


def _priors(rates: tuple[float | None, float], review: list[str]) -> None:
    training, reference = rates
    if training is None or not training or not reference:
        return
    if max(training / reference, reference / training) >= PRIOR_RATIO:
        review.append(
            f"the positive rate is {training:.1%} in the training data and {reference:.1%} in"
            " the reference: the reference does not stand for what the model learnt"
        )


def _coverage(coverage: Coverage, review: list[str]) -> None:
    if coverage.gap_days >= GAP_REVIEW_DAYS:
        review.append(
            f"the training data ends {coverage.gap_days:.0f} days before the sample starts"
        )
    if coverage.unseen_hours >= UNSEEN_HOURS_REVIEW:
        review.append(
            f"{coverage.unseen_hours:.0%} of the sample's rows fall at hours of the day the"
            " training data never had"
        )
