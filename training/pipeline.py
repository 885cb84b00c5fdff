"""The model: preprocessing, SMOTE (fit path only) and a RandomForest, as one pipeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from drugclf.artifact import Params
from training.features import build_preprocessor

SMOTE_MAX_NEIGHBOURS = 5


def smote_neighbours(labels: Iterable[str], folds: int = 1) -> int:
    """SMOTE's k for the rarest class, leaving room for a cross-validation fold's share.

    SMOTE needs k + 1 rows of a class; on the full dataset 5 is the standard choice, but a small
    uploaded dataset or a CV training fold may hold fewer.
    """
    rarest = min(Counter(labels).values())
    available = rarest - (rarest // folds if folds > 1 else 0)
    return max(1, min(SMOTE_MAX_NEIGHBOURS, available - 1))


def build_pipeline(params: Params, smote_k: int = SMOTE_MAX_NEIGHBOURS) -> ImbPipeline:
    """An unfitted pipeline; SMOTE resamples only the rows it is fitted on (no CV leakage)."""
    steps: list[tuple[str, object]] = [
        ("features", build_preprocessor(params.binning, params.random_state))
    ]
    if params.smote:
        steps.append(("smote", SMOTE(random_state=params.random_state, k_neighbors=smote_k)))
    steps.append(
        (
            "forest",
            RandomForestClassifier(
                n_estimators=params.n_estimators,
                max_leaf_nodes=params.max_leaf_nodes,
                random_state=params.random_state,
                n_jobs=1,
            ),
        )
    )
    return ImbPipeline(steps)


def inference_pipeline(fitted: ImbPipeline) -> Pipeline:
    """The fitted pipeline without SMOTE: what is exported and what parity compares against."""
    return Pipeline([(name, step) for name, step in fitted.steps if name != "smote"])
