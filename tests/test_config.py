from pathlib import Path

import pytest

from perfwatch.config import load_settings
from perfwatch.errors import ConfigError

MINIMAL = """
[[models]]
name = "press"
target = "failure"
features = ["a", "b"]
inbox = "inbox"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "perfwatch.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    model = settings.models[0]
    assert model.inbox == tmp_path / "inbox"
    assert settings.data_dir == tmp_path / "var"
    assert settings.store == f"sqlite:///{tmp_path}/var/perfwatch.db"
    assert model.chunk == "1D" and model.metrics == ["roc_auc", "f1", "recall"]


def test_store_from_environment(tmp_path: Path) -> None:
    env = {"PERFWATCH_STORE": "postgresql+psycopg://u@h/db"}
    assert load_settings(write(tmp_path, MINIMAL), environ=env).store == env["PERFWATCH_STORE"]


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        (
            MINIMAL.replace('inbox = "inbox"', 'inbox = "inbox"\nmetrcs = ["f1"]'),
            "'metrcs' of model 'press'",
            "did you mean 'metrics'?",
        ),
        ("stroe = 'x'\n" + MINIMAL, "'stroe'", "did you mean 'store'?"),
        (
            MINIMAL.replace("features =", "feature ="),  # also a missing required key
            "'feature' of model 'press'",
            "did you mean 'features'?",
        ),
        (
            MINIMAL + "[models.retrain]\ncooldwn = '7D'\n",
            "'retrain.cooldwn' of model 'press'",
            "did you mean 'cooldown'?",
        ),
        (
            MINIMAL + "[models.thresholds]\nroc_auc = { lowr = 0.8 }\n",
            "'thresholds.roc_auc.lowr' of model 'press'",
            "did you mean 'lower'?",
        ),
    ],
)
def test_misspelled_key_names_itself_and_the_fix(
    tmp_path: Path, text: str, key: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert f"unknown key {key}" in caught.value.message
    assert "models[0]" not in caught.value.message
    assert caught.value.hint == hint
    assert caught.value.exit_code == 2


def test_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing key 'target' of model 'press'") as caught:
        load_settings(write(tmp_path, MINIMAL.replace('target = "failure"\n', "")), environ={})
    assert "perfwatch init --example" in caught.value.hint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('chunk = "1D"', 'chunk = "1M"'), "not a duration"),
        (('metrics = ["roc_auc"]', 'metrics = ["auroc"]'), "unknown metric 'auroc'"),
        (("min_label_coverage = 0.9", "min_label_coverage = 1.5"), "min_label_coverage"),
        (("categorical = []", 'categorical = ["c"]'), "categorical column 'c'"),
        (('chunk = "1D"', "chunk_rows = 5"), "chunk_rows"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = (
        MINIMAL
        + 'chunk = "1D"\nmetrics = ["roc_auc"]\nmin_label_coverage = 0.9\ncategorical = []\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text.replace(*change)), environ={})


def test_threshold_for_unmeasured_metric(tmp_path: Path) -> None:
    text = MINIMAL + 'metrics = ["roc_auc"]\n[models.thresholds]\nf1 = { lower = 0.5 }\n'
    with pytest.raises(ConfigError, match="threshold for 'f1'"):
        load_settings(write(tmp_path, text), environ={})


def test_a_dask_executor_needs_a_postgresql_store(tmp_path: Path) -> None:
    dask = MINIMAL.replace("[[models]]", '[executor]\nkind = "dask"\n\n[[models]]')
    with pytest.raises(ConfigError, match="needs a PostgreSQL store") as caught:
        load_settings(write(tmp_path, dask), environ={})
    assert 'store = "postgresql+psycopg://' in caught.value.message
    assert 'kind = "local"' in caught.value.message
    env = {"PERFWATCH_STORE": "postgresql+psycopg://u@h/db", "PERFWATCH_DASK_ADDRESS": "tcp://s:1"}
    settings = load_settings(write(tmp_path, dask), environ=env)
    assert settings.executor.kind == "dask" and settings.executor.address == "tcp://s:1"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config file") as caught:
        load_settings(tmp_path / "absent.toml", environ={})
    assert "perfwatch init" in caught.value.hint
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "store = "), environ={})


def test_example_config_is_valid_and_documents_every_key() -> None:
    from perfwatch.config import ExecutorSettings, ModelSettings, RetrainSettings, Settings

    example = Path(__file__).parents[1] / "config" / "perfwatch.example.toml"
    settings = load_settings(example, environ={})
    assert settings.models[0].name == "press-failure"
    text = example.read_text()
    for schema in (Settings, ModelSettings, RetrainSettings, ExecutorSettings):
        for key in schema.model_fields:
            assert (
                f"{key} =" in text
                or f"[{key}]" in text
                or f"[[{key}]]" in text
                or f"[models.{key}]" in text
            ), key
