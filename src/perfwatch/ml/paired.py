"""Two models judged on the same labeled rows: is one worse than the other beyond what
these rows can tell? A paired bootstrap of the difference in a metric."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROUNDS = 200
LEVEL = 0.95


def paired_difference(
    metric: str,
    labels: "np.ndarray",
    first: tuple["np.ndarray", "np.ndarray"],
    second: tuple["np.ndarray", "np.ndarray"],
    *,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`second`'s metric minus `first`'s (each given as scores and 0/1 predictions of the
    same rows), and the bounds of its central 95 % over bootstrap resamples of the rows
    (resampled together: the rows' own difficulty cancels out)."""
    import numpy as np

    from perfwatch.ml.concept import expected_metrics

    def difference(rows: "np.ndarray") -> float:
        a = expected_metrics(first[0][rows], first[1][rows], labels[rows], [metric])[metric]
        b = expected_metrics(second[0][rows], second[1][rows], labels[rows], [metric])[metric]
        return b - a

    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    drawn = [difference(rng.integers(0, len(labels), len(labels))) for _ in range(ROUNDS)]
    low, high = np.nanquantile(drawn, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return difference(everything), float(low), float(high)
