"""How often does each feature-drift method cry wolf? (issue 17)

For each seed, the demo's deployment (a model and its reference from the seed's own
history) and DAYS days of the `stable` fleet: nothing changes, so every confirmed
feature-drift alert is false. Each method set of `[models.drift]` measures every daily
chunk as a cycle does (ml.chunk_drift.measure against the version's reference; the
p-values of a chunk's features corrected together), and the alerts are confirmed as a
cycle confirms them (domain.drift: 2 chunks in a row). Printed per method: the share of
feature-chunks (for the multivariate methods: of chunks) with a confirmed alert, per seed
and over all seeds; the budget is 1 %. With `--shift heat_wave` the same replay with the
shop floor 8 K warmer from day SHIFT_DAY shows that each method does alert on a real
shift (days to the first confirmed alert on air_temp, or of all features together).

Run: `./dev bench-drift [--seeds 1,2,3] [--days 90] [--shift heat_wave]`.
"""

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from perfwatch.domain.drift import MULTIVARIATE, DriftMethods, RawDrift, confirmed

# three sets that between them use every method once
SETS = {
    "jensen_shannon + pca": DriftMethods("jensen_shannon", "jensen_shannon", "pca"),
    "ks + chi2 + classifier": DriftMethods("ks", "chi2", "classifier"),
    "wasserstein + chi2 + mmd": DriftMethods("wasserstein", "chi2", "mmd"),
}
BUDGET = 0.01
SHIFT_DAY = 30


Counts = dict[str, tuple[int, int, int | None]]  # method: alerts, feature-chunks, first day


def replay(seed: int, days: int, scenario: str) -> dict[str, Counts]:
    """Per method set, per method: (confirmed alerts, feature-chunks, first alert's day)."""
    from perfwatch.config import load_settings
    from perfwatch.ingest.rows import combine, read_batch, read_reference
    from perfwatch.ml import drift
    from perfwatch.ml.chunk_drift import Reference, measure
    from perfwatch.services.demo import MODEL, RUNS_PER_DAY, START, prepare_workspace
    from perfwatch.simulate.files import write_frame
    from perfwatch.simulate.fleet import simulate_days

    with tempfile.TemporaryDirectory() as folder:
        config = prepare_workspace(Path(folder), seed=seed)
        model = load_settings(config).model(MODEL)
        assert model.reference is not None
        reference, contract = read_reference(model.reference, model=model)
        production = simulate_days(
            start=START,
            days=days,
            runs_per_day=RUNS_PER_DAY,
            machines=20,
            seed=seed + 1,
            scenario=scenario,
            shift_day=SHIFT_DAY,
            id_prefix="prod",
        )
        path = write_frame(production, Path(folder) / "production.parquet")
        rows = combine([read_batch(path, model=model)], model=model, chunking=model.chunking).rows
    fitted = drift.fitted(
        reference,
        features=model.features,
        categorical=model.categorical,
        timestamp=model.timestamp_column,
        period=model.chunking,
    )
    found = {}
    for name, methods in SETS.items():
        results = measure(fitted, rows, methods, Reference(reference, contract))
        found[name] = _count(results)
    return found


def _count(results: list) -> Counts:
    by_feature = defaultdict(list)
    for r in results:
        by_feature[(r.method, r.feature)].append(r)
    counts: dict[str, list] = defaultdict(lambda: [0, 0, None])
    for (method, feature), chain in by_feature.items():
        chain.sort(key=lambda r: r.chunk_start)
        flags = confirmed([RawDrift(r.method, r.value, r.alert) for r in chain])
        label = method if feature != MULTIVARIATE else f"{method} (all features)"
        counts[label][0] += sum(flags)
        counts[label][1] += len(flags)
        if feature in ("air_temp", MULTIVARIATE) and any(flags):
            day = flags.index(True)
            first = counts[label][2]
            counts[label][2] = day if first is None else min(first, day)
    return {label: tuple(c) for label, c in counts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--shift", default="stable", help="stable | heat_wave | covariate_shift")
    options = parser.parse_args()
    seeds = [int(s) for s in options.seeds.split(",")]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_seed: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    for seed in seeds:
        for counts in replay(seed, options.days, options.shift).values():
            for label, (alerts, chunks, first) in counts.items():
                totals[label][0] += alerts
                totals[label][1] += chunks
                shown = f"{alerts / chunks:.2%}"
                if options.shift != "stable":
                    day = "none" if first is None else f"day {first}"
                    shown += f", first on air_temp/all: {day}"
                per_seed[label].append(shown)
    print(
        f"feature-drift alerts confirmed on {options.days} days of `{options.shift}`,"
        f" seeds {options.seeds} ({time.perf_counter() - started:.0f} s)"
    )
    print(f"{'method':<32} {'alerting feature-chunks':>24}   per seed")
    over = False
    for label in sorted(totals):
        alerts, chunks = totals[label]
        share = alerts / chunks
        over |= options.shift == "stable" and share > BUDGET
        print(f"{label:<32} {share:>14.2%} ({alerts}/{chunks})   {'; '.join(per_seed[label])}")
    if options.shift == "stable":
        print(f"budget: {BUDGET:.0%} for every method: {'OVER' if over else 'within'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
