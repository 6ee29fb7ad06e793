"""When a chunk's estimate is unreliable, and how the reason reads."""

from perfwatch.domain.trust import Limits, Outside, Trust, look_closer

LIMITS = Limits(out_of_domain_share=0.10, domain_auc=0.97)
HOT = (Outside("process_temp", "above", 0.41), Outside("product_type", "unseen", 0.02))


def test_a_chunk_within_both_limits_is_reliable_and_needs_no_reason() -> None:
    trust = Trust(0.09, HOT, 0.96)
    assert trust.reliable(LIMITS) and trust.reason(LIMITS) is None


def test_an_unmeasured_classifier_does_not_make_a_chunk_unreliable() -> None:
    assert Trust(0.0, (), None).reliable(LIMITS)


def test_rows_outside_the_support_name_the_features_largest_first() -> None:
    reason = Trust(0.41, HOT, None).reason(LIMITS)
    assert reason == (
        "41% of rows lie outside the reference (41% have 'process_temp' above the"
        " reference's range, 2% have 'product_type' values the reference never had)"
    )


def test_a_classifier_that_tells_the_rows_apart_is_enough_on_its_own() -> None:
    trust = Trust(0.0, (), 0.99, telling=("air_temp",))
    assert not trust.reliable(LIMITS)
    assert trust.reason(LIMITS) == (
        "a classifier tells its rows from the reference's with ROC AUC 0.99, by 'air_temp'"
    )


def test_the_limits_are_inclusive() -> None:
    assert not Trust(0.10, HOT, None).reliable(LIMITS)
    assert not Trust(0.0, (), 0.97).reliable(LIMITS)


def test_the_classifier_looks_closer_only_where_a_cheap_figure_moved() -> None:
    assert not look_closer(0.0, drifted=False)
    assert look_closer(0.0, drifted=True)
    assert look_closer(0.01, drifted=False)
