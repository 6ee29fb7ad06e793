import pytest

from perfwatch.domain.thresholds import (
    ReferencePerformance,
    ThresholdRule,
    firing,
    is_alert,
    threshold_for,
)

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


def test_the_threshold_in_force_never_sinks_under_the_bar() -> None:
    from perfwatch.domain.thresholds import in_force, under_bar

    assert in_force(0.846, 0.927) == 0.927  # a promotion's weaker band does not lower it
    assert in_force(0.95, 0.927) == 0.95  # a stricter own threshold stays
    assert in_force(None, 0.927) == 0.927 and in_force(0.8, None) == 0.8
    assert in_force(None, None) is None
    assert under_bar(0.830, 0.927) and not under_bar(0.93, 0.927)
    assert not under_bar(None, 0.9) and not under_bar(0.5, None)


CALM, LOW_CBPE, LOW_ADJUSTED = (False, False), (True, False), (False, True)


def test_cbpe_alerts_at_once_the_adjusted_estimate_after_two_chunks_in_a_row() -> None:
    chain = [CALM, LOW_ADJUSTED, LOW_ADJUSTED, LOW_CBPE, LOW_ADJUSTED, CALM]
    assert firing("cbpe", chain) == [False, False, False, True, False, False]
    assert firing("adjusted", chain) == [False, False, True, False, False, False]
    assert firing("both", chain) == [False, False, True, True, False, False]


def test_a_chunk_without_an_adjusted_estimate_counts_with_cbpes() -> None:
    chain: list[tuple[bool, bool | None]] = [(True, None), (False, True), (False, None)]
    assert firing("adjusted", chain) == [False, True, False]
    assert firing("both", chain) == [True, True, False]
