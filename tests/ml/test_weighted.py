"""The importance-weighted estimator (`estimator = "weighted"`) does what it is for: where
the model's calibration differs across the reference and a chunk holds mostly one part of
it, it estimates that part's performance; a chunk like the reference gets CBPE's figure."""

import os

import numpy as np
import pandas as pd

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from perfwatch.domain.chunks import ChunkPeriod
from perfwatch.ingest.batch import assign_chunks
from perfwatch.ingest.contract import derive_contract
from perfwatch.ml import cbpe, chunk_metrics, weighted
from perfwatch.ml.cbpe import Columns
from perfwatch.ml.chunk_metrics import Fitted

COLUMNS = Columns(score="p", prediction="y_hat", target="y", timestamp="t")
DAY = ChunkPeriod.parse("1D")


def machines(rng: np.random.Generator, days: int, hot_share: float, start: str) -> pd.DataFrame:
    """Cool machines (temp below 1): the model's scores are right. Hot ones: their failures
    (30 %) have nothing to do with the score, so the model cannot rank them (ROC AUC 0.5)."""
    n = days * 2_000
    temp = np.where(rng.random(n) < hot_share, rng.uniform(1, 2, n), rng.uniform(0, 1, n))
    score = 1 / (1 + np.exp(-rng.normal(-0.5, 1.5, n)))
    failing = np.where(temp < 1, rng.random(n) < score, rng.random(n) < 0.3)
    frame = pd.DataFrame(
        {
            "temp": temp,
            "p": score,
            "y_hat": (score >= 0.5).astype(int),
            "y": failing.astype(int),
            "t": pd.Timestamp(start, tz="UTC")
            + pd.to_timedelta(np.arange(n) * 86_400 / 2_000, "s"),
        }
    )
    assign_chunks(frame, "t", DAY)
    return frame


def estimates(rows: pd.DataFrame, reference: pd.DataFrame) -> tuple[float, float, float]:
    """The chunk's ROC AUC: CBPE's estimate, the weighted estimate, realized."""
    estimator, _ = cbpe.fit(reference, columns=COLUMNS, metrics=["roc_auc"], period=DAY)
    fitted = Fitted.of(estimator)
    contract = derive_contract(reference, features=["temp"], categorical=[])
    plain = chunk_metrics.estimate(fitted, rows, columns=COLUMNS, metrics=["roc_auc"], chunking=DAY)
    own = weighted.estimate(
        fitted, contract, reference, rows, columns=COLUMNS, metrics=["roc_auc"], chunking=DAY
    )
    realized = chunk_metrics.realize(fitted, rows, columns=COLUMNS, metrics=["roc_auc"])
    assert len(plain) == len(own) == len(realized) == 1
    return plain[0].value, own[0].value, realized[0].value or 0.0


def test_a_chunk_of_hot_machines_gets_their_calibration_not_the_reference_mix() -> None:
    rng = np.random.default_rng(3)
    reference = machines(rng, 10, hot_share=0.5, start="2026-01-01")
    hot = machines(rng, 1, hot_share=1.0, start="2026-02-01")
    plain, own, realized = estimates(hot, reference)
    assert abs(realized - 0.5) < 0.05, "the setting: nothing to rank among hot machines"
    assert abs(own - realized) < abs(plain - realized) / 2


def test_a_chunk_like_the_reference_gets_cbpe_figure() -> None:
    rng = np.random.default_rng(4)
    reference = machines(rng, 10, hot_share=0.5, start="2026-01-01")
    like = machines(rng, 1, hot_share=0.5, start="2026-02-01")
    plain, own, _ = estimates(like, reference)
    assert abs(own - plain) < 0.02
