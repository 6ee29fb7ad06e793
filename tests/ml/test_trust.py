"""The trust figures: rows outside the reference's support, and the domain classifier."""

import numpy as np
import pandas as pd

from perfwatch.domain.trust import Outside
from perfwatch.ingest.contract import derive_contract
from perfwatch.ml.chunk_metrics import Chunks
from perfwatch.ml.trust import domain_auc, outside_support

REFERENCE = pd.DataFrame(
    {"temp": np.linspace(300.0, 310.0, 101), "kind": ["L", "M", "H"] * 33 + ["L", "M"]}
)
CONTRACT = derive_contract(REFERENCE, features=["temp", "kind"], categorical=["kind"])


def chunked(*chunks: pd.DataFrame) -> tuple[pd.DataFrame, Chunks]:
    rows = pd.concat(chunks, keys=range(len(chunks))).reset_index(level=0, names="chunk")
    return rows, Chunks.of(rows["chunk"].to_numpy(dtype="int64"))


def test_values_past_the_widened_range_and_unseen_categories_are_outside() -> None:
    # the range 300..310 widened by a tenth of its span: 299..311
    rows, chunks = chunked(
        pd.DataFrame({"temp": [299.0, 311.0, 311.5, 298.0], "kind": ["L", "L", "X", "M"]}),
        pd.DataFrame({"temp": [305.0, None], "kind": [None, "H"]}),
    )
    shares, outside = outside_support(CONTRACT, rows, chunks)
    assert shares.tolist() == [0.5, 0.0], "a row outside on two features counts once"
    assert outside[0] == (
        Outside("temp", "above", 0.25),
        Outside("temp", "below", 0.25),
        Outside("kind", "unseen", 0.25),
    )
    assert outside[1] == (), "missing values are data quality's business, not support"


def test_categories_written_as_numbers_match_the_reference_as_text() -> None:
    reference = pd.DataFrame({"line": [1, 2, 3] * 10})
    contract = derive_contract(reference, features=["line"], categorical=["line"])
    rows, chunks = chunked(pd.DataFrame({"line": ["1", "2", "4", "3"]}))
    shares, outside = outside_support(contract, rows, chunks)
    assert shares.tolist() == [0.25] and outside[0] == (Outside("line", "unseen", 0.25),)


def sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "temp": rng.normal(305 + shift, 1.5, n),
            "kind": rng.choice(["L", "M", "H"], n),
        }
    )


def test_the_classifier_cannot_tell_a_chunk_of_the_same_rows_apart() -> None:
    rng = np.random.default_rng(1)
    auc, _ = domain_auc(CONTRACT, sample(rng, 3000), sample(rng, 2000), seed=7)
    assert 0.42 < auc < 0.58


def test_the_classifier_tells_a_hotter_chunk_apart_and_names_the_feature() -> None:
    rng = np.random.default_rng(2)
    reference, chunk = sample(rng, 3000), sample(rng, 2000, shift=5.0)
    auc, telling = domain_auc(CONTRACT, reference, chunk, seed=7)
    assert auc > 0.97 and telling == ("temp",)
    assert domain_auc(CONTRACT, reference, chunk, seed=7) == (auc, telling), "reproducible"


def test_a_model_with_one_feature_and_a_chunk_of_a_few_rows() -> None:
    reference = pd.DataFrame({"temp": np.linspace(300.0, 310.0, 200)})
    contract = derive_contract(reference, features=["temp"], categorical=[])
    chunk = pd.DataFrame({"temp": [320.0] * 30})
    auc, telling = domain_auc(contract, reference, chunk, seed=3)
    assert auc > 0.97 and telling == ("temp",)
