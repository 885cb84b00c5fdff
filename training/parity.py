"""The parity gate: prove that the ONNX model answers as the scikit-learn pipeline does.

Cases come in three groups: every dataset row; every combination of bins and categories with
values on and just beside every edge (for raw features, every split threshold the forest uses);
and many random valid patients. Any label that differs, or any probability further apart than
the tolerance, fails the gate and nothing is published.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Final

import numpy as np
import onnxruntime as ort
import pandas as pd
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

from drugclf.artifact import (
    DEFAULT_PARITY_CASES,
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    ParitySummary,
)
from drugclf.contract import (
    AGE_MAX,
    AGE_MIN,
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    FIELDS_BY_NAME,
    NA_TO_K_MAX,
)
from training.features import Binner

logger = logging.getLogger(__name__)

TOLERANCE: Final = 1e-5
DEFAULT_RANDOM_CASES: Final = DEFAULT_PARITY_CASES
# Realistic ratios sit in 5..40; the rest of the contract's range is covered more thinly.
REALISTIC_NA_TO_K: Final = (5.0, 40.0)
_SMALLEST_NA_TO_K: Final = float(np.nextafter(0.0, 1.0))


@dataclass(frozen=True)
class ParityReport:
    """The outcome of a parity check, with the first mismatches for a readable failure."""

    summary: ParitySummary
    first_mismatches: pd.DataFrame

    @property
    def passed(self) -> bool:
        """Whether every case agreed."""
        return self.summary.passed

    def describe(self) -> str:
        """One line for humans, plus the first mismatches when there are any."""
        s = self.summary
        line = (
            f"parity: {s.mismatches} mismatches over {s.cases} cases "
            f"(max |Δp| {s.max_abs_prob_diff:.2e}, tolerance {s.tolerance:g})"
        )
        if self.passed:
            return line
        return f"{line}\nfirst mismatches:\n{self.first_mismatches.to_string(index=False)}"


def _binners(pipeline: Pipeline) -> dict[str, Binner]:
    features = pipeline.named_steps["features"]
    return {name: step for name, step, _ in features.transformers_ if isinstance(step, Binner)}


def _forest_thresholds(pipeline: Pipeline, feature: str) -> NDArray[np.float64]:
    """Split thresholds the forest uses on a raw (unbinned) feature."""
    names = list(pipeline.named_steps["features"].get_feature_names_out())
    column = names.index(f"{feature}__{feature}")
    forest = pipeline.steps[-1][1]
    found = [tree.tree_.threshold[tree.tree_.feature == column] for tree in forest.estimators_]
    return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.float64)


def edge_values(feature: str, edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Values on and just beside each edge (float64 and float32 steps), within the contract."""
    spec = FIELDS_BY_NAME[feature]
    values: list[float] = []
    for edge in edges:
        values.append(float(edge))
        values.extend(float(np.nextafter(edge, side)) for side in (-np.inf, np.inf))
        values.extend(
            float(np.nextafter(np.float32(edge), np.float32(side))) for side in (-1e9, 1e9)
        )
        if spec.type == "integer":
            values.extend(
                [float(np.floor(edge)) - 1, float(np.floor(edge)), float(np.ceil(edge)) + 1]
            )
    low = float(spec.minimum or 0.0)
    high = float(spec.maximum or 0.0)
    array = np.asarray(values, dtype=np.float64)
    if spec.type == "integer":
        array = np.round(array)
    elif spec.exclusive_minimum:
        low = _SMALLEST_NA_TO_K
    clipped: NDArray[np.float64] = np.unique(np.clip(array, low, high))
    return clipped


def _representatives(feature: str, edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """One value inside each bin, the contract's extremes, and every edge neighbourhood."""
    spec = FIELDS_BY_NAME[feature]
    low = _SMALLEST_NA_TO_K if spec.exclusive_minimum else float(spec.minimum or 0.0)
    high = float(spec.maximum or 0.0)
    padded = np.concatenate(([low], edges[(edges > low) & (edges < high)], [high]))
    middles = (padded[:-1] + padded[1:]) / 2
    if spec.type == "integer":
        middles = np.round(middles)
    return np.unique(np.concatenate(([low, high], middles, edge_values(feature, edges))))


def edge_cases(pipeline: Pipeline) -> pd.DataFrame:
    """Every combination of bins and categories, with values on and beside each edge.

    For a raw feature the "edges" are the forest's split thresholds. Those can number in the
    hundreds, so raw features are crossed with the categories only, not with each other.
    """
    binners = _binners(pipeline)
    edges = {
        name: binner.edges_ if binner.edges_ is not None else _forest_thresholds(pipeline, name)
        for name, binner in binners.items()
    }
    values = {name: _representatives(name, e) for name, e in edges.items()}
    categories = [list(FIELDS_BY_NAME[c].allowed or ()) for c in CATEGORICAL_FEATURES]
    raw = [name for name, b in binners.items() if b.edges_ is None]
    rows: list[tuple[object, ...]] = []
    if not raw:
        for age, na, *cats in itertools.product(values["Age"], values["Na_to_K"], *categories):
            rows.append((age, *cats, na))
    else:
        typical_age = np.round(values["Age"][len(values["Age"]) // 2])
        typical_na = values["Na_to_K"][len(values["Na_to_K"]) // 2]
        for combo in itertools.product(*categories):
            rows.extend((age, *combo, typical_na) for age in values["Age"])
            rows.extend((typical_age, *combo, na) for na in values["Na_to_K"])
    return _frame(rows)


def random_patients(count: int, seed: int = 0) -> pd.DataFrame:
    """Random valid patients across the whole contract, denser where real patients are."""
    rng = np.random.default_rng(seed)
    half = count // 2
    na = np.concatenate(
        (
            rng.uniform(*REALISTIC_NA_TO_K, size=half),
            rng.uniform(_SMALLEST_NA_TO_K, NA_TO_K_MAX, size=count - half),
        )
    )
    data: dict[str, object] = {
        "Age": rng.integers(AGE_MIN, AGE_MAX + 1, size=count, dtype=np.int64),
        "Na_to_K": na,
    }
    for name in CATEGORICAL_FEATURES:
        allowed = np.asarray(FIELDS_BY_NAME[name].allowed, dtype=object)
        data[name] = allowed[rng.integers(0, len(allowed), size=count)]
    return pd.DataFrame(data)[list(FEATURE_NAMES)]


def _frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES))
    frame["Age"] = frame["Age"].astype(np.int64)
    frame["Na_to_K"] = frame["Na_to_K"].astype(np.float64)
    return frame


def onnx_feeds(frame: pd.DataFrame) -> dict[str, NDArray[np.generic]]:
    """Column tensors for the ONNX graph, typed as the graph's inputs."""
    return {
        "Age": frame["Age"].to_numpy(np.int64).reshape(-1, 1),
        "Na_to_K": frame["Na_to_K"].to_numpy(np.float64).reshape(-1, 1),
        **{c: frame[c].to_numpy(object).reshape(-1, 1) for c in CATEGORICAL_FEATURES},
    }


def check_parity(
    pipeline: Pipeline,
    onnx_bytes: bytes,
    groups: dict[str, pd.DataFrame],
    tolerance: float = TOLERANCE,
) -> ParityReport:
    """Compare labels and probabilities of both models on every case of every group."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    cases = pd.concat(groups.values(), ignore_index=True)
    group_of = np.concatenate([[name] * len(frame) for name, frame in groups.items()])
    onnx_labels, onnx_probs = session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], onnx_feeds(cases))
    sk_probs = pipeline.predict_proba(cases)
    sk_labels = pipeline.predict(cases)
    label_bad = onnx_labels.reshape(-1) != sk_labels
    diff = np.abs(onnx_probs.astype(np.float64) - sk_probs).max(axis=1)
    prob_bad = diff > tolerance
    bad = label_bad | prob_bad
    first = cases[bad].head(10).copy()
    first.insert(0, "group", group_of[bad][:10])
    first["sklearn"] = sk_labels[bad][:10]
    first["onnx"] = onnx_labels.reshape(-1)[bad][:10]
    first["max_abs_diff"] = diff[bad][:10]
    summary = ParitySummary(
        cases=len(cases),
        label_mismatches=int(label_bad.sum()),
        prob_mismatches=int(prob_bad.sum()),
        max_abs_prob_diff=float(diff.max()) if len(diff) else 0.0,
        tolerance=tolerance,
        groups={name: len(frame) for name, frame in groups.items()},
    )
    report = ParityReport(summary=summary, first_mismatches=first)
    logger.info(report.describe().splitlines()[0])
    return report


def parity_groups(
    pipeline: Pipeline, dataset_rows: pd.DataFrame, random_cases: int = DEFAULT_RANDOM_CASES
) -> dict[str, pd.DataFrame]:
    """The three groups of cases the gate checks."""
    return {
        "dataset": dataset_rows[list(FEATURE_NAMES)].reset_index(drop=True),
        "edges": edge_cases(pipeline),
        "random": random_patients(random_cases),
    }
