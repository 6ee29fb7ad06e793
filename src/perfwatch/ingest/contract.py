"""The validation contract: what a production batch must look like, learnt from the reference.

Hard rules (a batch that breaks one is quarantined): the id, timestamp and feature
columns exist, numbers parse as numbers, timestamps parse, ids and timestamps are
present, served scores lie in [0, 1]. Soft rules (counted per chunk as data-quality
findings, rows kept): values outside the reference range widened by a tolerance,
categories the reference never showed, more nulls than the reference had.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

RANGE_TOLERANCE = 0.10  # share of the reference span allowed beyond each end
NULL_TOLERANCE = 0.01  # null share allowed above the reference's own


@dataclass(frozen=True)
class ColumnRule:
    name: str
    kind: str  # numeric | categorical
    low: float | None = None
    high: float | None = None
    categories: list[str] = field(default_factory=list)
    null_share: float = 0.0

    def allowed_range(self) -> tuple[float, float]:
        assert self.low is not None and self.high is not None
        slack = (self.high - self.low) * RANGE_TOLERANCE
        return self.low - slack, self.high + slack


@dataclass(frozen=True)
class Contract:
    columns: list[ColumnRule]

    def only(self, features: list[str]) -> "Contract":
        """The rules of these features (a version's contract may name features the config
        has dropped since it was registered)."""
        return Contract([rule for rule in self.columns if rule.name in features])

    def to_json(self) -> str:
        return json.dumps([asdict(rule) for rule in self.columns])

    @classmethod
    def from_json(cls, text: str) -> "Contract":
        return cls([ColumnRule(**rule) for rule in json.loads(text)])


def derive_contract(
    reference: "pd.DataFrame", *, features: list[str], categorical: list[str]
) -> Contract:
    """Learn each feature's kind, range, categories and null share from the reference set."""
    import pandas as pd

    rules = []
    for name in features:
        column = reference[name]
        null_share = float(column.isna().mean())
        if name in categorical:
            categories = sorted(str(v) for v in column.dropna().unique())
            rules.append(
                ColumnRule(name, "categorical", categories=categories, null_share=null_share)
            )
        else:
            numbers = pd.to_numeric(column, errors="coerce")
            rules.append(
                ColumnRule(
                    name,
                    "numeric",
                    low=float(numbers.min()),
                    high=float(numbers.max()),
                    null_share=null_share,
                )
            )
    return Contract(rules)


@dataclass(frozen=True)
class Finding:
    batch: int  # the file's position in the cycle
    chunk_ns: int
    column: str
    kind: str  # null | out_of_range | unseen_category | duplicate_id
    count: int
    detail: str


def soft_findings(
    frame: "pd.DataFrame", contract: Contract, *, batch_column: str, chunk_column: str
) -> list[Finding]:
    """Count each soft problem per file, chunk and column (one grouped count for all)."""
    import pandas as pd

    masks: dict[tuple[str, str], pd.Series] = {}
    details: dict[tuple[str, str], str] = {}
    for rule in contract.columns:
        column = frame[rule.name]
        nulls = column.isna()
        if nulls.any():
            masks[(rule.name, "null")] = nulls
            details[(rule.name, "null")] = f"reference null share {rule.null_share:.3f}"
        if rule.kind == "numeric" and rule.low is not None:
            low, high = rule.allowed_range()
            outside = (column < low) | (column > high)
            if outside.any():
                masks[(rule.name, "out_of_range")] = outside
                details[(rule.name, "out_of_range")] = f"expected {low:.4g}..{high:.4g}"
        elif rule.kind == "categorical":
            unseen = column.notna() & ~column.isin(rule.categories)
            if unseen.any():
                masks[(rule.name, "unseen_category")] = unseen
                values = sorted({str(v) for v in column[unseen].unique()})[:5]
                details[(rule.name, "unseen_category")] = "unseen: " + ", ".join(values)
    if not masks:
        return []
    import numpy as np

    # one integer key per (file, chunk): np.bincount then counts each mask in one pass
    chunk_starts, chunk_codes = np.unique(frame[chunk_column].to_numpy(), return_inverse=True)
    keys = frame[batch_column].to_numpy().astype(np.int64) * len(chunk_starts) + chunk_codes
    sizes = np.bincount(keys)
    null_share = {rule.name: rule.null_share for rule in contract.columns}
    findings = []
    for (name, kind), mask in masks.items():
        counts = np.bincount(keys, weights=mask.to_numpy(dtype=bool), minlength=len(sizes))
        for key in np.flatnonzero(counts):
            count = int(counts[key])
            # nulls are a finding only beyond the share the reference itself had
            if kind == "null" and count / sizes[key] <= null_share[name] + NULL_TOLERANCE:
                continue
            batch, chunk = divmod(int(key), len(chunk_starts))
            findings.append(
                Finding(batch, int(chunk_starts[chunk]), name, kind, count, details[(name, kind)])
            )
    return findings
