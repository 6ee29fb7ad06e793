import pytest

from perfwatch.domain.thresholds import ReferencePerformance, ThresholdRule, is_alert, threshold_for

REFERENCE = ReferencePerformance(value=0.90, band_lower=0.85)


def test_absolute_floor_wins() -> None:
    assert threshold_for(ThresholdRule(lower=0.8), REFERENCE) == 0.8


def test_relative_drop_is_a_share_of_the_reference_value() -> None:
    assert threshold_for(ThresholdRule(drop=0.10), REFERENCE) == pytest.approx(0.81)


def test_default_is_nannymls_reference_band() -> None:
    assert threshold_for(ThresholdRule(), REFERENCE) == 0.85
    assert threshold_for(ThresholdRule(), ReferencePerformance(0.9, None)) is None


def test_only_complete_chunks_under_threshold_alert() -> None:
    assert is_alert(0.79, 0.8, provisional=False)
    assert not is_alert(0.79, 0.8, provisional=True)
    assert not is_alert(0.81, 0.8, provisional=False)
    assert not is_alert(0.1, None, provisional=False)
