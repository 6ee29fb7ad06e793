"""`perfwatch check MODEL`: what would go wrong in a model's cycles, found before they run.

The files the config names exist; the model file loads and scores its reference set in
the inputs a cycle will feed it (a model trained on `category` columns that the config
does not declare is caught here, not in a cycle); the reference holds the target, the
timestamp and every feature; the training data holds the features and the target; and
a sample batch, when given, passes the validation contract and can be scored, and is
compared with the training data and the reference (services.alignment: is the model
aligned with where it is deployed?). Every problem comes with its fix; nothing is
written.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.config import ModelSettings
from perfwatch.errors import BatchRejected, PerfwatchError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from perfwatch.ingest.contract import Contract
    from perfwatch.ml.inputs import ModelInputs
    from perfwatch.services.alignment import Alignment


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass
class Preflight:
    model: str
    findings: list[Finding] = field(default_factory=list)
    alignment: "Alignment | None" = None  # of the sample, when one was given and read

    @property
    def ok(self) -> bool:
        """Every check passed and the sample, if any, is not misaligned."""
        aligned = self.alignment is None or self.alignment.verdict != "misaligned"
        return aligned and all(f.ok for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "checks": [asdict(f) for f in self.findings],
            "alignment": self.alignment.to_json() if self.alignment is not None else None,
        }


def preflight(model: ModelSettings, sample: Path | None = None) -> Preflight:
    """Check a model's config and files (and a sample batch) as its cycles will use them."""
    from perfwatch.services.alignment import align

    result = Preflight(model.name)
    found = _files(model, result)
    if found:
        classifier, reference, contract, inputs = _model_and_reference(model, result)
        training = None
        if model.training_data is not None and model.training_data.is_file():
            training = _training_data(model, result)
        if sample is not None and reference is not None and contract is not None:
            assert inputs is not None
            rows = _sample(model, sample, classifier, contract, inputs, result)
            if rows is not None:
                learnt = None if training is None else _compared_columns(model, training)
                result.alignment = align(model, rows, reference, learnt)
    return result


def _files(model: ModelSettings, result: Preflight) -> bool:
    """The files the config names; False when the model cannot be checked further."""
    named = {
        "initial_model": model.initial_model,
        "reference": model.reference,
        "training_data": model.training_data,
    }
    for key, path in named.items():
        if path is None:
            if key != "training_data":
                result.findings.append(
                    Finding(
                        key,
                        False,
                        f"the config names no {key}",
                        f"set {key} for {model.name!r}, or register a version with"
                        f" `perfwatch register {model.name} --model F --reference R`",
                    )
                )
            continue
        exists = path.is_file()
        result.findings.append(
            Finding(
                key,
                exists,
                f"{path}" if exists else f"{path} does not exist",
                None if exists else f"fix {key} (relative paths are relative to the config)",
            )
        )
    return (
        all(f.ok for f in result.findings if f.check in ("initial_model", "reference"))
        and model.initial_model is not None
    )


def _model_and_reference(
    model: ModelSettings, result: Preflight
) -> tuple[Any, "pd.DataFrame | None", "Contract | None", "ModelInputs | None"]:
    from perfwatch.services.registry import load_candidate

    assert model.initial_model is not None and model.reference is not None
    try:
        classifier, rows, contract, inputs = load_candidate(
            model, model.initial_model, model.reference
        )
    except PerfwatchError as exc:
        result.findings.append(Finding("scores the reference", False, exc.message, exc.hint))
        return None, None, None, None
    result.findings.append(
        Finding(
            "scores the reference",
            True,
            f"{type(classifier).__name__} scored the {len(rows):,} reference rows, fed as"
            f" {inputs.describe()}",
        )
    )
    return classifier, rows, contract, inputs


def _training_data(model: ModelSettings, result: Preflight) -> "pa.Table | None":
    """The training data as read, or None when it cannot be read."""
    from perfwatch.ingest.batch import read_arrow

    assert model.training_data is not None
    try:
        table = read_arrow(model.training_data, model.read)
    except BatchRejected as exc:
        result.findings.append(Finding("training data", False, exc.message, exc.hint))
        return None
    columns = table.column_names
    missing = [c for c in [*model.features, model.target] if c not in columns]
    result.findings.append(
        Finding(
            "training data",
            not missing,
            f"missing column(s) {', '.join(map(repr, missing))}"
            if missing
            else "has the features and the target",
            "a retrain appends production rows to it: it needs every feature and the target"
            if missing
            else None,
        )
    )
    return table


def _compared_columns(model: ModelSettings, table: "pa.Table") -> "pd.DataFrame":
    """What the alignment compares of the training data: its features, target and
    timestamp (those it has)."""
    wanted = [*model.features, model.target, model.timestamp_column]
    return table.select([c for c in wanted if c in table.column_names]).to_pandas()


def _sample(
    model: ModelSettings,
    sample: Path,
    classifier: Any,
    contract: "Contract",
    inputs: "ModelInputs",
    result: Preflight,
) -> "pd.DataFrame | None":
    """A production file as the inbox would take it: hard rules, soft findings, scoring.
    Its rows, scored, or None when they cannot be."""
    from perfwatch.domain.chunks import CHUNK_COLUMN
    from perfwatch.ingest.contract import soft_findings
    from perfwatch.ingest.rows import BATCH_COLUMN, combine, read_batch
    from perfwatch.ml.model import fill_scores

    if not sample.is_file():
        result.findings.append(Finding("sample", False, f"{sample} does not exist", None))
        return None
    try:
        table = read_batch(sample, model=model)
    except BatchRejected as exc:
        result.findings.append(
            Finding("sample", False, f"it would be quarantined: {exc.message}", exc.hint)
        )
        return None
    rows = combine([table], model=model, chunking=model.chunking).rows
    findings = soft_findings(rows, contract, batch_column=BATCH_COLUMN, chunk_column=CHUNK_COLUMN)
    try:
        fill_scores(
            lambda: classifier,
            rows,
            inputs=inputs,
            score_column=model.score_column,
            prediction_column=model.prediction_column,
            threshold=model.decision_threshold,
        )
    except Exception as exc:  # the model refuses what ingestion would give it
        result.findings.append(
            Finding(
                "sample",
                False,
                f"the model cannot score it: {type(exc).__name__}: {exc}",
                "check the sample's columns and types against the reference",
            )
        )
        return None
    noted = "; ".join(
        f"{f.count} {f.kind.replace('_', ' ')} in {f.column!r} ({f.detail})" for f in findings
    )
    result.findings.append(
        Finding(
            "sample",
            True,
            f"{len(rows):,} rows pass the contract and score"
            + (f"; data-quality findings: {noted}" if noted else ""),
        )
    )
    return rows
