"""Drift: each input's live distribution against its training distribution, scored with PSI.

The training distribution is written into the artifact metadata at export (per feature: interior
histogram edges and bin proportions, or categories and their shares). Live values are binned the
same way (bins open at both ends, right-closed: a value equal to an edge goes to the lower bin).

PSI = Σ (live − train) · ln(live / train), proportions floored at ``EPSILON`` so an empty bin
does not make it infinite. Usual reading: < 0.1 stable, 0.1–0.2 moderate shift, > 0.2 a
significant shift; the flag is raised above ``PSI_THRESHOLD`` once ``MIN_ROWS`` live rows exist.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from drugclf.artifact import FeatureDistribution

PSI_THRESHOLD: Final = 0.2
MIN_ROWS: Final = 50
"""Fewer live rows than this: PSI is reported but no flag (sampling noise dominates)."""
EPSILON: Final = 1e-4


class FeatureDrift(msgspec.Struct, frozen=True):
    """One input feature: bins, training vs live proportions, PSI and the flag."""

    name: str
    kind: str
    bins: list[str]
    """Bin labels: ``<= 20``, ``(20, 35]``, ``> 60`` for numbers; the category for others."""
    training: list[float]
    live: list[float]
    live_counts: list[int]
    psi: float | None
    """None when there are no live rows."""
    drift: bool


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (both proportions)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_counts(values: npt.NDArray[np.float64], edges: Sequence[float]) -> npt.NDArray[np.int64]:
    """Counts per bin for interior ``edges`` (open ends, right-closed like the export)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Human labels of the bins of interior ``edges``."""
    if not edges:
        return ["all"]
    text = [f"{e:g}" for e in edges]
    middle = [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(text)]
    return [f"<= {text[0]}", *middle, f"> {text[-1]}"]


def feature_drift(
    reference: FeatureDistribution, values: Sequence[object], *, threshold: float = PSI_THRESHOLD
) -> FeatureDrift:
    """Compare one feature's live ``values`` with its training distribution."""
    if reference.kind == "numeric":
        edges = reference.edges or []
        counts = bin_counts(np.asarray(values, dtype=np.float64), edges)
        labels = bin_labels(edges)
    else:
        categories = reference.categories or []
        position = {c: i for i, c in enumerate(categories)}
        counts = np.zeros(len(categories), dtype=np.int64)
        for value in values:
            i = position.get(str(value))
            if i is not None:
                counts[i] += 1
        labels = list(categories)
    total = int(counts.sum())
    live = (counts / total).tolist() if total else [0.0] * len(counts)
    score = psi(reference.proportions, live) if total else None
    return FeatureDrift(
        name=reference.name,
        kind=reference.kind,
        bins=labels,
        training=list(reference.proportions),
        live=[round(p, 6) for p in live],
        live_counts=counts.tolist(),
        psi=round(score, 6) if score is not None else None,
        drift=score is not None and total >= MIN_ROWS and score > threshold,
    )
