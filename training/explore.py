"""Describe a dataset: shape, types, missing values, summary statistics, class balance."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from drugclf.contract import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET
from training.dataset import Dataset


@dataclass(frozen=True)
class Exploration:
    """Tables that describe a dataset."""

    shape: tuple[int, int]
    columns: pd.DataFrame
    numeric: pd.DataFrame
    categorical: pd.DataFrame
    classes: pd.DataFrame


def explore(dataset: Dataset) -> Exploration:
    """Summarise a validated dataset (it has no missing values by then: validation refuses them)."""
    frame = dataset.features.copy()
    if dataset.labels is not None:
        frame[TARGET] = dataset.labels
    columns = pd.DataFrame(
        {
            "dtype": frame.dtypes.astype(str),
            "missing": frame.isna().sum(),
            "distinct": frame.nunique(),
        }
    )
    numeric = frame[list(NUMERIC_FEATURES)].describe().T.round(3)
    categorical = pd.concat(
        [
            frame[name].value_counts().rename("count").to_frame().assign(feature=name)
            for name in CATEGORICAL_FEATURES
        ]
    ).reset_index(names="value")[["feature", "value", "count"]]
    if dataset.labels is not None:
        counts = dataset.labels.value_counts().sort_index()
        classes = pd.DataFrame({"rows": counts, "share": (counts / counts.sum()).round(3)})
    else:
        classes = pd.DataFrame()
    return Exploration(
        shape=frame.shape,
        columns=columns,
        numeric=numeric,
        categorical=categorical,
        classes=classes,
    )
