"""Misalignment before deployment (services.alignment through the preflight): a sample
like the training data is aligned, a shifted one is not, on the fleet simulator and on
nannyml's bundled US census data with a model we did not make."""

from pathlib import Path
from typing import Any

import pytest

from perfwatch.config import load_settings
from perfwatch.services.preflight import preflight
from perfwatch.simulate.files import write_frame
from tests.services.test_real_data import census, census_deployment  # noqa: F401  (a fixture)
from tests.workspace import Workspace, production


def shifted(alignment: Any) -> set[str]:
    return {f.feature for f in alignment.features if f.shifted}


def test_a_sample_like_the_training_data_is_aligned(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    sample = write_frame(production(2), ws.root / "sample.parquet")
    result = preflight(ws.settings().models[0], sample)
    found = result.alignment
    assert found is not None and result.ok
    assert (found.verdict, found.reasons, shifted(found)) == ("aligned", [], set())
    assert found.compared_with == "training data" and found.rows == 1600
    assert found.outside == 0 and found.coverage is not None and found.coverage.gap_days > 0
    [auc] = [e for e in found.expected if e.metric == "roc_auc"]
    assert abs(auc.estimated - auc.reference) < 0.03
    figures = result.to_json()["alignment"]
    assert figures["verdict"] == "aligned" and len(figures["features"]) == 6


def test_a_heat_wave_sample_is_misaligned_naming_what_moved(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    rows = production(6, scenario="heat_wave", shift_day=0).iloc[-1600:]
    sample = write_frame(rows, ws.root / "sample.parquet")
    result = preflight(ws.settings().models[0], sample)
    found = result.alignment
    assert found is not None and not result.ok, "a misaligned sample fails the check"
    assert found.verdict == "misaligned"
    assert shifted(found) == {"air_temp", "process_temp"}
    assert found.outside > 0.5, "hotter than any training row"
    assert any("air_temp" in reason for reason in found.reasons)


def test_without_training_data_the_sample_is_compared_with_the_reference(
    tmp_path: Path, artifacts: Path, sqlite_url: str
) -> None:
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url)
    ws.config.write_text(
        ws.config.read_text().replace('training_data = "artifacts/train.parquet"', "")
    )
    sample = write_frame(production(1), ws.root / "sample.parquet")
    found = preflight(ws.settings().models[0], sample).alignment
    assert found is not None and found.compared_with == "reference"
    assert found.positive_rates[0] is None and found.verdict == "aligned"


@pytest.mark.slow  # nannyml's bundled census data and a LightGBM fit on it
def test_census_a_later_year_is_aligned_and_a_part_of_the_population_is_not(
    tmp_path: Path,
    sqlite_url: str,
    census: dict[str, Any],  # noqa: F811
) -> None:
    """A bare LGBMClassifier on the census' category columns; production samples of 2016:
    all of it (the same population a year on), and only people of 60 and over."""
    config = census_deployment(tmp_path, census, ["roc_auc", "f1"], store=sqlite_url)
    model = load_settings(config, environ={}).models[0]
    columns = ["id", "timestamp", *census["features"]]
    production_rows = census["production"]
    year = production_rows[production_rows.year == 2016]
    year[columns].to_parquet(tmp_path / "2016.parquet")
    year[year.AGEP >= 60][columns].to_parquet(tmp_path / "2016-60-and-over.parquet")

    everyone = preflight(model, tmp_path / "2016.parquet").alignment
    assert everyone is not None and everyone.verdict == "aligned", everyone.reasons
    older = preflight(model, tmp_path / "2016-60-and-over.parquet").alignment
    assert older is not None and older.verdict == "misaligned"
    assert "AGEP" in shifted(older)
    [auc] = [e for e in older.expected if e.metric == "roc_auc"]
    assert auc.threshold is not None and auc.estimated < auc.threshold < auc.reference
