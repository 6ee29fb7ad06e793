"""Does retraining pay? (issue 4's acceptance) Each scenario replayed day by day through real
cycles, labels a week late, `perfwatch retrain` whenever the policy says it is due.

    ./dev bench-retrain              # covariate_shift and concept_drift (about 3 minutes)
    .venv/bin/python benchmarks/retrain_outcome.py --scenario concept_drift --days 60

For the chunks after the first promotion it prints the realized ROC AUC of the serving
champion, the ROC AUC the never-retrained version 1 would have had on the very same rows
(the baseline), and the reference ROC AUC of version 1. Criteria: within 0.02 of the
reference, and above the baseline.
"""

import argparse
import json
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


def replay(scenario: str, days: int, shift_day: int, seed: int, folder: Path) -> dict[str, float]:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from perfwatch.config import load_settings
    from perfwatch.services.demo import (
        LABEL_DELAY_DAYS,
        MODEL,
        RUNS_PER_DAY,
        START,
        prepare_workspace,
    )
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.retraining import run_retrain
    from perfwatch.services.status import history
    from perfwatch.simulate.files import drop_labels, write_frame
    from perfwatch.simulate.fleet import FEATURES, simulate_days
    from perfwatch.store import db

    config = prepare_workspace(folder, seed=seed)
    settings = load_settings(config)
    model = settings.model(MODEL)
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    production = simulate_days(
        start=START,
        days=days,
        runs_per_day=RUNS_PER_DAY,
        machines=20,
        seed=seed + 1,
        scenario=scenario,
        shift_day=shift_day,
        id_prefix="prod",
    )
    by_day = list(production.groupby(production.timestamp.dt.date))
    promoted_on = None
    for index, (day, rows) in enumerate(by_day):
        write_frame(rows, model.inbox / f"{day:%Y-%m-%d}.parquet")
        if index >= LABEL_DELAY_DAYS and model.labels_inbox is not None:
            labeled_day, labeled = by_day[index - LABEL_DELAY_DAYS]
            drop_labels(labeled, labeled_day, model.labels_inbox, delay=LABEL_DELAY_DAYS)
        report = run_cycle(engine, settings, model)
        assert report.status == "ok", report.error
        if report.retrain is not None and report.retrain.retrain:
            run = run_retrain(engine, settings, model)
            if run is not None and run.decision == "promoted" and promoted_on is None:
                promoted_on = day
                print(f"  {day}: promoted ({json.loads(run.gate)['reason']})")
            elif run is not None:
                print(f"  {day}: retrain {run.status} {run.decision or run.error}")
    if promoted_on is None:
        return {"promoted": 0.0}
    version_1 = joblib.load(folder / "models" / f"{MODEL}.joblib")
    realized = [
        r
        for r in history(engine, MODEL, "roc_auc")
        if r["realized"] is not None and r["chunk_start"][:10] > str(promoted_on)
    ]
    after = production[production.timestamp.dt.date > promoted_on]
    judged_days = {r["chunk_start"][:10] for r in realized}
    same_rows = after[after.timestamp.dt.strftime("%Y-%m-%d").isin(judged_days)]
    baseline = [
        roc_auc_score(rows["failure"], version_1.predict_proba(rows[FEATURES])[:, 1])
        for _, rows in same_rows.groupby(same_rows.timestamp.dt.date)
    ]
    from perfwatch.store import queries
    from perfwatch.store.db import transaction

    with transaction(engine) as session:
        reference = queries.reference_metrics(session=session, version_id=1)["roc_auc"].value
    return {
        "promoted": 1.0,
        "chunks": float(len(realized)),
        "realized": float(np.mean([r["realized"] for r in realized])),
        "baseline": float(np.mean(baseline)),
        "reference": float(reference),
        "start": float(
            (pd.Timestamp(promoted_on) - pd.Timestamp(START.date())) / timedelta(days=1)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="default: both")
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--shift-day", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scenarios = args.scenario or ["covariate_shift", "concept_drift"]
    ok = True
    for scenario in scenarios:
        print(f"{scenario}: {args.days} days, shift on day {args.shift_day}")
        with tempfile.TemporaryDirectory(prefix="perfwatch-retrain-") as folder:
            figures = replay(scenario, args.days, args.shift_day, args.seed, Path(folder))
        if not figures["promoted"]:
            print("  no retrain was promoted: FAIL")
            ok = False
            continue
        close = abs(figures["realized"] - figures["reference"]) <= 0.02
        better = figures["realized"] > figures["baseline"]
        ok = ok and close and better
        print(
            f"  after the promotion (day {figures['start']:.0f}, {figures['chunks']:.0f} judged"
            f" chunks): realized ROC AUC {figures['realized']:.3f}, never-retrain baseline"
            f" {figures['baseline']:.3f}, reference {figures['reference']:.3f}"
            f" -> within 0.02 of the reference: {'OK' if close else 'NO'};"
            f" above the baseline: {'OK' if better else 'NO'}"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
