"""Trust in each complete chunk's estimate (domain.trust), measured in the drift step on
the same rows: the share outside the champion's reference support for every chunk, the
reference-vs-chunk classifier where a cheap figure moved.
"""

from datetime import datetime
from typing import TYPE_CHECKING

from perfwatch.config import ModelSettings
from perfwatch.domain.chunks import CHUNK_COLUMN, moment
from perfwatch.domain.drift import RawDrift, notable
from perfwatch.domain.trust import Trust, look_closer
from perfwatch.services.registry import Champion
from perfwatch.store import queries
from perfwatch.store.tables import ChunkTrust, utcnow

if TYPE_CHECKING:
    import pandas as pd
    from sqlmodel import Session

    from perfwatch.ml.chunk_drift import FeatureDrift


def measure_trust(
    model: ModelSettings, champion: Champion, rows: "pd.DataFrame", drift: list["FeatureDrift"]
) -> dict[datetime, Trust]:
    """The trust figures of every chunk in `rows` (with the chunk column)."""
    from perfwatch.ml import trust
    from perfwatch.ml.chunk_metrics import Chunks

    support = champion.contract.only(model.features)
    names = [r.name for r in support.columns]
    chunk_of_row = rows[CHUNK_COLUMN].to_numpy(dtype="int64")
    chunks = Chunks.of(chunk_of_row)
    shares, outside = trust.outside_support(support, rows, chunks)
    drifted = {d.chunk_start for d in drift if notable(RawDrift(d.method, d.value, d.alert))}
    found = {}
    for ns, share, named in zip(chunks.starts_ns, shares, outside, strict=True):
        start = moment(int(ns))
        auc: float | None = None
        telling: tuple[str, ...] = ()
        if look_closer(float(share), start in drifted):
            reference = champion.reference_rows[names]
            chunk = rows.loc[chunk_of_row == ns, names]
            auc, telling = trust.domain_auc(support, reference, chunk, seed=int(ns))
        found[start] = Trust(float(share), named, auc, telling)
    return found


def store_trust(
    session: "Session",
    model: ModelSettings,
    champion: Champion,
    found: dict[datetime, Trust],
    rows: dict[datetime, int],
) -> None:
    """Upsert the chunks' trust, judged by the model's limits now."""
    limits = model.trust.limits
    now = utcnow()
    queries.upsert(
        session=session,
        table=ChunkTrust,
        rows=[
            {
                "model_id": champion.version.model_id,
                "version_id": champion.version.id,
                "chunk_start": start,
                "out_of_domain_share": trust.out_of_domain_share,
                "domain_auc": trust.domain_auc,
                "reliable": trust.reliable(limits),
                "reason": trust.reason(limits),
                "rows": rows[start],
                "computed_at": now,
            }
            for start, trust in found.items()
        ],
        keys=("model_id", "version_id", "chunk_start"),
    )
