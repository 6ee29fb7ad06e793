from datetime import UTC, datetime, timedelta

from perfwatch.domain.alerts import Observation, Signal, changes

DAY = datetime(2026, 5, 4, tzinfo=UTC)


def signal(*firing: bool, close_after: int = 2) -> Signal:
    observations = [
        Observation(f, "m", chunk_start=DAY + timedelta(days=i)) for i, f in enumerate(firing)
    ]
    return Signal("performance", "roc_auc", observations, close_after)


def test_opens_on_the_newest_firing_observation_only() -> None:
    opened, closed = changes(set(), [signal(False, True)])
    assert [(o.kind, o.subject, o.observation.chunk_start) for o in opened] == [
        ("performance", "roc_auc", DAY + timedelta(days=1))
    ]
    assert closed == []
    assert changes(set(), [signal(True, False)]) == ([], [])


def test_an_open_alert_is_not_opened_twice() -> None:
    assert changes({("performance", "roc_auc")}, [signal(True, True)]) == ([], [])


def test_closes_only_after_enough_quiet_observations() -> None:
    key = ("performance", "roc_auc")
    assert changes({key}, [signal(True, False)]) == ([], [])
    _, closed = changes({key}, [signal(True, False, False)])
    assert [k for k, _ in closed] == [key]
    assert changes({key}, [signal(False)]) == ([], [])  # one quiet look is not enough
    _, closed = changes({key}, [signal(False, close_after=1)])
    assert [k for k, _ in closed] == [key]


def test_subjects_are_independent() -> None:
    other = Signal("concept_drift", "roc_auc", [Observation(True, "drift")])
    opened, _ = changes({("performance", "roc_auc")}, [signal(True), other])
    assert [(o.kind, o.subject) for o in opened] == [("concept_drift", "roc_auc")]
