from datetime import UTC, datetime, timedelta

from perfwatch.domain.concept import Judged, out_of_band, verdicts

DAY = datetime(2026, 5, 4, tzinfo=UTC)


def judged(i: int, realized: float, estimated: float | None = 0.95, error: float = 0.01) -> Judged:
    return Judged(DAY + timedelta(days=i), realized, error, estimated, error)


def test_the_band_counts_both_sampling_errors() -> None:
    # 3 sigmas of sqrt(0.01^2 + 0.01^2) = 0.0424
    assert not out_of_band(judged(0, 0.95 - 0.04), sigmas=3)
    assert out_of_band(judged(0, 0.95 - 0.045), sigmas=3)
    assert out_of_band(judged(0, 0.95 + 0.045), sigmas=3)


def test_no_estimate_or_no_error_is_never_out_of_band() -> None:
    assert not out_of_band(judged(0, 0.5, estimated=None), sigmas=3)
    assert not out_of_band(judged(0, 0.5, error=0.0), sigmas=3)


def test_drift_needs_consecutive_chunks_on_the_same_side() -> None:
    chain = [judged(0, 0.95), judged(1, 0.85), judged(2, 0.86), judged(3, 1.0), judged(4, 0.95)]
    found = verdicts(chain, consecutive=2, sigmas=3)
    assert [v.out_of_band for v in found] == [False, True, True, True, False]
    assert [v.concept_drift for v in found] == [False, False, True, False, False]
    assert found[1].magnitude is not None and round(found[1].magnitude, 3) == -0.1


def test_one_chunk_is_enough_when_so_configured() -> None:
    found = verdicts([judged(0, 0.85)], consecutive=1, sigmas=3)
    assert found[0].concept_drift
