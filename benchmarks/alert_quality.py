"""How early, how true and how quiet are perfwatch's label-free signals? (issue 15)

Each scenario of the fleet simulator is replayed for DAYS days of production with the
change on SHIFT_DAY, for each seed, through one real cycle on the demo's deployment
(a model trained on the seed's own history), every label included so that each mature
chunk is judged. Per scenario it prints, for the ROC AUC estimate:

- MAE: mean absolute error of the estimate against realized ROC AUC, per judged chunk;
- coverage: the share of judged chunks whose realized value lies in the estimate's band;
- first alert: chunks from the change to the first label-free alert of any kind (an
  estimate under its threshold, on any metric, or an unreliable chunk: extrapolation);
  "none" when none fired by the end;
- false alarms per 100 complete chunks before the change (all of `stable`).

Run: `./dev bench-alerts [--seeds 1,2,3] [--days 90]`. The delay-adjusted and weighted
estimators of issue 15 are not built yet: only CBPE (and its trust figures) is measured.
"""

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

SCENARIOS = ("stable", "covariate_shift", "heat_wave", "concept_drift", "seasons")
DAYS, SHIFT_DAY, SEEDS = 90, 30, (1, 2, 3)
LABEL_FREE = "performance or extrapolation"


@dataclass
class Replay:
    scenario: str
    seed: int
    mae: float
    coverage: float
    first_alert: int | None  # chunks after the change (None: no alert by the end)
    false_alarms: float | None  # per 100 complete chunks before the change (seasons: none)
    unreliable: int  # chunks marked unreliable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    replays = []
    with tempfile.TemporaryDirectory(prefix="perfwatch-alerts-") as folder:
        for scenario in args.scenarios.split(","):
            for seed in seeds:
                found = replay(Path(folder) / f"{scenario}-{seed}", scenario, seed, args.days)
                print(_line(found), flush=True)
                replays.append(found)
    print()
    print(table(replays))


def replay(folder: Path, scenario: str, seed: int, days: int) -> Replay:
    """One scenario and seed through one cycle; its figures from `history`."""
    from perfwatch.config import load_settings
    from perfwatch.services.demo import MODEL, START, prepare_workspace
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.status import history
    from perfwatch.simulate.files import write_frame
    from perfwatch.simulate.fleet import TARGET, simulate_days
    from perfwatch.store import db

    config = prepare_workspace(folder, seed=seed)
    settings = load_settings(config)
    model = settings.models[0]
    fleet = simulate_days(
        start=START,
        days=days,
        runs_per_day=2_000,
        machines=20,
        seed=seed + 100,
        scenario=scenario,
        shift_day=None if scenario in ("stable", "seasons") else SHIFT_DAY,
    )
    for day, rows in fleet.groupby(fleet.timestamp.dt.date):
        write_frame(rows.drop(columns=[TARGET]), model.inbox / f"{day:%Y-%m-%d}.parquet")
    assert model.labels_inbox is not None
    write_frame(fleet[["id", TARGET]], model.labels_inbox / "labels.parquet")
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    report = run_cycle(engine, settings, model)
    assert report.status == "ok", report.error
    rows = [r for r in history(engine, MODEL) if not r["provisional"]]
    change = (START + timedelta(days=SHIFT_DAY)).isoformat()
    return figures(scenario, seed, rows, change if scenario not in ("stable", "seasons") else None)


def figures(scenario: str, seed: int, rows: list[dict[str, Any]], change: str | None) -> Replay:
    """The figures of one replay from its complete chunks' history rows."""
    auc = [r for r in rows if r["metric"] == "roc_auc" and r["realized"] is not None]
    mae = statistics.fmean(abs(r["estimated"] - r["realized"]) for r in auc)
    covered = statistics.fmean(r["lower"] <= r["realized"] <= r["upper"] for r in auc)
    chunks = sorted({r["chunk_start"] for r in rows})
    firing = {r["chunk_start"] for r in rows if r["alert"] or r["reliable"] is False}
    before = [c for c in chunks if change is None or c < change]
    after = [c for c in chunks if change is not None and c >= change]
    first = next((i for i, c in enumerate(after) if c in firing), None)
    false_alarms = 100 * sum(c in firing for c in before) / max(len(before), 1)
    if scenario == "seasons":  # the calendar moves from the first day: nothing is false
        false_alarms = None
    unreliable = len({r["chunk_start"] for r in rows if r["reliable"] is False})
    return Replay(scenario, seed, mae, covered, first, false_alarms, unreliable)


def _line(r: Replay) -> str:
    first = "none" if r.first_alert is None else f"{r.first_alert} chunk(s) after the change"
    return (
        f"{r.scenario:<16} seed {r.seed}: MAE {r.mae:.3f}, coverage {r.coverage:.0%},"
        f" first {LABEL_FREE} alert {first}, false alarms {_per_100(r.false_alarms)} per 100"
        f" chunks, {r.unreliable} unreliable chunk(s)"
    )


def _per_100(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def table(replays: list[Replay]) -> str:
    """The README's table: per scenario, over its seeds."""
    lines = [
        "| scenario | estimator | MAE vs realized ROC AUC | band coverage"
        " | first label-free alert (chunks after the change, per seed)"
        " | false alarms / 100 chunks |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in dict.fromkeys(r.scenario for r in replays):
        mine = [r for r in replays if r.scenario == scenario]
        first = ", ".join("none" if r.first_alert is None else str(r.first_alert) for r in mine)
        lines.append(
            f"| {scenario} | CBPE | {statistics.fmean(r.mae for r in mine):.3f}"
            f" | {statistics.fmean(r.coverage for r in mine):.0%}"
            f" | {first if scenario not in ('stable', 'seasons') else '–'}"
            f" | {_per_100(_mean([r.false_alarms for r in mine]))} |"
        )
    return "\n".join(lines)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


if __name__ == "__main__":
    sys.exit(main())
