"""The misalignment verdict's rules, one at a time."""

from datetime import UTC, datetime, timedelta

from perfwatch.domain.alignment import Coverage, Expected, FeatureShift, verdict

START = datetime(2026, 1, 1, tzinfo=UTC)


def feature(name: str, js: float = 0.02, p: float = 0.5, outside: float = 0.0) -> FeatureShift:
    return FeatureShift(name, "ks", 0.1, p, p, js, outside)


QUIET = [feature(f"f{i}") for i in range(6)]
HOLDS = Expected("roc_auc", estimated=0.94, upper=0.96, reference=0.95, threshold=0.90)


def judge(
    *,
    features: list[FeatureShift] = QUIET,
    outside: float = 0.0,
    coverage: Coverage | None = None,
    positive_rates: tuple[float | None, float] = (0.05, 0.05),
    expected: list[Expected] | None = None,
) -> tuple[str, list[str]]:
    return verdict(features, outside, coverage, positive_rates, expected or [HOLDS])


def test_nothing_found_is_aligned() -> None:
    assert judge() == ("aligned", [])


def test_a_shift_unlikely_by_chance_but_too_small_to_matter_is_not_one() -> None:
    assert judge(features=[feature("air", js=0.05, p=1e-9), *QUIET[1:]])[0] == "aligned"
    assert judge(features=[feature("air", js=0.3, p=0.2), *QUIET[1:]])[0] == "aligned"


def test_one_shifted_feature_is_reviewed_a_far_one_or_half_of_them_misaligned() -> None:
    found, reasons = judge(features=[feature("air", js=0.2, p=1e-6), *QUIET[1:]])
    assert found == "review" and reasons == ["1 of 6 features shifted: air (JS 0.20)"]
    assert judge(features=[feature("air", js=0.6, p=1e-6), *QUIET[1:]])[0] == "misaligned"
    half = [feature(f"f{i}", js=0.2, p=1e-6) for i in range(3)] + QUIET[3:]
    assert judge(features=half)[0] == "misaligned"


def test_rows_outside_the_training_support() -> None:
    assert judge(outside=0.005)[0] == "aligned"
    found, reasons = judge(outside=0.02)
    assert found == "review" and reasons[0].startswith("2.0% of the sample's rows")
    assert judge(outside=0.10)[0] == "misaligned"


def test_the_expected_metric_under_its_threshold_is_misaligned() -> None:
    low = Expected("roc_auc", estimated=0.86, upper=0.88, reference=0.95, threshold=0.90)
    found, reasons = judge(expected=[low])
    assert found == "misaligned"
    assert reasons == [
        "expect roc_auc about 0.860 in production, 0.950 on the reference: under its"
        " threshold 0.900"
    ]


def test_a_drop_within_the_estimates_band_is_sampling_noise() -> None:
    noisy = Expected("f1", estimated=0.48, upper=0.58, reference=0.56, threshold=0.43)
    assert judge(expected=[noisy])[0] == "aligned"
    clear = Expected("f1", estimated=0.48, upper=0.52, reference=0.56, threshold=0.43)
    assert judge(expected=[clear]) == (
        "review",
        ["expect f1 about 0.480 in production, 0.560 on the reference"],
    )


def test_a_reference_with_another_positive_rate_than_training() -> None:
    assert judge(positive_rates=(0.05, 0.06))[0] == "aligned"
    found, reasons = judge(positive_rates=(0.05, 0.10))
    assert (
        found == "review" and "5.0% in the training data and 10.0% in the reference" in reasons[0]
    )
    assert judge(positive_rates=(None, 0.10))[0] == "aligned", "no target in the training data"


def test_old_training_data_and_hours_it_never_saw() -> None:
    def coverage(gap_days: float, unseen: float = 0.0) -> Coverage:
        end = START + timedelta(days=30)
        sample = end + timedelta(days=gap_days)
        return Coverage(START, end, sample, sample + timedelta(days=1), unseen)

    assert judge(coverage=coverage(20))[0] == "aligned"
    found, reasons = judge(coverage=coverage(400))
    assert found == "review" and reasons == [
        "the training data ends 400 days before the sample starts"
    ]
    assert judge(coverage=coverage(20, unseen=0.25))[0] == "review"


def test_every_reason_is_given_most_serious_first() -> None:
    low = Expected("roc_auc", estimated=0.86, upper=0.88, reference=0.95, threshold=0.90)
    found, reasons = judge(expected=[low], outside=0.02)
    assert found == "misaligned" and reasons[0].startswith("expect roc_auc")
    assert reasons[1].startswith("2.0% of the sample's rows")
