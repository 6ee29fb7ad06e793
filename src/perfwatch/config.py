"""Settings: the TOML config plus PERFWATCH_* environment, validated into plain objects.

Every mistake names its key; a misspelled key also names the closest known one.
Relative paths are taken relative to the config file's folder.
"""

import difflib
import os
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perfwatch.domain.chunks import Chunking, ChunkPeriod, RowChunks
from perfwatch.domain.drift import DriftMethods
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.thresholds import ThresholdRule
from perfwatch.domain.trust import DOMAIN_AUC, OUT_OF_DOMAIN_SHARE, Limits
from perfwatch.errors import ConfigError

DEFAULT_CONFIG = Path("config/perfwatch.toml")
# CBPE's binary metrics that need no extra parameters.
METRICS = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy", "average_precision")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class Threshold(_Strict):
    lower: float | None = None
    drop: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_kind(self) -> "Threshold":
        if self.lower is not None and self.drop is not None:
            raise ValueError("set either 'lower' (absolute floor) or 'drop' (relative), not both")
        return self

    def rule(self) -> ThresholdRule:
        return ThresholdRule(lower=self.lower, drop=self.drop)


class RetrainSettings(_Strict):
    enabled: bool = True
    consecutive: int = Field(default=2, ge=1)
    cooldown: str = "7D"
    min_labeled_rows: int = Field(default=1000, ge=1)
    window: str = "90D"
    min_gain: float = 0.0
    max_loss: float = Field(default=0.02, ge=0)
    holdout: float = Field(default=0.1, gt=0, lt=1)
    on_concept_drift: str = Field(default="sliding", pattern="^(sliding|append)$")
    auto_promote: bool = True
    # synthetic or augmented labeled rows, checked before each retrain learns from them
    # (services.synthetic); relative to the config
    extra_training_data: Path | None = None

    _durations = field_validator("cooldown", "window")(_duration)


class DriftSettings(_Strict):
    """`[models.drift]`: the tests of feature drift (see ml.drift_tests)."""

    continuous: str = Field(default="jensen_shannon", pattern="^(jensen_shannon|ks|wasserstein)$")
    categorical: str = Field(default="jensen_shannon", pattern="^(jensen_shannon|chi2)$")
    multivariate: str = Field(default="pca", pattern="^(pca|classifier|mmd)$")
    level: float = Field(default=0.05, gt=0, lt=1)
    sample: int = Field(default=500, ge=50, le=5000)
    permutations: int = Field(default=100, ge=20, le=2000)

    def methods(self) -> DriftMethods:
        return DriftMethods(**self.model_dump())


class ReadSettings(_Strict):
    """How a model's CSV files are written, and how their timestamps are (all files of the
    model: batches, labels, reference, training data)."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: str = Field(default=".", pattern=r"^[.,]$")
    timestamp_format: str | None = None  # strptime codes, e.g. "%d/%m/%Y %H:%M"; else ISO 8601
    timestamp_unit: str | None = Field(default=None, pattern="^(s|ms|us|ns)$")  # epochs


class ConceptDriftSettings(_Strict):
    consecutive: int = Field(default=2, ge=1)
    sigmas: float = Field(default=3.0, gt=0)


class TrustSettings(_Strict):
    """When a chunk's estimate is unreliable (domain.trust): this share of its rows
    outside the reference's support, or a reference-vs-chunk classifier this good."""

    out_of_domain_share: float = Field(default=OUT_OF_DOMAIN_SHARE, gt=0, le=1)
    domain_auc: float = Field(default=DOMAIN_AUC, gt=0.5, le=1)

    @property
    def limits(self) -> Limits:
        return Limits(self.out_of_domain_share, self.domain_auc)


class ModelSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    id_column: str = "id"
    timestamp_column: str = "timestamp"
    target: str
    features: list[str] = Field(min_length=1)
    categorical: list[str] = []
    score_column: str = "y_pred_proba"
    prediction_column: str = "y_pred"
    chunk: str = "1D"
    chunk_rows: int | None = Field(default=None, ge=10)  # chunks of N rows instead of time
    metrics: list[str] = Field(default=["roc_auc", "f1", "recall"], min_length=1)
    inbox: Path
    labels_inbox: Path | None = None
    initial_model: Path | None = None
    reference: Path | None = None
    training_data: Path | None = None
    label_time_column: str = "label_time"
    min_label_coverage: float = Field(default=0.9, gt=0, le=1)
    label_horizon: str | None = None
    # wall time after a chunk's end that closes it even when no newer data came (a quiet
    # line's last chunk); by default only newer data closes a chunk
    complete_after: str | None = None
    label_window: str = "90D"
    label_grace: str = "3D"
    skew_tolerance: float = Field(default=0.01, gt=0, lt=1)
    # served scores are re-scored when the champion is new, loaded anyway (some rows came
    # without scores) and else once per window of this much data time: loading it costs
    # a cold `run --once` seconds
    skew_every: str = "7D"
    # rows perfwatch scores itself (no served prediction) are predicted 1 at score >= this
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)
    thresholds: dict[str, Threshold] = {}
    # `[models.thresholds] rebaseline = true`: the bar follows each promoted version's
    # thresholds (by default it stays at version 1's; see DESIGN.md, "The bar")
    rebaseline: bool = False
    concept_drift: ConceptDriftSettings = ConceptDriftSettings()
    drift: DriftSettings = DriftSettings()
    trust: TrustSettings = TrustSettings()
    # which estimate alerts: CBPE's, the delay-adjusted one (from the early labels), or both
    alert_on: str = Field(default="both", pattern="^(cbpe|adjusted|both)$")
    # "weighted": CBPE's arithmetic on a calibration weighted towards each chunk's inputs
    # (measured worse than CBPE on every scenario of the evaluation: see the README)
    estimator: str = Field(default="cbpe", pattern="^(cbpe|weighted)$")
    retrain: RetrainSettings = RetrainSettings()
    read: ReadSettings = ReadSettings()

    _durations = field_validator(
        "label_horizon", "label_window", "label_grace", "complete_after", "skew_every"
    )(_duration)

    @property
    def served_columns(self) -> list[str]:
        """What a label carries of its row: the row's id, time and served figures."""
        return [self.id_column, self.timestamp_column, self.score_column, self.prediction_column]

    @property
    def closes_after(self) -> timedelta | None:
        return parse_duration(self.complete_after) if self.complete_after else None

    @model_validator(mode="before")
    @classmethod
    def _rebaseline(cls, data: Any) -> Any:
        """`rebaseline` is written among the thresholds, where a user looks for it."""
        thresholds = data.get("thresholds") if isinstance(data, dict) else None
        if isinstance(thresholds, dict) and "rebaseline" in thresholds:
            thresholds = dict(thresholds)
            data = {**data, "rebaseline": thresholds.pop("rebaseline"), "thresholds": thresholds}
        return data

    @field_validator("chunk")
    @classmethod
    def _chunk(cls, value: str) -> str:
        ChunkPeriod.parse(value)
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSettings":
        stray = [c for c in self.categorical if c not in self.features]
        if stray:
            raise ValueError(f"categorical column {stray[0]!r} is not in 'features'")
        unmeasured = [m for m in self.thresholds if m not in self.metrics]
        if unmeasured:
            raise ValueError(f"threshold for {unmeasured[0]!r}, which is not in 'metrics'")
        return self

    @property
    def chunking(self) -> Chunking:
        """How rows are cut into chunks: `chunk_rows` rows each, else the `chunk` period."""
        return RowChunks(self.chunk_rows) if self.chunk_rows else ChunkPeriod.parse(self.chunk)

    def threshold_rule(self, metric: str) -> ThresholdRule:
        threshold = self.thresholds.get(metric)
        return threshold.rule() if threshold else ThresholdRule()


class Webhook(_Strict):
    url: str
    headers: dict[str, str] = {}  # a value "env:NAME" is read from the environment
    timeout: str = "10s"  # a webhook that hangs longer fails (and is retried)
    max_per_minute: int = Field(default=20, ge=1)  # the rest wait their turn, none dropped

    _durations = field_validator("timeout")(_duration)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook url starts with http:// or https://")
        return url


class Schedule(_Strict):
    interval: str | None = "15m"
    cron: str | None = None

    _durations = field_validator("interval")(_duration)


class ExecutorSettings(_Strict):
    """Where cycles and retrains run: in the daemon's process, or on a Dask cluster."""

    kind: str = Field(default="local", pattern="^(local|dask)$")
    address: str | None = None  # the Dask scheduler, tcp://host:8786 ($PERFWATCH_DASK_ADDRESS)
    # a retrain with more training rows than this trains across the cluster (lightgbm.dask)
    dask_rows: int = Field(default=3_000_000, ge=1)


class LineageSettings(_Strict):
    """Where OpenLineage run events go (services.lineage)."""

    transport: str = Field(pattern="^(console|file|http)$")
    path: Path | None = None  # file: a JSON line each, appended (relative to the config)
    url: str | None = None  # http: POSTed here, e.g. http://marquez:5000/api/v1/lineage
    headers: dict[str, str] = {}  # a value "env:NAME" is read from the environment
    timeout: str = "10s"
    namespace: str = "perfwatch"  # the jobs' namespace in the catalog

    _durations = field_validator("timeout")(_duration)

    @model_validator(mode="after")
    def _where(self) -> "LineageSettings":
        if self.transport == "file" and self.path is None:
            raise ValueError("transport = 'file' needs a path")
        web = self.url is not None and self.url.startswith(("http://", "https://"))
        if self.transport == "http" and not web:
            raise ValueError("transport = 'http' needs a url starting with http:// or https://")
        return self


class Settings(_Strict):
    store: str = "sqlite:///var/perfwatch.db"
    data_dir: Path = Path("var")
    # rows ingested and estimated together: a bigger inbox is taken in several passes,
    # file by file (a bigger file in parts), so memory follows this, not the backlog
    pass_rows: int = Field(default=1_000_000, ge=1)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_address: str = "127.0.0.1"  # where the Prometheus endpoint listens
    webhooks: list[Webhook] = []
    lineage: LineageSettings | None = None
    schedule: Schedule = Schedule()
    executor: ExecutorSettings = ExecutorSettings()
    models: list[ModelSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_models(self) -> "Settings":
        names = [m.name for m in self.models]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"model name {sorted(duplicated)[0]!r} is declared twice")
        return self

    @model_validator(mode="after")
    def _cluster_needs(self) -> "Settings":
        if self.executor.kind != "dask":
            return self
        if self.store.startswith("sqlite"):  # workers on other hosts cannot share the file
            raise ValueError(
                '[executor] kind = "dask" needs a PostgreSQL store: set store ='
                ' "postgresql+psycopg://user@host/db" (or $PERFWATCH_STORE), or kind = "local"'
            )
        return self

    def model(self, name: str) -> ModelSettings:
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"no model named {name!r} in the config", hint=f"known models: {known}")


def verifying(environ: Mapping[str, str] = os.environ) -> bool:
    """`perfwatch run --verify` (or PERFWATCH_VERIFY=1): every per-chunk figure perfwatch
    computes is recomputed by nannyml too, and a difference fails the cycle."""
    return environ.get("PERFWATCH_VERIFY", "") not in ("", "0")


def config_path(explicit: Path | None) -> Path:
    """--config, else $PERFWATCH_CONFIG, else config/perfwatch.toml."""
    if explicit is not None:
        return explicit
    return Path(os.environ.get("PERFWATCH_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read, validate and resolve a config file; raise ConfigError naming the bad key."""
    if not path.is_file():
        raise ConfigError(
            f"no config file at {path}",
            hint="run `perfwatch init` to write one, or pass --config / set PERFWATCH_CONFIG",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the syntax") from exc
    if environ.get("PERFWATCH_STORE"):
        raw["store"] = environ["PERFWATCH_STORE"]
    if environ.get("PERFWATCH_DASK_ADDRESS"):
        raw.setdefault("executor", {})["address"] = environ["PERFWATCH_DASK_ADDRESS"]
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise _explain(path, exc, raw) from None
    return _resolve_paths(settings, path.resolve().parent)


EVERY_KEY = "`perfwatch init --example` prints a commented config with every key"


def _explain(path: Path, exc: ValidationError, raw: dict[str, Any]) -> ConfigError:
    """The first mistake, told as a person fixes it: an unknown key before a missing one
    (`feature` for `features` is both), named in the model it belongs to."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc = [part for part in error["loc"] if part not in ("function-after", "[key]")]
    key = _key_name(loc, raw)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys here: {', '.join(known)}"
        return ConfigError(f"{path}: unknown key {key}", hint=hint)
    if error["type"] == "missing":
        return ConfigError(f"{path}: missing key {key}", hint=f"add it; {EVERY_KEY}")
    message = str(error["msg"]).removeprefix("Value error, ")
    where = key if key else "the config"
    return ConfigError(f"{path}: bad value for {where}: {message}", hint=EVERY_KEY)


def _key_name(loc: list[Any], raw: dict[str, Any]) -> str:
    """`'features' of model 'press'` rather than `models[0].features`."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        models = raw.get("models")
        entry = models[loc[1]] if isinstance(models, list) and loc[1] < len(models) else {}
        name = entry.get("name") if isinstance(entry, dict) else None
        owner = f"model {name!r}" if isinstance(name, str) else f"the model #{loc[1] + 1}"
        inner = _dotted(loc[2:])
        return f"'{inner}' of {owner}" if inner else owner
    return f"'{_dotted(loc)}'" if loc else ""


def _dotted(loc: list[Any]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _fields_at(loc: list[Any]) -> list[str]:
    """The keys the config accepts at the table `loc` points to."""
    schema: type[BaseModel] = Settings
    in_dict = False  # the previous part named a table of tables keyed by name (thresholds)
    for part in loc:
        if isinstance(part, int) or in_dict:
            in_dict = False
            continue
        annotation = schema.model_fields[str(part)].annotation
        in_dict = getattr(annotation, "__origin__", None) is dict
        inner = getattr(annotation, "__args__", (annotation,))
        schema = next(
            a for a in reversed(inner) if isinstance(a, type) and issubclass(a, BaseModel)
        )
    return list(schema.model_fields)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else base / p)

    models = [
        m.model_copy(
            update={
                key: resolve(getattr(m, key))
                for key in ("inbox", "labels_inbox", "initial_model", "reference", "training_data")
            }
            | {
                "retrain": m.retrain.model_copy(
                    update={"extra_training_data": resolve(m.retrain.extra_training_data)}
                )
            }
        )
        for m in settings.models
    ]
    lineage = settings.lineage
    if lineage is not None:
        lineage = lineage.model_copy(update={"path": resolve(lineage.path)})
    return settings.model_copy(
        update={
            "lineage": lineage,
            "data_dir": resolve(settings.data_dir),
            "store": _resolve_sqlite(settings.store, base),
            "models": models,
        }
    )


def _resolve_sqlite(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the config's folder, like every other path."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(base / url[len(prefix) :])
    return url
