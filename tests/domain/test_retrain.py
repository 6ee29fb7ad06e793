from datetime import UTC, datetime, timedelta

from perfwatch.domain.retrain import MetricChain, RetrainPolicy, Situation, decide

NOW = datetime(2026, 6, 1, tzinfo=UTC)
POLICY = RetrainPolicy(
    enabled=True, consecutive=2, cooldown=timedelta(days=7), min_labeled_rows=1000
)


def situation(**changes: object) -> Situation:
    base: dict[str, object] = {
        "now": NOW,
        "estimates": [MetricChain("roc_auc", [False, True, True])],
        "concept_drift": [],
        "labeled_rows": 5000,
        "degraded_labeled_rows": 2000,
        "drifted_labeled_rows": 1500,
        "last_retrain": None,
        "running": False,
    }
    return Situation(**{**base, **changes})  # type: ignore[arg-type]


def test_retrains_after_consecutive_chunks_under_threshold() -> None:
    decision = decide(POLICY, situation())
    assert decision.retrain and decision.trigger == "estimate"
    assert "roc_auc under its threshold for 2 complete chunks" in decision.reason


def test_one_chunk_under_threshold_is_not_enough() -> None:
    chains = [MetricChain("roc_auc", [True, False, True]), MetricChain("f1", [True])]
    decision = decide(POLICY, situation(estimates=chains))
    assert decision.state == "healthy" and not decision.retrain


def test_confirmed_concept_drift_triggers_alone() -> None:
    quiet = [MetricChain("roc_auc", [False, False])]
    decision = decide(POLICY, situation(estimates=quiet, concept_drift=["recall"]))
    assert decision.retrain and decision.trigger == "concept_drift"
    assert "recall" in decision.reason


def test_waits_for_labels_of_the_degraded_chunks_and_says_how_many() -> None:
    decision = decide(POLICY, situation(degraded_labeled_rows=400))
    assert decision.state == "waiting_for_labels" and not decision.retrain
    assert "waiting for 600 more labeled rows (400 of 1,000 of the degraded chunks)" in (
        decision.reason
    )
    before_the_shift = situation(labeled_rows=50_000, degraded_labeled_rows=0)
    assert decide(POLICY, before_the_shift).state == "waiting_for_labels"


def test_concept_drift_waits_for_labels_of_the_chunks_out_of_the_band() -> None:
    early = situation(estimates=[], concept_drift=["roc_auc"], drifted_labeled_rows=400)
    decision = decide(POLICY, early)
    assert decision.state == "waiting_for_labels" and decision.trigger == "concept_drift"
    assert "400 of 1,000 of the chunks out of the band" in decision.reason
    assert decide(POLICY, situation(estimates=[], concept_drift=["f1"])).retrain


def test_a_forced_retrain_counts_the_window_s_labels() -> None:
    quiet = situation(estimates=[], labeled_rows=400, drifted_labeled_rows=0)
    assert "400 of 1,000 in the window" in decide(POLICY, quiet, force=True).reason


def test_cooldown_runs_on_data_time() -> None:
    recent = decide(POLICY, situation(last_retrain=NOW - timedelta(days=3)))
    assert recent.state == "cooling_down" and "2026-06-05" in recent.reason
    assert decide(POLICY, situation(last_retrain=NOW - timedelta(days=7))).retrain


def test_one_retrain_per_model_at_a_time() -> None:
    assert decide(POLICY, situation(running=True)).state == "running"


def test_disabled_policy_says_so_and_force_overrides_trigger_and_cooldown() -> None:
    off = RetrainPolicy(
        enabled=False, consecutive=2, cooldown=timedelta(days=7), min_labeled_rows=1
    )
    assert decide(off, situation()).state == "disabled"
    healthy = situation(estimates=[], last_retrain=NOW - timedelta(days=1))
    forced = decide(off, healthy, force=True)
    assert forced.retrain and forced.trigger == "manual"
    few = situation(labeled_rows=10, degraded_labeled_rows=10)
    assert decide(POLICY, few, force=True).state == "waiting_for_labels"


def test_realized_under_the_bar_keeps_the_policy_trying() -> None:
    fine = [MetricChain("roc_auc", [False, False])]
    under = [MetricChain("roc_auc", [True, True])]
    decision = decide(POLICY, situation(estimates=fine, realized_under_bar=under))
    assert decision.retrain and decision.trigger == "under_bar"
    assert "realized roc_auc under the bar for 2 judged chunks" in decision.reason
    cooling = situation(estimates=fine, realized_under_bar=under, last_retrain=NOW)
    assert decide(POLICY, cooling).state == "cooling_down", "the cooldown still applies"
    once = [MetricChain("roc_auc", [False, True])]
    assert decide(POLICY, situation(estimates=fine, realized_under_bar=once)).state == "healthy"


def test_the_gate_promotes_only_a_challenger_that_wins_and_loses_nothing_much() -> None:
    from perfwatch.domain.retrain import GateRule, gate_verdict

    rule = GateRule(["roc_auc", "recall"], min_gain=0.01, max_loss=0.02, auto_promote=True)
    champion = {"roc_auc": 0.90, "recall": 0.50}
    assert gate_verdict(rule, champion, {"roc_auc": 0.92, "recall": 0.49}) == (
        "promoted",
        "roc_auc 0.920 vs the champion's 0.900",
    )
    assert gate_verdict(rule, champion, {"roc_auc": 0.905, "recall": 0.60})[0] == "rejected"
    assert gate_verdict(rule, champion, {"roc_auc": 0.95, "recall": 0.40}) == (
        "rejected",
        "recall 0.400 vs 0.500 lost",
    )
    kept = GateRule(["roc_auc"], min_gain=0.0, max_loss=0.02, auto_promote=False)
    assert gate_verdict(kept, champion, {"roc_auc": 0.90})[0] == "candidate"
