"""Extra training rows (`[models.retrain] extra_training_data`: synthetic or augmented rows
with the features and the target), checked before a retrain learns from them (the rules
and their order: domain.synthetic).

`examine` asks the first two questions (distribution, labels) of the rows a retrain
selected; `judge_transfer` the third, once the challenger was trained with and without
them. The check, its decision and every figure go into the retrain's manifest (its
lineage) and `retrain --dry-run`. Kept rows are learnt from, but not written into the new
version's training set: the next retrain checks the file again, against its own window.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwatch.config import ModelSettings
from perfwatch.domain.alignment import FeatureShift
from perfwatch.domain.synthetic import LabelAgreement, hurts, labels_follow, looks_real
from perfwatch.errors import BatchRejected, PerfwatchError

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.ml.inputs import ModelInputs
    from perfwatch.services.registry import Champion

PENDING = "pending"  # passed the first two questions; transfer is judged by the retrain


@dataclass(frozen=True)
class ExtraCheck:
    path: str
    sha256: str | None
    rows: int
    decision: str  # kept | rejected | pending (a dry run: transfer not judged yet)
    reason: str
    features: list[FeatureShift] = field(default_factory=list)
    domain_auc: float | None = None  # real-vs-extra classifier ROC AUC
    telling: tuple[str, ...] = ()  # the features it told them apart by
    labels: list[LabelAgreement] = field(default_factory=list)
    transfer: dict[str, Any] | None = None  # metric, difference with - without, low, high
    frame: "pd.DataFrame | None" = None  # the rows, while a retrain may learn from them

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "rows": self.rows,
            "decision": self.decision,
            "reason": self.reason,
            "domain_auc": self.domain_auc,
            "telling": list(self.telling),
            "features": [asdict(f) | {"shifted": f.shifted} for f in self.features],
            "labels": [asdict(a) for a in self.labels],
            "transfer": self.transfer,
        }


def examine(
    model: ModelSettings,
    champion: "Champion",
    real: "pd.DataFrame",
    holdout: "pd.DataFrame",
    trained_on_real: "tuple[Any, ModelInputs] | None",
) -> ExtraCheck:
    """The extra rows against the recent real rows (`real`: the labeled production rows a
    retrain appends) and their labels against the champion's and a model trained on real
    rows (`trained_on_real`; None in a dry run), each beside the real `holdout` rows."""
    from perfwatch.files import sha256_file

    path = model.retrain.extra_training_data
    assert path is not None
    unread = ExtraCheck(str(path), None, 0, "rejected", "")
    try:
        extra = _read(model, path)
    except PerfwatchError as exc:
        return replace(unread, reason=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    check = ExtraCheck(str(path), sha256_file(path), len(extra), PENDING, "", frame=extra)
    check = _distribution(model, champion, real, extra, check)
    if check.decision == "rejected":
        return check
    judges = [("champion", (champion.model, champion.inputs))]
    if trained_on_real is not None:
        judges.append(("model trained on real rows", trained_on_real))
    labels = [_agreement(model, name, judge, extra, holdout) for name, judge in judges]
    reason = labels_follow(labels)
    if reason is not None:
        return replace(check, labels=labels, decision="rejected", reason=reason, frame=None)
    waiting = "their distribution and labels pass; whether they help is judged by the retrain"
    return replace(check, labels=labels, reason=waiting)


def judge_transfer(
    check: ExtraCheck, model: ModelSettings, judged: dict[str, "pd.DataFrame"]
) -> ExtraCheck:
    """The third question, on the real held-out rows scored by the challenger trained
    `without` and `with` the extra rows: kept unless they make it worse."""
    from perfwatch.ml.paired import paired_difference

    metric = model.metrics[0]
    labels = judged["without"][model.target].to_numpy(dtype=float)
    scored = {
        name: (
            rows[model.score_column].to_numpy(dtype=float),
            rows[model.prediction_column].to_numpy(dtype=float),
        )
        for name, rows in judged.items()
    }
    difference, low, high = paired_difference(metric, labels, scored["without"], scored["with"])
    transfer = {"metric": metric, "difference": difference, "low": low, "high": high}
    reason = hurts(metric, difference, low, high)
    if reason is not None:
        return replace(check, decision="rejected", reason=reason, transfer=transfer, frame=None)
    said = (
        f"kept: with them the challenger's {metric} on the real held-out rows differs by"
        f" {difference:+.4f} (95 % interval {low:+.4f} to {high:+.4f})"
    )
    return replace(check, decision="kept", reason=said, transfer=transfer)


def _read(model: ModelSettings, path: Path) -> "pd.DataFrame":
    import pandas as pd

    from perfwatch.ingest.batch import read_arrow

    if not path.is_file():
        raise PerfwatchError(
            f"extra_training_data {path} does not exist",
            hint="fix the path in [models.retrain] (relative paths are relative to the config)",
        )
    try:
        frame = read_arrow(path, model.read).to_pandas()
    except BatchRejected as exc:
        raise PerfwatchError(f"extra_training_data: {exc.message}", hint=exc.hint) from None
    missing = [c for c in [*model.features, model.target] if c not in frame.columns]
    if missing:
        raise PerfwatchError(
            f"extra_training_data lacks column(s) {', '.join(map(repr, missing))}",
            hint="extra rows need every feature and the target",
        )
    target = pd.to_numeric(frame[model.target], errors="coerce")
    if frame.empty or not target.isin([0, 1]).all():
        raise PerfwatchError(
            f"extra_training_data: {model.target!r} must be 0 or 1 in every row",
            hint="extra rows are labeled rows: each needs its target",
        )
    return frame.assign(**{model.target: target.astype("int64")})


def _distribution(
    model: ModelSettings,
    champion: "Champion",
    real: "pd.DataFrame",
    extra: "pd.DataFrame",
    check: ExtraCheck,
) -> ExtraCheck:
    from perfwatch.ml.trust import domain_auc
    from perfwatch.services.alignment import feature_shifts

    features = feature_shifts(model, real, extra)
    auc, telling = domain_auc(champion.contract, real, extra, seed=len(extra))
    checked = replace(check, features=features, domain_auc=auc, telling=telling)
    reason = looks_real(auc)
    if reason is not None:
        return replace(checked, decision="rejected", reason=reason, frame=None)
    return checked


def _agreement(
    model: ModelSettings,
    name: str,
    judge: "tuple[Any, ModelInputs]",
    extra: "pd.DataFrame",
    holdout: "pd.DataFrame",
) -> LabelAgreement:
    from perfwatch.ml.model import predict, score

    classifier, inputs = judge
    scores = score(classifier, extra, inputs)
    labels = extra[model.target].to_numpy()
    agreement = float((predict(scores, model.decision_threshold) == labels).mean())
    real = score(classifier, holdout, inputs) if len(holdout) else None
    return LabelAgreement(
        model=name,
        agreement=agreement,
        auc_extra=_auc(labels, scores),
        auc_real=None if real is None else _auc(holdout[model.target].to_numpy(), real),
    )


def _auc(labels: Any, scores: Any) -> float | None:
    from perfwatch.ml.concept import expected_metrics
    from perfwatch.ml.model import predict

    if len(set(labels.tolist())) < 2:
        return None
    return expected_metrics(scores, predict(scores), labels, ["roc_auc"])["roc_auc"]
